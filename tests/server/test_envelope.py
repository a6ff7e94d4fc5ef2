"""Every error is the one envelope of SPEC 8.5, whatever raised it; bad input is refused with
the field named and nothing written; an unhandled exception never shows its traceback."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from pydantic import BaseModel
from sqlalchemy import text

from keen.errors import ConflictError, NotFoundError, RateLimitedError
from keen.server.deps import DbSession
from keen.server.schemas import ErrorEnvelope, StrictModel

router = APIRouter(prefix="/t")


class Options(StrictModel):
    depth: int


class Note(StrictModel):
    text: str
    count: int
    urgent: bool = False
    options: Options | None = None


class Batch(StrictModel):
    counts: list[int]


class Stored(BaseModel):
    stored: str


@router.post("/notes", response_model=Stored)
async def add_note(note: Note, session: DbSession) -> Stored:
    await session.execute(text("INSERT INTO probe (v) VALUES (:v)"), {"v": note.text})
    if note.text == "fail after writing":
        raise RuntimeError("secret internal detail /etc/keen")
    if note.text == "conflict after writing":
        raise ConflictError("that note exists", details={"text": note.text})
    return Stored(stored=note.text)


@router.post("/batch")
async def batch(body: Batch) -> dict[str, int]:
    return {"n": len(body.counts)}


@router.get("/items")
async def items(limit: int = 10) -> dict[str, int]:
    return {"limit": limit}


@router.get("/missing")
async def missing() -> None:
    raise NotFoundError("no such session")


@router.get("/slow-down")
async def slow_down() -> None:
    raise RateLimitedError("too many", retry_after=2.2)


@pytest.fixture
async def probe_app(make_app: Callable[..., FastAPI], keen_home: Path) -> FastAPI:
    app = make_app()
    with sqlite3.connect(keen_home / "keen.db") as conn:
        conn.execute("CREATE TABLE probe (v TEXT)")
    app.include_router(router)
    return app


@pytest.fixture
async def client(
    probe_app: FastAPI, client_for: Callable[..., httpx.AsyncClient]
) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(probe_app) as c:
        yield c


def stored_notes(home: Path) -> list[str]:
    with sqlite3.connect(home / "keen.db") as conn:
        return [row[0] for row in conn.execute("SELECT v FROM probe")]


def envelope(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    ErrorEnvelope.model_validate(body)
    assert body["success"] is False
    assert body["error"]["code"] == code
    assert body["request_id"] == response.headers["X-Request-ID"]
    return dict(body["error"])


def fields(error: dict[str, Any]) -> dict[str, str]:
    return {e["field"]: e["type"] for e in error["details"]["errors"]}


async def test_a_handled_write_is_committed(client: httpx.AsyncClient, keen_home: Path) -> None:
    response = await client.post("/t/notes", json={"text": "hello", "count": 1})
    assert response.status_code == 200, response.text
    assert stored_notes(keen_home) == ["hello"]


async def test_an_unhandled_exception_is_a_generic_500_rolled_back_and_logged_with_its_request_id(
    client: httpx.AsyncClient, keen_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="keen.server"):
        response = await client.post(
            "/t/notes",
            json={"text": "fail after writing", "count": 1},
            headers={"X-Request-ID": "trace-me-42"},
        )
    error = envelope(response, 500, "internal_error")
    assert error["type"] == "server_error"
    assert "secret" not in response.text and "Traceback" not in response.text and "/etc" not in response.text
    assert "request id" in error["message"]
    assert stored_notes(keen_home) == []
    logged = [r for r in caplog.records if "trace-me-42" in r.getMessage()]
    assert logged and logged[0].exc_info is not None


async def test_a_keen_error_keeps_its_status_code_and_details_and_rolls_back(
    client: httpx.AsyncClient, keen_home: Path
) -> None:
    response = await client.post("/t/notes", json={"text": "conflict after writing", "count": 1})
    error = envelope(response, 409, "conflict")
    assert error == {
        "type": "conflict",
        "code": "conflict",
        "message": "that note exists",
        "details": {"text": "conflict after writing"},
    }
    assert stored_notes(keen_home) == []
    assert envelope(await client.get("/t/missing"), 404, "not_found")["message"] == "no such session"


async def test_rate_limited_carries_retry_after_in_whole_seconds(client: httpx.AsyncClient) -> None:
    response = await client.get("/t/slow-down")
    error = envelope(response, 429, "rate_limited")
    assert response.headers["Retry-After"] == "3"
    assert error["type"] == "rate_limit_error"


async def test_malformed_json_is_400_and_writes_nothing(client: httpx.AsyncClient, keen_home: Path) -> None:
    response = await client.post(
        "/t/notes", content=b'{"text": "x", "count": ', headers={"Content-Type": "application/json"}
    )
    error = envelope(response, 400, "invalid_json")
    assert "not valid JSON" in error["message"]
    assert stored_notes(keen_home) == []


@pytest.mark.parametrize(
    ("body", "field", "kind"),
    [
        ({"text": "x", "count": "1"}, "count", "int_type"),
        ({"text": "x", "count": False}, "count", "int_type"),  # strict: false is not 0
        ({"text": "x", "count": 1.0}, "count", "int_type"),
        ({"text": "x", "count": 1, "urgent": 1}, "urgent", "bool_type"),
        ({"text": "x", "count": 1, "colour": "red"}, "colour", "extra_forbidden"),
        ({"text": "x", "count": 1, "options": {"depth": True}}, "options.depth", "int_type"),
        ({"count": 1}, "text", "missing"),
    ],
)
async def test_wrong_types_unknown_and_missing_fields_are_422_naming_the_field(
    client: httpx.AsyncClient, keen_home: Path, body: dict[str, Any], field: str, kind: str
) -> None:
    error = envelope(await client.post("/t/notes", json=body), 422, "invalid_input")
    assert error["type"] == "validation_error"
    assert fields(error) == {field: kind}
    assert field in error["message"]
    assert stored_notes(keen_home) == []


async def test_a_body_that_is_not_an_object_is_422(client: httpx.AsyncClient) -> None:
    error = envelope(await client.post("/t/notes", json=[1, 2]), 422, "invalid_input")
    assert error["details"]["errors"][0]["location"] == "body"


async def test_the_rejected_input_is_not_echoed(client: httpx.AsyncClient) -> None:
    response = await client.post("/t/notes", json={"text": "x", "count": "hunter2-password"})
    envelope(response, 422, "invalid_input")
    assert "hunter2" not in response.text


async def test_a_bad_query_parameter_is_named(client: httpx.AsyncClient) -> None:
    error = envelope(await client.get("/t/items", params={"limit": "many"}), 422, "invalid_input")
    assert error["details"]["errors"] == [
        {
            "field": "limit",
            "location": "query",
            "message": error["details"]["errors"][0]["message"],
            "type": "int_parsing",
        }
    ]


async def test_unknown_routes_and_methods_are_enveloped(client: httpx.AsyncClient) -> None:
    assert "/nowhere" in envelope(await client.get("/nowhere"), 404, "not_found")["message"]
    response = await client.delete("/t/items")
    envelope(response, 405, "method_not_allowed")
    assert response.headers["Allow"] == "GET"


async def test_a_10_mb_body_is_413_and_writes_nothing(client: httpx.AsyncClient, keen_home: Path) -> None:
    big = {"text": "x" * (10 * 1024 * 1024), "count": 1}
    error = envelope(await client.post("/t/notes", json=big), 413, "body_too_large")
    assert error["type"] == "payload_too_large"
    assert error["details"] == {"limit": 1024 * 1024}
    assert stored_notes(keen_home) == []


async def test_a_streamed_body_is_cut_off_at_the_limit(client: httpx.AsyncClient, keen_home: Path) -> None:
    chunk = b"x" * 65536
    sent = 0

    async def stream() -> AsyncIterator[bytes]:
        nonlocal sent
        yield b'{"text": "'
        for _ in range(160):  # 10 MB without a Content-Length
            sent += len(chunk)
            yield chunk
        yield b'", "count": 1}'

    response = await client.post("/t/notes", content=stream(), headers={"Content-Type": "application/json"})
    envelope(response, 413, "body_too_large")
    assert sent <= 1024 * 1024 + 2 * len(chunk)
    assert stored_notes(keen_home) == []


async def test_every_documented_error_status_uses_the_envelope_schema(probe_app: FastAPI) -> None:
    schema = probe_app.openapi()
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            for status in ("400", "413", "422", "429", "500"):
                content = operation["responses"][status]["content"]["application/json"]
                assert content["schema"] == {"$ref": "#/components/schemas/ErrorEnvelope"}, (
                    method,
                    path,
                    status,
                )


async def test_a_body_with_thousands_of_wrong_fields_gets_the_first_fifty(client: httpx.AsyncClient) -> None:
    error = envelope(await client.post("/t/batch", json={"counts": ["x"] * 5000}), 422, "invalid_input")
    assert len(error["details"]["errors"]) == 50 and error["details"]["omitted"] == 4950
    assert error["details"]["errors"][49]["field"] == "counts.49"
    assert "(and 4995 more)" in error["message"]
