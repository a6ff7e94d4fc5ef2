"""`/health/live` answers while the process runs; `/health/ready` only when the database answers,
its schema is current and the configured model can be used (503 in the envelope otherwise)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
from fastapi import FastAPI

from helpers import write_script
from keen.store.db import HEAD_REVISION, run_migrations

ClientFor = Callable[..., httpx.AsyncClient]
MakeApp = Callable[..., FastAPI]


def scripted_model(home: Path) -> str:
    return f"scripted:{write_script(home / 'script.json', [{'text': 'done'}])}"


async def get(app: FastAPI, client_for: ClientFor, path: str) -> httpx.Response:
    async with client_for(app) as client:
        return await client.get(path)


async def test_live_answers(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/live")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


async def test_ready_when_database_schema_and_model_are_fine(
    make_app: MakeApp, client_for: ClientFor, keen_home: Path
) -> None:
    app = make_app(KEEN_MODEL=scripted_model(keen_home))
    response = await get(app, client_for, "/health/ready")
    assert response.status_code == 200, response.text
    checks = response.json()["checks"]
    assert {name: c["ok"] for name, c in checks.items()} == {
        "database": True,
        "migrations": True,
        "model": True,
        "sandbox": True,
    }
    assert checks["migrations"]["detail"] == f"at revision {HEAD_REVISION}"
    summary = (await get(app, client_for, "/health")).json()
    assert summary["status"] == "ok" and summary["version"]


async def test_not_ready_without_a_usable_model(make_app: MakeApp, client_for: ClientFor) -> None:
    app = make_app()  # the default Claude model and no ANTHROPIC_API_KEY
    response = await get(app, client_for, "/health/ready")
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "not_ready" and error["type"] == "unavailable"
    assert set(error["details"]["failed"]) == {"model"}
    assert "ANTHROPIC_API_KEY" in error["details"]["failed"]["model"]
    summary = await get(app, client_for, "/health")
    assert summary.status_code == 200 and summary.json()["status"] == "degraded"


async def test_not_ready_on_a_database_behind_this_keen(
    make_app: MakeApp, client_for: ClientFor, tmp_path: Path, keen_home: Path
) -> None:
    old = tmp_path / "old.db"
    run_migrations(f"sqlite:///{old}", "0001")
    app = make_app(KEEN_DATABASE_URL=f"sqlite+aiosqlite:///{old}", KEEN_MODEL=scripted_model(keen_home))
    response = await get(app, client_for, "/health/ready")
    assert response.status_code == 503
    failed = response.json()["error"]["details"]["failed"]
    assert set(failed) == {"migrations"}
    assert "0001" in failed["migrations"] and "keen db upgrade" in failed["migrations"]


async def test_not_ready_when_the_database_does_not_answer(
    make_app: MakeApp, client_for: ClientFor, keen_home: Path
) -> None:
    app = make_app(
        KEEN_DATABASE_URL="postgresql+psycopg://postgres@127.0.0.1:9/keen",
        KEEN_MODEL=scripted_model(keen_home),
    )
    response = await get(app, client_for, "/health/ready")
    assert response.status_code == 503
    failed = response.json()["error"]["details"]["failed"]
    assert failed["database"].startswith("unreachable") and failed["migrations"] == "skipped"
    assert (await get(app, client_for, "/health/live")).status_code == 200


async def test_not_ready_when_the_rate_limit_redis_does_not_answer(
    make_app: MakeApp, client_for: ClientFor, keen_home: Path
) -> None:
    app = make_app(KEEN_REDIS_URL="redis://127.0.0.1:9/0", KEEN_MODEL=scripted_model(keen_home))
    response = await get(app, client_for, "/health/ready")
    assert response.status_code == 503
    assert response.json()["error"]["details"]["failed"] == {"rate_limits": "redis unreachable"}
