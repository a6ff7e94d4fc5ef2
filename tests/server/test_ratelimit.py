"""Rate limits: the moving window, the RateLimit-* headers, 429 with Retry-After, per IP or per
user, in memory and shared through the real Redis of this machine."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Annotated

import coredis
import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, Header, Request, WebSocket
from fastapi.testclient import TestClient

from keen.server.ratelimit import STORAGE_TIMEOUT_SECONDS, auth_rate_limit, rate_limit, rate_limit_user

ClientFor = Callable[..., httpx.AsyncClient]
MakeApp = Callable[..., FastAPI]
REDIS = "redis://127.0.0.1:6379/0"
router = APIRouter(prefix="/t")


async def fake_user(request: Request, x_user: Annotated[str | None, Header()] = None) -> str | None:
    """What the auth layer does once it knows the user (here: whoever `X-User` names)."""
    if x_user is not None:
        await rate_limit_user(request, x_user)
    return x_user


@router.get("/open")
async def open_route() -> dict[str, bool]:
    return {"ok": True}


@router.get("/mine")
async def mine(user: Annotated[str | None, Depends(fake_user)]) -> dict[str, str | None]:
    return {"user": user}


@router.post("/login", dependencies=[Depends(auth_rate_limit)])
async def login() -> dict[str, bool]:
    return {"ok": True}


@router.websocket("/ws")
async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text(await websocket.receive_text())
    await websocket.close()


@router.get("/exports", dependencies=[Depends(rate_limit("exports", "1/minute"))])
async def exports() -> dict[str, bool]:
    return {"ok": True}


def limited(make_app: MakeApp, **settings: str) -> FastAPI:
    app = make_app(**{"KEEN_RATE_LIMIT": "3/minute", "KEEN_RATE_LIMIT_AUTH": "2/minute", **settings})
    app.include_router(router)
    return app


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    """A key prefix of this test's own in the real Redis, its keys deleted afterwards."""
    prefix = f"keen-test-{uuid.uuid4().hex[:10]}"
    yield prefix
    redis = coredis.Redis.from_url(REDIS)
    keys = await redis.keys(f"{prefix}*")
    if keys:
        await redis.delete(list(keys))


async def statuses(client: httpx.AsyncClient, path: str, n: int, **kwargs: object) -> list[int]:
    return [(await client.get(path, **kwargs)).status_code for _ in range(n)]  # type: ignore[arg-type]


async def test_the_global_limit_counts_down_then_refuses_with_retry_after(
    make_app: MakeApp, client_for: ClientFor
) -> None:
    async with client_for(limited(make_app)) as client:
        responses = [await client.get("/t/open") for _ in range(4)]
    assert [r.status_code for r in responses] == [200, 200, 200, 429]
    assert [r.headers["RateLimit-Remaining"] for r in responses] == ["2", "1", "0", "0"]
    assert all(r.headers["RateLimit-Limit"] == "3" for r in responses)
    assert responses[0].headers["RateLimit-Policy"] == "3;w=60"
    assert 0 < int(responses[0].headers["RateLimit-Reset"]) <= 60
    refused = responses[3]
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    error = refused.json()["error"]
    assert error["code"] == "rate_limited" and error["details"]["limit"] == "global"
    assert "3 per minute" in error["message"]
    assert refused.headers["X-Request-ID"]


async def test_each_ip_has_its_own_budget_and_health_probes_are_not_limited(
    make_app: MakeApp, client_for: ClientFor
) -> None:
    app = limited(make_app)
    async with (
        client_for(app, client=("10.0.0.1", 1)) as first,
        client_for(app, client=("10.0.0.2", 1)) as second,
    ):
        assert await statuses(first, "/t/open", 4) == [200, 200, 200, 429]
        assert await statuses(second, "/t/open", 1) == [200]
        assert await statuses(first, "/health/live", 5) == [200] * 5


async def test_authenticated_requests_count_per_user_not_per_ip(
    make_app: MakeApp, client_for: ClientFor
) -> None:
    async with client_for(limited(make_app)) as client:
        alice = {"Authorization": "Bearer a", "X-User": "alice"}
        bob = {"Authorization": "Bearer b", "X-User": "bob"}
        assert await statuses(client, "/t/mine", 4, headers=alice) == [200, 200, 200, 429]
        assert await statuses(client, "/t/mine", 3, headers=bob) == [200, 200, 200]
        assert await statuses(client, "/t/open", 1) == [200]  # the shared IP is untouched


async def test_credentials_nobody_checked_still_count_against_the_ip(
    make_app: MakeApp, client_for: ClientFor
) -> None:
    async with client_for(limited(make_app)) as client:
        junk = {"Authorization": "Bearer junk"}
        assert await statuses(client, "/t/open", 3, headers=junk) == [200, 200, 200]
        assert await statuses(client, "/t/open", 1) == [429]


async def test_the_auth_limit_is_per_ip_whoever_the_user(make_app: MakeApp, client_for: ClientFor) -> None:
    app = limited(make_app, KEEN_RATE_LIMIT="100/minute")
    async with client_for(app) as client:
        codes = [(await client.post("/t/login", headers={"X-User": f"u{i}"})).status_code for i in range(3)]
        assert codes == [200, 200, 429]
    async with client_for(app, client=("10.9.9.9", 1)) as other:
        assert (await other.post("/t/login")).status_code == 200


async def test_a_route_limit_and_the_global_one_show_the_tighter(
    make_app: MakeApp, client_for: ClientFor
) -> None:
    async with client_for(limited(make_app)) as client:
        first = await client.get("/t/exports")
        second = await client.get("/t/exports")
    assert first.status_code == 200 and first.headers["RateLimit-Limit"] == "1"
    assert first.headers["RateLimit-Remaining"] == "0"
    assert second.status_code == 429 and second.json()["error"]["details"]["limit"] == "exports"


async def test_redis_shares_the_count_between_app_instances(
    make_app: MakeApp, client_for: ClientFor, redis_prefix: str
) -> None:
    replicas = [
        limited(make_app, KEEN_REDIS_URL=REDIS, KEEN_RATE_LIMIT_PREFIX=redis_prefix) for _ in range(2)
    ]
    async with client_for(replicas[0]) as one, client_for(replicas[1]) as two:
        assert await statuses(one, "/t/open", 2) == [200, 200]
        assert await statuses(two, "/t/open", 2) == [200, 429]
        refused = await one.get("/t/open")
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    keys = await coredis.Redis.from_url(REDIS).keys(f"{redis_prefix}*")
    assert keys, "the counts are in Redis under the configured prefix"


async def test_an_unreachable_redis_lets_requests_through(make_app: MakeApp, client_for: ClientFor) -> None:
    app = limited(make_app, KEEN_REDIS_URL="redis://127.0.0.1:9/0")
    started = time.monotonic()
    async with client_for(app) as client:
        assert await statuses(client, "/t/open", 4) == [200] * 4
    assert time.monotonic() - started < 10


def test_websocket_routes_work_under_the_app_wide_limit(make_app: MakeApp) -> None:
    with TestClient(limited(make_app)) as client, client.websocket_connect("/t/ws") as ws:
        ws.send_text("hello")
        assert ws.receive_text() == "hello"


async def test_a_redis_that_stops_answering_delays_a_request_by_its_timeout_at_most(
    make_app: MakeApp, client_for: ClientFor
) -> None:
    with socket.socket() as silent:  # accepts connections (the kernel does) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        app = limited(make_app, KEEN_REDIS_URL=f"redis://127.0.0.1:{silent.getsockname()[1]}/0")
        async with client_for(app) as client:
            started = time.monotonic()
            response = await client.get("/t/open")
            elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert elapsed < STORAGE_TIMEOUT_SECONDS + 1
