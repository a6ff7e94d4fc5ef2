"""One Alembic history on SQLite and PostgreSQL: every step goes down and up again."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import create_engine, inspect

from keen.store.db import HEAD_REVISION, alembic_config, sync_url

ACCOUNT_TABLES = {"users", "recovery_codes", "auth_tokens", "login_throttles", "audit_logs", "audit_head"}
BILLING_TABLES = {"credit_accounts", "credit_holds", "credit_transactions", "payments", "idempotency_keys"}


def _tables(url: str) -> set[str]:
    engine = create_engine(sync_url(url))
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _up_down_up(url: str) -> None:
    cfg = alembic_config(url)
    command.upgrade(cfg, "head")
    assert _tables(url) >= ACCOUNT_TABLES | BILLING_TABLES
    for _ in range(int(HEAD_REVISION)):  # one step at a time, down to nothing
        command.downgrade(cfg, "-1")
    assert _tables(url) <= {"alembic_version"}
    command.upgrade(cfg, "head")
    assert {"sessions", "session_events", *ACCOUNT_TABLES, *BILLING_TABLES} <= _tables(url)


def test_upgrade_downgrade_upgrade_on_sqlite(tmp_path: Path) -> None:
    _up_down_up(f"sqlite:///{tmp_path}/k.db")


def test_upgrade_downgrade_upgrade_on_postgresql(pg_url: str) -> None:
    _up_down_up(pg_url)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_first_admin_tables_start_empty_with_a_genesis_head(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = f"sqlite:///{tmp_path}/k.db" if backend == "sqlite" else request.getfixturevalue("pg_url")
    command.upgrade(alembic_config(url), "head")
    engine = create_engine(sync_url(url))
    with engine.connect() as conn:
        head = conn.exec_driver_sql("SELECT id, last_seq, last_hash FROM audit_head").all()
        users = conn.exec_driver_sql("SELECT count(*) FROM users").scalar_one()
    engine.dispose()
    assert head == [(1, 0, "0" * 64)] and users == 0
