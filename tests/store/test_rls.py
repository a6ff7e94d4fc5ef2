"""Row-level security on PostgreSQL: the application role acting for user B sees and writes none
of user A's rows in any tenant table, whatever the query asks for."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from keen.store import Database
from keen.store.db import TENANT_TABLES, row_security_bypass, run_migrations, set_acting_user
from pgdb import PG_ADMIN, app_login_role

# Tables the app role may only read and append to.
APPEND_ONLY = ("audit_logs", "credit_transactions")
A, B = "a" * 32, "b" * 32
NOW = "2026-12-10T12:00:00+00:00"


def _row_sql(table: str, user: str, n: int) -> str:
    """An insert of one row of `table` owned by `user` (n makes its keys unique)."""
    key = f"{user[0]}{n}".ljust(32, "0")
    return {
        "sessions": f"INSERT INTO sessions (id, short_id, root_id, user_id, vision, workspace, model, options, created_at) "
        f"VALUES ('{key}', '{key[:8]}', '{key}', '{user}', 'v', '/w', 'm', '{{}}', '{NOW}')",
        "session_events": f"INSERT INTO session_events (root_id, seq, session_id, user_id, type, ts, data) "
        f"VALUES ('{user[0]}0'::text || repeat('0', 30), {n}, '{user[0]}0'::text || repeat('0', 30), '{user}', 't', '{NOW}', '{{}}')",
        "auth_tokens": f"INSERT INTO auth_tokens (id, user_id, kind, token_hash, scopes, created_at) "
        f"VALUES ('{key}', '{user}', 'refresh', '{key}', '[]', '{NOW}')",
        "recovery_codes": f"INSERT INTO recovery_codes (id, user_id, code_hash, created_at) VALUES ('{key}', '{user}', '{key}', '{NOW}')",
        "audit_logs": f"INSERT INTO audit_logs (seq, ts, action, risk, user_id, actor, details, prev_hash, hash) "
        f"VALUES ({n + (100 if user == B else 0)}, '{NOW}', 'x', 'low', '{user}', 'a', '{{}}', 'p', 'h')",
        # One account per user (its key): RLS refuses a row for another user before the key is checked.
        "credit_accounts": "INSERT INTO credit_accounts (user_id, daily_limit, monthly_limit, auto_recharge_threshold, "
        f"auto_recharge_amount, auto_recharge_monthly_cap, created_at, updated_at) VALUES ('{user}', 100, 1000, 10, 50, 500, "
        f"'{NOW}', '{NOW}')",
        "credit_holds": "INSERT INTO credit_holds (id, user_id, key, amount, provider_cost, day_key, month_key, created_at, "
        f"expires_at) VALUES ('{key}', '{user}', '{key}', 1, 0.2, '2026-12-10', '2026-12', '{NOW}', '{NOW}')",
        "payments": "INSERT INTO payments (id, user_id, provider, kind, amount, request_key, created_at) "
        f"VALUES ('{key}', '{user}', 'test', 'purchase', 5, '{key}', '{NOW}')",
        "credit_transactions": "INSERT INTO credit_transactions (user_id, type, amount, balance_after, created_at) "
        f"VALUES ('{user}', 'purchase', 5, 5, '{NOW}')",
        "idempotency_keys": "INSERT INTO idempotency_keys (user_id, key, request_hash, created_at, expires_at) "
        f"VALUES ('{user}', '{key}', 'h', '{NOW}', '{NOW}')",
    }[table]


@pytest.fixture
def app_url(pg_url: str) -> Iterator[str]:
    """The migrated database with users A and B owning a row in every tenant table, reached as
    a login role of `keen_app` (the server's role)."""
    run_migrations(pg_url)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        for user in (A, B):
            conn.execute(
                "INSERT INTO users (id, email, username, display_name, password_hash, privileges, created_at, updated_at) "
                f"VALUES ('{user}', '{user[0]}@x.io', '{user[0]}user', 'u', 'h', '[]', '{NOW}', '{NOW}')"
            )
            for table in TENANT_TABLES:
                conn.execute(_row_sql(table, user, 0))
    with app_login_role(pg_url) as url:
        yield url


async def _counts(db: Database, user_id: str | None, is_admin: bool) -> dict[str, dict[str, int]]:
    """Rows of each tenant table by owner, as the app role acting for `user_id`."""
    async with db.transaction() as session:
        if user_id is not None or is_admin:
            await set_acting_user(session, user_id, is_admin)
        found = {}
        for table in TENANT_TABLES:
            rows = (
                await session.execute(text(f"SELECT user_id, count(*) FROM {table} GROUP BY user_id"))
            ).all()
            found[table] = {owner: count for owner, count in rows}
        return found


async def test_the_app_role_acting_for_b_sees_only_b_rows_in_every_tenant_table(app_url: str) -> None:
    db = Database(app_url)
    try:
        assert await _counts(db, B, False) == {key: {B: 1} for key in TENANT_TABLES}
        assert await _counts(db, A, False) == {key: {A: 1} for key in TENANT_TABLES}
        # No acting user (and a pooled connection whose setting is now ''): nothing, no error.
        assert await _counts(db, None, False) == {key: {} for key in TENANT_TABLES}
        assert await _counts(db, None, True) == {key: {A: 1, B: 1} for key in TENANT_TABLES}
        # Asking for A's rows by id is no way around it.
        async with db.transaction() as session:
            await set_acting_user(session, B, False)
            for table in TENANT_TABLES:
                count = (
                    await session.execute(text(f"SELECT count(*) FROM {table} WHERE user_id = :a"), {"a": A})
                ).scalar()
                assert count == 0, table
    finally:
        await db.dispose()


@pytest.mark.parametrize("table", TENANT_TABLES)
async def test_the_app_role_acting_for_b_cannot_write_a_row_for_a(app_url: str, table: str) -> None:
    db = Database(app_url)
    try:
        with pytest.raises(DBAPIError, match="row-level security"):
            async with db.transaction() as session:
                await set_acting_user(session, B, False)
                await session.execute(text(_row_sql(table, A, 1)))
        if table != "credit_accounts":  # one account per user: B's exists
            async with db.transaction() as session:  # B may write B's own row
                await set_acting_user(session, B, False)
                await session.execute(text(_row_sql(table, B, 1)))
        # Nor can B move its own row over to A.
        if table not in APPEND_ONLY:  # these cannot be updated at all by the app role
            with pytest.raises(DBAPIError, match="row-level security"):
                async with db.transaction() as session:
                    await set_acting_user(session, B, False)
                    await session.execute(
                        text(f"UPDATE {table} SET user_id = :a WHERE user_id = :b"), {"a": A, "b": B}
                    )
    finally:
        await db.dispose()


@pytest.mark.parametrize(
    "statements",
    [
        ("UPDATE audit_logs SET action = 'y'", "DELETE FROM audit_logs"),
        ("UPDATE credit_transactions SET amount = 1000", "DELETE FROM credit_transactions"),
    ],
    ids=APPEND_ONLY,
)
async def test_the_app_role_cannot_edit_or_delete_audit_or_ledger_entries(
    app_url: str, statements: tuple[str, str]
) -> None:
    db = Database(app_url)
    try:
        for statement in statements:
            with pytest.raises(DBAPIError, match="permission denied"):
                async with db.transaction() as session:
                    await set_acting_user(session, None, True)
                    await session.execute(text(statement))
    finally:
        await db.dispose()


def test_every_tenant_table_forces_row_level_security_and_the_app_role_cannot_bypass_it(app_url: str) -> None:
    with psycopg.connect(app_url) as conn:
        tables = conn.execute(
            "SELECT relname, relrowsecurity, relforcerowsecurity, pg_get_userbyid(relowner) FROM pg_class "
            "WHERE relname = ANY(%s) AND relkind = 'r'",
            (list(TENANT_TABLES),),
        ).fetchall()
        role = conn.execute(
            "SELECT current_user, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
        group_bypass = conn.execute("SELECT rolbypassrls FROM pg_roles WHERE rolname = 'keen_app'").fetchone()
    assert sorted(t[0] for t in tables) == sorted(TENANT_TABLES)
    assert all(enabled and forced for _name, enabled, forced, _owner in tables)
    assert role is not None and role[1:] == (False, False) and group_bypass == (False,)
    assert all(owner != role[0] for *_rest, owner in tables)


async def test_a_role_that_escapes_row_level_security_is_named(
    app_url: str, pg_url: str, tmp_path: Path
) -> None:
    owner = Database(pg_url)  # the superuser that ran the migrations
    app = Database(app_url)
    sqlite = Database(f"sqlite:///{tmp_path}/k.db")
    try:
        assert await row_security_bypass(owner) == (
            "the database role postgres is a superuser: row-level security does not apply to it"
        )
        assert await row_security_bypass(app) is None
        assert await row_security_bypass(sqlite) is None
    finally:
        for db in (owner, app, sqlite):
            await db.dispose()


def test_the_documented_setup_owner_migrates_the_server_role_is_filtered(tmp_path: Path) -> None:
    """docs/deployment.md's steps: an owner role (no superuser) migrates, a login role in
    keen_app serves; only the owner is named as escaping row-level security."""
    suffix = uuid.uuid4().hex[:8]
    owner, server, name = f"keen_test_owner_{suffix}", f"keen_test_server_{suffix}", f"keen_test_{suffix}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(
            "DO $$ BEGIN CREATE ROLE keen_app NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$"
        )
        conn.execute(f"CREATE ROLE {owner} LOGIN")
        conn.execute(f"CREATE ROLE {server} LOGIN IN ROLE keen_app")
        conn.execute(f"CREATE DATABASE {name} OWNER {owner}")
    try:
        run_migrations(f"postgresql://{owner}@127.0.0.1:5432/{name}")

        async def check() -> tuple[str | None, str | None]:
            as_owner = Database(f"postgresql://{owner}@127.0.0.1:5432/{name}")
            as_server = Database(f"postgresql://{server}@127.0.0.1:5432/{name}")
            try:
                return await row_security_bypass(as_owner), await row_security_bypass(as_server)
            finally:
                await as_owner.dispose()
                await as_server.dispose()

        assert asyncio.run(check()) == (
            f"the database role {owner} owns the tables: it can turn row-level security off",
            None,
        )
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            conn.execute(f"DROP ROLE IF EXISTS {server}")
            conn.execute(f"DROP ROLE IF EXISTS {owner}")
