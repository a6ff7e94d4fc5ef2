"""Request ids, security headers and CORS on every response, errors included."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Request

from keen.server.logs import LOG_FORMAT, RequestIdFilter

ClientFor = Callable[..., httpx.AsyncClient]
GENERATED_ID = re.compile(r"[0-9a-f]{32}")
log = logging.getLogger("keen.server.test")
router = APIRouter(prefix="/t")


@router.get("/whoami")
async def whoami(request: Request) -> dict[str, str]:
    log.warning("serving whoami")
    return {"request_id": request.state.request_id}


@router.get("/boom")
async def boom() -> None:
    raise RuntimeError("boom")


@pytest.fixture
def app(make_app: Callable[..., FastAPI]) -> FastAPI:
    app = make_app()
    app.include_router(router)
    return app


async def test_a_valid_client_request_id_is_kept_everywhere(client: httpx.AsyncClient) -> None:
    response = await client.get("/t/whoami", headers={"X-Request-ID": "client.id-7_A"})
    assert response.headers["X-Request-ID"] == "client.id-7_A"
    assert response.json() == {"request_id": "client.id-7_A"}


@pytest.mark.parametrize("given", ["", "a" * 129, "has space", "semi;colon", "ünï"])
async def test_an_invalid_request_id_is_replaced_by_a_generated_one(
    client: httpx.AsyncClient, given: str
) -> None:
    response = await client.get("/t/whoami", headers={"X-Request-ID": given.encode()})
    assert GENERATED_ID.fullmatch(response.headers["X-Request-ID"])
    assert response.json()["request_id"] == response.headers["X-Request-ID"]


async def test_each_request_gets_its_own_id(client: httpx.AsyncClient) -> None:
    ids = {(await client.get("/health/live")).headers["X-Request-ID"] for _ in range(3)}
    assert len(ids) == 3 and all(GENERATED_ID.fullmatch(i) for i in ids)


async def test_log_lines_written_while_serving_carry_the_request_id(client: httpx.AsyncClient) -> None:
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = Collect()
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    log.addHandler(handler)
    try:
        await client.get("/t/whoami", headers={"X-Request-ID": "logged-1"})
        log.warning("outside any request")
    finally:
        log.removeHandler(handler)
    assert "[logged-1] keen.server.test: serving whoami" in lines[0]
    assert "[-] keen.server.test: outside any request" in lines[1]


@pytest.mark.parametrize(("path", "status"), [("/health/live", 200), ("/nowhere", 404), ("/t/boom", 500)])
async def test_security_headers_and_the_request_id_are_on_every_response(
    client: httpx.AsyncClient, path: str, status: int
) -> None:
    response = await client.get(path)
    assert response.status_code == status
    assert response.headers["X-Request-ID"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert "Strict-Transport-Security" not in response.headers  # plain HTTP


async def test_hsts_only_over_tls(app: FastAPI, client_for: ClientFor) -> None:
    async with client_for(app, base_url="https://keen.example") as tls:
        response = await tls.get("/health/live")
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")


async def test_the_docs_and_the_schema_are_served(client: httpx.AsyncClient) -> None:
    schema = await client.get("/openapi.json")
    assert schema.status_code == 200 and "/health/ready" in schema.json()["paths"]
    docs = await client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    # Swagger UI needs its CDN and an inline start script; the API's own policy stays strict.
    assert "cdn.jsdelivr.net" in docs.headers["Content-Security-Policy"]


async def test_no_cors_headers_without_configured_origins(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/live", headers={"Origin": "https://other.example"})
    assert "access-control-allow-origin" not in response.headers


async def test_cors_allows_only_the_configured_origins(
    make_app: Callable[..., FastAPI], client_for: ClientFor
) -> None:
    app = make_app(KEEN_CORS_ORIGINS="https://app.example, https://ops.example")
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "Authorization"}
    async with client_for(app) as client:
        allowed = await client.options("/health/live", headers={"Origin": "https://ops.example", **preflight})
        refused = await client.options(
            "/health/live", headers={"Origin": "https://evil.example", **preflight}
        )
        simple = await client.get("/health/live", headers={"Origin": "https://app.example"})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://ops.example"
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
    assert "access-control-allow-origin" not in refused.headers
    assert simple.headers["access-control-allow-origin"] == "https://app.example"
    assert "X-Request-ID" in simple.headers["access-control-expose-headers"]
    assert allowed.headers["X-Request-ID"] and allowed.headers["X-Frame-Options"] == "DENY"
