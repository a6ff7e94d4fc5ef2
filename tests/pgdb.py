"""The PostgreSQL running on this machine: a fresh database per test, and the application role.

Tests that need it use the `pg_url` fixture (a database of their own, dropped afterwards) and,
to be filtered by row-level security, `app_role_url`: the same database reached as a login
role that belongs to `keen_app` (neither the tables' owner nor BYPASSRLS), as the server is.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


@contextmanager
def fresh_database() -> Iterator[str]:
    """A new, empty database; its URL (as the superuser), dropped when the block ends."""
    name = f"keen_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def app_login_role(database_url: str) -> Iterator[str]:
    """A login role in `keen_app` (the migrations create and grant it); the URL of `database_url`
    as that role. Roles belong to the whole server, so each test makes its own and drops it."""
    role = f"keen_test_app_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE ROLE "{role}" LOGIN IN ROLE keen_app')
    try:
        yield database_url.replace("postgresql://postgres@", f"postgresql://{role}@", 1)
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            # Its connections first: the database may still be in use by the test's pool.
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (role,))
            conn.execute(f'DROP ROLE IF EXISTS "{role}"')


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for one test, dropped afterwards."""
    with fresh_database() as url:
        yield url
