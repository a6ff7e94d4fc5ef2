"""The first admin comes from KEEN_ADMIN_EMAIL + KEEN_ADMIN_PASSWORD, once, and never from a
default password."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from authkit import CHEAP_ARGON2_ENV, PASSWORD
from keen.auth import ensure_first_admin
from keen.config import Settings
from keen.errors import ConfigError
from keen.store import Database
from keen.store.db import run_migrations, set_acting_user
from keen.store.models import UserRow


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    url = f"sqlite:///{tmp_path}/k.db"
    run_migrations(url)
    database = Database(url)
    yield database
    await database.dispose()


def settings(**env: str) -> Settings:
    return Settings(**CHEAP_ARGON2_ENV, **env)  # type: ignore[arg-type]


async def _users(db: Database) -> list[tuple[str, str]]:
    async with db.transaction() as session:
        await set_acting_user(session, None, True)
        return [(u.email, u.role) for u in (await session.execute(select(UserRow))).scalars()]


async def test_the_first_admin_is_created_once_from_the_settings(db: Database) -> None:
    configured = settings(KEEN_ADMIN_EMAIL="Root@Example.org", KEEN_ADMIN_PASSWORD=PASSWORD)
    assert await ensure_first_admin(configured, db) is True
    assert await _users(db) == [("root@example.org", "super_admin")]
    assert await ensure_first_admin(configured, db) is True
    other = settings(KEEN_ADMIN_EMAIL="other@example.org", KEEN_ADMIN_PASSWORD=PASSWORD)
    assert await ensure_first_admin(other, db) is True  # an admin exists: nothing more
    assert await ensure_first_admin(settings(), db) is True
    assert await _users(db) == [("root@example.org", "super_admin")]


async def test_without_the_settings_no_admin_is_made(db: Database) -> None:
    assert await ensure_first_admin(settings(), db) is False
    assert await _users(db) == []


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"KEEN_ADMIN_EMAIL": "root@example.org"}, "set together"),
        ({"KEEN_ADMIN_PASSWORD": PASSWORD}, "set together"),
        (
            {"KEEN_ADMIN_EMAIL": "root@example.org", "KEEN_ADMIN_PASSWORD": "weak"},
            "KEEN_ADMIN_PASSWORD: the password needs",
        ),
        (
            {"KEEN_ADMIN_EMAIL": "root", "KEEN_ADMIN_PASSWORD": PASSWORD},
            "KEEN_ADMIN_EMAIL: not a valid email",
        ),
    ],
)
async def test_incomplete_or_bad_settings_are_a_configuration_error(
    db: Database, env: dict[str, str], says: str
) -> None:
    with pytest.raises(ConfigError, match=says):
        await ensure_first_admin(settings(**env), db)
    assert await _users(db) == []
