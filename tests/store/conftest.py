"""A fresh PostgreSQL database per test, on the server running on this machine."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pgdb import fresh_database


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for one test, dropped afterwards."""
    with fresh_database() as url:
        yield url
