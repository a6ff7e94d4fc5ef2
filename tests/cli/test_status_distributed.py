"""`keen status --verbose` shows the run mode and, in distributed mode, the run queue of the
configured PostgreSQL (waiting and running runs, live workers), or why it cannot be read."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from helpers import complete, run_keen, write_script
from keen.store.db import run_migrations
from pgdb import app_login_role, pg_url
from queuekit import defer, queue_app

__all__ = ["pg_url"]


def scripted_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"KEEN_MODEL": f"scripted:{write_script(tmp_path / 's.json', [complete()])}", **extra}


def test_verbose_status_shows_the_inprocess_run_mode_and_no_queue(tmp_path: Path) -> None:
    result = run_keen("status", "--verbose", "--json", cwd=tmp_path, env=scripted_env(tmp_path))
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["run_mode"] == "inprocess" and "queue" not in data
    assert data["config"]["KEEN_RUN_MODE"] == "inprocess"
    text = run_keen("status", "--verbose", cwd=tmp_path, env=scripted_env(tmp_path)).stdout
    assert "run mode" in text and "inprocess (agent runs are tasks of the keen serve process)" in text


def test_status_in_distributed_mode_on_sqlite_is_a_problem_naming_the_database_url(tmp_path: Path) -> None:
    result = run_keen(
        "status", "--verbose", "--json", cwd=tmp_path, env=scripted_env(tmp_path, KEEN_RUN_MODE="distributed")
    )
    assert result.returncode == 2
    data = json.loads(result.stdout)
    assert any("KEEN_RUN_MODE=distributed needs PostgreSQL" in p for p in data["problems"])
    assert data["queue"] == {"unavailable": "no PostgreSQL database (KEEN_DATABASE_URL)"}


def test_verbose_status_in_distributed_mode_counts_the_queue_and_live_workers(
    tmp_path: Path, pg_url: str
) -> None:
    async def prepare() -> None:
        async with queue_app(pg_url) as queue:
            await queue.job_manager.register_worker()
            await defer(queue, 2)

    run_migrations(pg_url)
    asyncio.run(prepare())
    with app_login_role(pg_url) as url:
        env = scripted_env(
            tmp_path,
            KEEN_RUN_MODE="distributed",
            KEEN_DATABASE_URL=url.replace("postgresql://", "postgresql+psycopg://", 1),
            # The worker row gets no further heartbeat: it must stay live across two slow commands.
            KEEN_WORKER_STALL_SECONDS="600",
        )
        data = json.loads(run_keen("status", "--verbose", "--json", cwd=tmp_path, env=env).stdout)
        result = run_keen("status", "--verbose", cwd=tmp_path, env=env)
    assert data["run_mode"] == "distributed" and data["problems"] == []
    assert data["queue"] == {"waiting": 2, "running": 0, "workers": 1}
    assert result.returncode == 0, result.stderr
    assert "2 waiting, 0 running, 1 live workers" in result.stdout
    assert "distributed (agent runs are queued jobs that keen worker processes run)" in result.stdout


def test_verbose_status_says_the_queue_is_unavailable_before_db_upgrade(tmp_path: Path, pg_url: str) -> None:
    env = scripted_env(
        tmp_path,
        KEEN_RUN_MODE="distributed",
        KEEN_DATABASE_URL=pg_url.replace("postgresql://", "postgresql+psycopg://", 1),
    )
    data = json.loads(run_keen("status", "--verbose", "--json", cwd=tmp_path, env=env).stdout)
    assert data["queue"] == {"unavailable": "the procrastinate schema is missing: run `keen db upgrade`"}


def test_verbose_status_with_an_unreachable_database_says_so_without_a_traceback(tmp_path: Path) -> None:
    password = "hunter2-not-shown"
    env = scripted_env(
        tmp_path,
        KEEN_RUN_MODE="distributed",
        KEEN_DATABASE_URL=f"postgresql+psycopg://keen:{password}@127.0.0.1:9/keen",
    )
    result = run_keen("status", "--verbose", cwd=tmp_path, env=env)
    assert result.returncode == 2
    assert "unavailable: database unreachable" in result.stdout
    assert "cannot connect to the database" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert password not in result.stdout + result.stderr
