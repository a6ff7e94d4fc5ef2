"""`/health/ready` in distributed mode also reads the run queue on the test's own PostgreSQL
(migrated by its owner, read by the server as a login role of `keen_app`):
the waiting and running runs of keen's queue and the live workers; it is not ready without a
live worker or before the queue's schema exists. Workers and jobs are made with procrastinate's
own API, as a `keen worker` makes them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from keen.runner.queue import QUEUE
from keen.store.db import run_migrations
from pgdb import app_login_role, pg_url
from queuekit import defer, queue_app
from server.test_health import scripted_model

__all__ = ["pg_url"]
ClientFor = Callable[..., httpx.AsyncClient]
MakeApp = Callable[..., FastAPI]


def sqlalchemy_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


@pytest.fixture
def app_url(pg_url: str) -> Iterator[str]:
    """The test's database, migrated to head (the queue's schema included), as the app role."""
    run_migrations(pg_url)
    with app_login_role(pg_url) as url:
        yield url


@pytest.fixture
def distributed_app(make_app: MakeApp, pg_url: str, keen_home: Path) -> Callable[..., FastAPI]:
    """Apps in distributed mode on the test's database (`url`: another one, or another role)."""

    def make(url: str = pg_url, **overrides: Any) -> FastAPI:
        env = {
            "KEEN_DATABASE_URL": sqlalchemy_url(url),
            "KEEN_RUN_MODE": "distributed",
            "KEEN_MODEL": scripted_model(keen_home),
            **overrides,
        }
        return make_app(**env)

    return make


async def get(app: FastAPI, client_for: ClientFor, path: str) -> httpx.Response:
    async with client_for(app) as client:
        return await client.get(path)


async def test_ready_counts_the_waiting_and_running_runs_of_keens_queue_and_the_live_workers(
    distributed_app: Callable[..., FastAPI], client_for: ClientFor, app_url: str
) -> None:
    app = distributed_app(app_url, KEEN_WORKER_STALL_SECONDS="8")
    async with queue_app(app_url) as queue:
        worker = await queue.job_manager.register_worker()
        await queue.job_manager.register_worker()
        await defer(queue, 3)
        await defer(queue, 2, queue="someone-elses")  # another queue's jobs are not keen's runs
        taken = await queue.job_manager.fetch_job(queues=[QUEUE], worker_id=worker)
        assert taken is not None
        response = await get(app, client_for, "/health/ready")
        summary = (await get(app, client_for, "/health")).json()
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["queue"] == {"waiting": 2, "running": 1, "workers": 2}
    assert body["checks"]["queue"] == {"ok": True, "detail": "2 waiting, 1 running"}
    assert body["checks"]["workers"] == {"ok": True, "detail": "2 live (heartbeat within 8 s)"}
    assert summary["status"] == "ok" and summary["queue"] == body["queue"]


async def test_not_ready_without_a_live_worker_until_a_heartbeat_is_fresh_again(
    distributed_app: Callable[..., FastAPI], client_for: ClientFor, app_url: str
) -> None:
    app = distributed_app(app_url, KEEN_WORKER_STALL_SECONDS="1")
    async with queue_app(app_url) as queue:
        await defer(queue, 1)
        nobody = await get(app, client_for, "/health/ready")
        worker = await queue.job_manager.register_worker()
        live = await get(app, client_for, "/health/ready")
        await asyncio.sleep(1.5)  # its heartbeat is now older than the stall time
        stalled = await get(app, client_for, "/health/ready")
        await queue.job_manager.update_heartbeat(worker)
        again = await get(app, client_for, "/health/ready")
    assert nobody.status_code == 503
    error = nobody.json()["error"]
    assert set(error["details"]["failed"]) == {"workers"}
    assert "no live worker" in error["details"]["failed"]["workers"]
    assert "keen worker" in error["message"]
    assert error["details"]["queue"] == {"waiting": 1, "running": 0, "workers": 0}
    assert live.status_code == 200 and live.json()["queue"]["workers"] == 1
    assert stalled.status_code == 503
    assert stalled.json()["error"]["details"]["failed"]["workers"].startswith("no live worker")
    assert again.status_code == 200, again.text


async def test_not_ready_before_the_queue_schema_exists_and_says_to_run_db_upgrade(
    distributed_app: Callable[..., FastAPI], client_for: ClientFor, pg_url: str
) -> None:
    await asyncio.to_thread(run_migrations, pg_url, "0004")  # a database from before the queue
    response = await get(app=distributed_app(), client_for=client_for, path="/health/ready")
    assert response.status_code == 503
    details = response.json()["error"]["details"]
    assert "keen db upgrade" in details["failed"]["migrations"]
    assert "procrastinate schema is missing" in details["failed"]["queue"]
    assert "keen db upgrade" in details["failed"]["queue"]
    assert details["failed"]["workers"] == "skipped" and details["queue"] is None


async def test_an_unreachable_database_skips_the_queue_checks(
    distributed_app: Callable[..., FastAPI], client_for: ClientFor
) -> None:
    app = distributed_app("postgresql://postgres@127.0.0.1:9/keen")
    response = await get(app, client_for, "/health/ready")
    assert response.status_code == 503
    failed = response.json()["error"]["details"]["failed"]
    assert failed["database"].startswith("unreachable")
    assert failed["queue"] == failed["workers"] == "skipped"


async def test_inprocess_mode_on_postgresql_reports_no_queue(
    make_app: MakeApp, client_for: ClientFor, app_url: str, keen_home: Path
) -> None:
    app = make_app(KEEN_DATABASE_URL=sqlalchemy_url(app_url), KEEN_MODEL=scripted_model(keen_home))
    response = await get(app, client_for, "/health/ready")
    assert response.status_code == 200, response.text
    assert "queue" not in response.json()
    assert set(response.json()["checks"]) == {"database", "migrations", "model", "sandbox"}


async def test_the_openapi_schema_describes_the_queue_of_the_ready_answer(
    distributed_app: Callable[..., FastAPI], client_for: ClientFor
) -> None:
    schema = (await get(distributed_app(), client_for, "/openapi.json")).json()
    components = schema["components"]["schemas"]
    assert set(components["Queue"]["properties"]) == {"waiting", "running", "workers"}
    assert set(components["Queue"]["required"]) == {"waiting", "running", "workers"}
    assert "queue" in components["Ready"]["properties"] and "queue" not in components["Ready"]["required"]
