"""Isolation over HTTP: every route of the OpenAPI schema that takes a resource id answers 404 to
another user for the first user's resource, on SQLite and on PostgreSQL as the app role (where
row-level security checks it a second time)."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from authkit import API, bearer, http_sign_up
from helpers import call, complete, turn, write_script
from keen.config import Settings
from keen.server import create_app
from keen.store.db import run_migrations
from ledgerkit import grant
from pgdb import app_login_role, pg_url
from runkit import AGENTS, FAST, RUN_ENV

__all__ = ["pg_url"]

# Admin routes take ids of any account, and answer every non-admin 403 (tested with the admin routes).
ADMIN_PREFIX = "/api/v1/admin/"
Maker = Callable[[httpx.AsyncClient, dict[str, str]], Awaitable[str]]


async def _api_key(client: httpx.AsyncClient, headers: dict[str, str]) -> str:
    created = await client.post(f"{API}/api-keys", json={"name": "owned"}, headers=headers)
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


async def _session(client: httpx.AsyncClient, headers: dict[str, str]) -> str:
    """A running session whose workspace holds `owned.txt` (it ends a moment later)."""
    script = write_script(
        Path(tempfile.mkdtemp()) / "owned.json",
        [
            turn(call("write_files", files=[{"path": OWNED_FILE, "content": "mine"}])),
            turn(call("continue_work", next_action="finish"), delay_ms=800),
            complete(),
        ],
    )
    body = {"vision": "keep a file of my own", "options": {"model": f"scripted:{script}", **FAST}}
    started = await client.post(f"{AGENTS}/execute", json=body, headers=headers)
    assert started.status_code == 202, started.text
    session_id = str(started.json()["id"])
    async with asyncio.timeout(30):
        while True:
            events = await client.get(f"{AGENTS}/sessions/{session_id}/events", headers=headers)
            if any(e["type"] == "tool.finished" for e in events.json()["items"]):
                return session_id
            await asyncio.sleep(0.05)


async def _owned_file(client: httpx.AsyncClient, headers: dict[str, str]) -> str:
    return OWNED_FILE


# How to make the first user's resource for each path parameter a route may take. A route with a
# parameter missing here fails the test: a new resource route must say how to make its resource.
RESOURCES: dict[str, Maker] = {"key_id": _api_key, "session_id": _session, "path": _owned_file}
OWNED_FILE = "owned.txt"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/keen.db"
        run_migrations(url)
        yield url
        return
    owner_url = request.getfixturevalue("pg_url")
    run_migrations(owner_url)
    with app_login_role(owner_url) as url:
        yield url


@pytest.fixture
async def tenant_app(database_url: str, keen_home: Path) -> AsyncIterator[FastAPI]:
    # Each resource route gets a session of its own: more than 3 may still be running.
    settings = Settings(
        KEEN_HOME=keen_home, KEEN_DATABASE_URL=database_url, KEEN_MAX_RUNNING_SESSIONS="50", **RUN_ENV
    )
    application = create_app(settings)
    async with application.router.lifespan_context(application):  # runs are stopped with it
        yield application


def resource_operations(schema: dict[str, Any]) -> list[tuple[str, str, list[str], dict[str, Any]]]:
    found = []
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            params = [p["name"] for p in operation.get("parameters", []) if p["in"] == "path"]
            if params and not path.startswith(ADMIN_PREFIX):
                found.append((method.upper(), path, params, operation))
    return found


async def test_another_user_gets_404_for_every_resource_route(tenant_app: FastAPI) -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=tenant_app), base_url="http://test"
    ) as client:
        signed_up = await http_sign_up(client, "owner@example.org")
        owner = bearer(signed_up["access_token"])
        await grant(tenant_app.state.db, signed_up["user"]["id"], "100")
        other = bearer((await http_sign_up(client, "other@example.org"))["access_token"])
        operations = resource_operations((await client.get("/openapi.json")).json())
        assert ("DELETE", f"{API}/api-keys/{{key_id}}") in [(m, p) for m, p, _params, _op in operations]
        for method, path, params, operation in operations:
            missing = [p for p in params if p not in RESOURCES]
            assert not missing, f"{method} {path}: add how to make a {missing} to RESOURCES"
            assert not operation.get("requestBody", {}).get("required"), f"{method} {path}: give it a body"
            url = path
            for param in params:
                url = url.replace(f"{{{param}}}", await RESOURCES[param](client, owner))
            refused = await client.request(method, url, headers=other)
            assert refused.status_code == 404, (method, path, refused.status_code, refused.text)
            assert refused.json()["error"]["code"] == "not_found"
            allowed = await client.request(method, url, headers=owner)  # the id was a real one
            assert 200 <= allowed.status_code < 300, (method, path, allowed.text)
