"""Browser tests drive Debian's chromium (`apt-get install -y chromium`): Playwright cannot
download its own browser builds here, so pytest-playwright is told where it is."""

from __future__ import annotations

from typing import Any

import pytest

from dashkit import CHROMIUM, CHROMIUM_ARGS


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}
