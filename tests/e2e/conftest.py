"""Browser tests drive Debian's chromium (`apt-get install -y chromium`): Playwright cannot
download its own browser builds here, so pytest-playwright is told where it is.

The browser is one per test module, not pytest-playwright's one per session: Playwright's sync
API keeps an event loop running in the main thread while it is started, and the async tests that
the same xdist worker runs next need that thread's loop free."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from dashkit import CHROMIUM, CHROMIUM_ARGS


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


@pytest.fixture(scope="module")
def browser(browser_type_launch_args: dict[str, Any]) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(**browser_type_launch_args)
        yield launched
        launched.close()
