"""`/health` (summary), `/health/live` (the process answers) and `/health/ready` (it can serve:
the database answers, its schema is this keen's, the configured model can be used)."""

from __future__ import annotations

import asyncio
from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel
from sqlalchemy import text

from keen import __version__
from keen.config import Settings
from keen.errors import ConfigError, KeenError
from keen.server.deps import DatabaseDep, SettingsDep
from keen.server.ratelimit import RateLimiter, limiter_of
from keen.server.schemas import ErrorEnvelope
from keen.store.db import HEAD_REVISION, Database

router = APIRouter(prefix="/health", tags=["health"])
CHECK_TIMEOUT_SECONDS = 5.0


class NotReadyError(KeenError):
    http_status = 503
    code = "not_ready"


class Check(BaseModel):
    ok: bool
    detail: str


class Live(BaseModel):
    status: Literal["ok"] = "ok"


class Ready(BaseModel):
    status: Literal["ready"] = "ready"
    checks: dict[str, Check]


class Summary(BaseModel):
    status: Literal["ok", "degraded"]
    version: str
    checks: dict[str, Check]


async def run_checks(settings: Settings, db: Database, limiter: RateLimiter) -> dict[str, Check]:
    checks = {"database": await _database(db)}
    checks["migrations"] = (
        await _migrations(db) if checks["database"].ok else Check(ok=False, detail="skipped")
    )
    checks["model"] = _model(settings)
    checks["sandbox"] = _sandbox(settings)
    if limiter.uses_redis:
        reachable = await limiter.check()
        checks["rate_limits"] = Check(
            ok=reachable, detail=f"redis {'reachable' if reachable else 'unreachable'}"
        )
    return checks


async def _database(db: Database) -> Check:
    async def ping() -> None:
        async with db.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    try:
        await asyncio.wait_for(ping(), CHECK_TIMEOUT_SECONDS)
    except Exception as exc:  # any driver error or the timeout means it cannot be used
        return Check(ok=False, detail=f"unreachable: {type(exc).__name__}")
    return Check(ok=True, detail="reachable")


async def _migrations(db: Database) -> Check:
    revision = await db.current_revision()
    if revision == HEAD_REVISION:
        return Check(ok=True, detail=f"at revision {revision}")
    found = f"at revision {revision}" if revision else "not initialised"
    return Check(ok=False, detail=f"{found}, needs {HEAD_REVISION}: run `keen db upgrade`")


def _model(settings: Settings) -> Check:
    from keen.llm.factory import check_model_config

    try:
        check_model_config(settings.keen_model, settings)
    except ConfigError as exc:
        return Check(ok=False, detail=exc.message)
    return Check(ok=True, detail=settings.keen_model)


def _sandbox(settings: Settings) -> Check:
    """Which sandbox agent commands run in; not ready when server mode would refuse to run them."""
    from keen.tools.sandbox import policy_from_settings, require_sandbox

    try:
        require_sandbox(settings, "server")
    except ConfigError as exc:
        return Check(ok=False, detail=exc.message)
    return Check(ok=True, detail=policy_from_settings(settings).describe())


@router.get("/live", response_model=Live, summary="The process answers")
async def live() -> Live:
    return Live()


@router.get(
    "/ready",
    response_model=Ready,
    summary="Ready to serve: database, migrations and model configuration",
    responses={503: {"model": ErrorEnvelope, "description": "Not ready (details name the failed checks)"}},
)
async def ready(request: Request, settings: SettingsDep, db: DatabaseDep) -> Ready:
    checks = await run_checks(settings, db, limiter_of(request))
    failed = {name: check.detail for name, check in checks.items() if not check.ok}
    if failed:
        summary = "; ".join(f"{name}: {detail}" for name, detail in failed.items())
        raise NotReadyError(f"not ready: {summary}", details={"failed": failed})
    return Ready(checks=checks)


@router.get("", response_model=Summary, summary="Version and the state of each check")
async def summary(request: Request, settings: SettingsDep, db: DatabaseDep) -> Summary:
    checks = await run_checks(settings, db, limiter_of(request))
    status: Literal["ok", "degraded"] = "ok" if all(c.ok for c in checks.values()) else "degraded"
    return Summary(status=status, version=__version__, checks=checks)
