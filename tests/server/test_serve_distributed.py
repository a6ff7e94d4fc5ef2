"""`keen serve` with `KEEN_RUN_MODE=distributed`, as a subprocess: refused before anything starts
without PostgreSQL; on PostgreSQL it serves and `/health/ready` reports the queue."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from helpers import run_keen
from keen.store.db import run_migrations
from pgdb import app_login_role, pg_url
from serverkit import Server, free_port

__all__ = ["pg_url"]
pytestmark = pytest.mark.slow


def test_serve_in_distributed_mode_on_sqlite_is_refused_before_anything_starts(tmp_path: Path) -> None:
    home = tmp_path / "home"
    result = run_keen(
        "serve",
        "--port",
        str(free_port()),
        cwd=tmp_path,
        env={"KEEN_HOME": str(home), "KEEN_RUN_MODE": "distributed"},
        timeout=60,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "KEEN_RUN_MODE=distributed needs PostgreSQL" in lines[0]
    assert "KEEN_DATABASE_URL" in lines[0] and "Traceback" not in result.stderr
    assert not home.exists()  # no database, no secret, no home


def test_serve_in_distributed_mode_on_postgresql_serves_and_reports_no_live_worker(
    tmp_path: Path, pg_url: str
) -> None:
    run_migrations(pg_url)
    with app_login_role(pg_url) as url:
        env = {
            "KEEN_RUN_MODE": "distributed",
            "KEEN_DATABASE_URL": url.replace("postgresql://", "postgresql+psycopg://", 1),
            "KEEN_SECRET_KEY": "x" * 48,
        }
        server = Server(tmp_path / "home", env)
        try:
            server.wait_live()
            ready = httpx.get(f"{server.url}/health/ready", timeout=10)
        finally:
            assert server.stop(), server.stderr
    assert ready.status_code == 503
    details = ready.json()["error"]["details"]
    assert details["failed"]["workers"].startswith("no live worker")
    assert details["queue"] == {"waiting": 0, "running": 0, "workers": 0}
    assert (
        "warning: KEEN_REDIS_URL is not set, so each replica counts rate limits on its own" in server.stderr
    )
