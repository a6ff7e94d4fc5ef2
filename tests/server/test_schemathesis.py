"""API fuzzing: schemathesis generates requests for every operation of `/openapi.json` (routes
added later included, as they appear in the schema) and checks that the server never answers
with a 5xx, answers only with documented statuses and matches the documented response schemas."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import pytest
import schemathesis
from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from schemathesis.checks import (
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.failures import FailureGroup
from schemathesis.generation.modes import GenerationMode

from helpers import write_script
from keen.config import Settings
from keen.server import create_app
from keen.server.schemas import StrictModel
from keen.store.db import run_migrations

CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance, negative_data_rejection]


def fuzz_app(home: Path) -> FastAPI:
    """The app over a migrated SQLite file, with limits high enough that fuzzing is not just 429s
    and a scripted model so that readiness can pass."""
    home.mkdir(parents=True, exist_ok=True)
    run_migrations(f"sqlite:///{home / 'keen.db'}")
    script = write_script(home / "script.json", [{"text": "done"}])
    return create_app(
        Settings(
            KEEN_HOME=home,
            KEEN_MODEL=f"scripted:{script}",
            KEEN_RATE_LIMIT="100000/minute",
            KEEN_RATE_LIMIT_AUTH="100000/minute",
        )
    )


def _fuzz_home() -> Path:
    home = Path(tempfile.mkdtemp(prefix="keen-fuzz-"))
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    return home / "home"


# Built at collection: schemathesis makes one test per operation of the schema it is given
# (its lazy fixture loader does not work with pytest 9).
schema = schemathesis.openapi.from_asgi("/openapi.json", fuzz_app(_fuzz_home()))


@schema.parametrize()
@settings(max_examples=25, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_operation_answers_as_documented(case: schemathesis.Case) -> None:
    case.call_and_validate(checks=CHECKS)


# The harness itself: each kind of fault it exists to catch is caught on a route made to have it.
broken = APIRouter(prefix="/broken")


class Divisor(StrictModel):
    n: int


class Lax(BaseModel):
    n: int


class Value(BaseModel):
    value: int


@broken.post("/divide", response_model=Value)
async def divide(body: Divisor) -> Value:
    return Value(value=100 // body.n)


@broken.get("/teapot")
async def teapot(x: int = 0) -> JSONResponse:
    return JSONResponse({"value": 1}, status_code=418 if x > 5 else 200)


@broken.post("/lax", response_model=Value)
async def lax(body: Lax) -> Value:
    return Value(value=body.n)


@broken.get("/shape", response_model=Value)
async def shape() -> JSONResponse:
    return JSONResponse({"value": "not a number"})


@pytest.mark.parametrize(
    ("method", "path", "failure"),
    [
        ("POST", "/broken/divide", "Server error"),
        ("GET", "/broken/teapot", "Undocumented status code"),
        ("POST", "/broken/lax", "Schema-violating request accepted"),
        ("GET", "/broken/shape", "Response violates schema"),
    ],
)
def test_the_fuzzing_catches_a_broken_route(tmp_path: Path, method: str, path: str, failure: str) -> None:
    app = fuzz_app(tmp_path / "home")
    app.include_router(broken)
    operation = schemathesis.openapi.from_asgi("/openapi.json", app)[path][method]
    cases = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE)
    )

    @given(case=cases)
    @settings(max_examples=100, derandomize=True, deadline=None, database=None)
    def fuzz(case: schemathesis.Case) -> None:
        case.call_and_validate(checks=CHECKS)

    with pytest.raises(FailureGroup) as caught:
        fuzz()
    assert failure in str(caught.value)
