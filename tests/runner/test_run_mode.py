"""`check_run_mode`: inprocess runs anywhere; distributed needs PostgreSQL and procrastinate, and
the refusal says what to set."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from keen.config import Settings
from keen.errors import ConfigError
from keen.runner.run_mode import check_run_mode

POSTGRES = "postgresql+psycopg://keen:pw@db.example.org/keen"


def test_inprocess_runs_on_sqlite_and_postgresql(tmp_path: Path) -> None:
    check_run_mode(Settings(KEEN_HOME=tmp_path))
    check_run_mode(Settings(KEEN_HOME=tmp_path, KEEN_DATABASE_URL=POSTGRES))


def test_distributed_runs_on_postgresql_with_procrastinate(tmp_path: Path) -> None:
    check_run_mode(Settings(KEEN_HOME=tmp_path, KEEN_RUN_MODE="distributed", KEEN_DATABASE_URL=POSTGRES))


@pytest.mark.parametrize("url", [None, "sqlite+aiosqlite:////tmp/keen.db", "not a url"])
def test_distributed_without_postgresql_says_to_set_the_database_url(tmp_path: Path, url: str | None) -> None:
    extra = {} if url is None else {"KEEN_DATABASE_URL": url}
    with pytest.raises(ConfigError) as raised:
        check_run_mode(Settings(KEEN_HOME=tmp_path, KEEN_RUN_MODE="distributed", **extra))
    assert "KEEN_RUN_MODE=distributed needs PostgreSQL" in raised.value.message
    assert "KEEN_DATABASE_URL" in raised.value.message and raised.value.exit_code == 2


def test_distributed_without_procrastinate_says_to_install_the_postgres_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(
        sys.modules, "procrastinate", None
    )  # Python's marker of a module that cannot be imported
    settings = Settings(KEEN_HOME=tmp_path, KEEN_RUN_MODE="distributed", KEEN_DATABASE_URL=POSTGRES)
    with pytest.raises(ConfigError, match=r"needs procrastinate.*keens\[postgres\]"):
        check_run_mode(settings)
