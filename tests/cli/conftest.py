"""Fixtures of the CLI tests against a server: a `keen serve` that runs scripted models."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from runkit import RUN_ENV
from serverkit import Server


@pytest.fixture
def server_home(tmp_path: Path) -> Path:
    return tmp_path / "server-home"


@pytest.fixture
def server(server_home: Path) -> Iterator[Server]:
    running = Server(server_home, RUN_ENV)
    running.wait_live()
    yield running
    running.stop()
