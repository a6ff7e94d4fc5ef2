"""Auth services against real databases: a SQLite file, and PostgreSQL as the app role."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from authkit import Auth, Clock, make_auth
from keen.store.db import run_migrations
from pgdb import app_login_role, pg_url

__all__ = ["pg_url"]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def auth(tmp_path: Path, clock: Clock) -> AsyncIterator[Auth]:
    """The services on a migrated SQLite file."""
    url = f"sqlite:///{tmp_path}/k.db"
    run_migrations(url)
    async for value in make_auth(url, clock):
        yield value


@pytest.fixture(params=["sqlite", "postgresql"])
async def any_auth(request: pytest.FixtureRequest, tmp_path: Path, clock: Clock) -> AsyncIterator[Auth]:
    """The services on SQLite, then on PostgreSQL connected as the app role (RLS applies)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/k.db"
        run_migrations(url)
        async for value in make_auth(url, clock):
            yield value
        return
    owner_url = request.getfixturevalue("pg_url")
    run_migrations(owner_url)
    with app_login_role(owner_url) as url:
        async for value in make_auth(url, clock):
            yield value
