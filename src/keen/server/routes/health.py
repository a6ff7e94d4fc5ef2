"""`/health` (summary), `/health/live` (the process answers) and `/health/ready` (it can serve:
the database answers, its schema is this keen's, the configured model can be used; in distributed
mode also the run queue exists and at least one worker is alive to take its jobs)."""

from __future__ import annotations

import asyncio
from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from sqlalchemy import text

from keen import __version__
from keen.config import Settings
from keen.errors import ConfigError, KeenError
from keen.runner.run_mode import QueueSchemaMissing, read_queue_state
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


class Queue(BaseModel):
    """The run queue of distributed mode (absent in inprocess mode)."""

    waiting: int = Field(description="Runs queued, not yet taken by a worker")
    running: int = Field(description="Runs a worker is running")
    workers: int = Field(description="Workers whose heartbeat is newer than KEEN_WORKER_STALL_SECONDS")


class Ready(BaseModel):
    status: Literal["ready"] = "ready"
    checks: dict[str, Check]
    queue: Queue | None = Field(default=None, description="Distributed mode only")


class Summary(BaseModel):
    status: Literal["ok", "degraded"]
    version: str
    checks: dict[str, Check]
    queue: Queue | None = Field(default=None, description="Distributed mode only")


async def run_checks(settings: Settings, db: Database, limiter: RateLimiter) -> dict[str, Check]:
    checks, _ = await health_report(settings, db, limiter)
    return checks


async def health_report(
    settings: Settings, db: Database, limiter: RateLimiter
) -> tuple[dict[str, Check], Queue | None]:
    """Every check by name, and the run queue when runs are distributed and it could be read."""
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
    queue = None
    if settings.keen_run_mode == "distributed":
        if checks["database"].ok:
            queue, checks["queue"], checks["workers"] = await _queue(db, settings)
        else:
            checks["queue"] = checks["workers"] = Check(ok=False, detail="skipped")
    return checks, queue


async def _queue(db: Database, settings: Settings) -> tuple[Queue | None, Check, Check]:
    """The queue's jobs and live workers: without a worker, runs are accepted but never start."""
    try:
        state = await asyncio.wait_for(read_queue_state(db, settings), CHECK_TIMEOUT_SECONDS)
    except QueueSchemaMissing as exc:
        missing = Check(ok=False, detail=str(exc))
        return None, missing, Check(ok=False, detail="skipped")
    except Exception as exc:  # a driver error (e.g. no permission) or the timeout
        failed = Check(ok=False, detail=f"unreadable: {type(exc).__name__}")
        return None, failed, Check(ok=False, detail="skipped")
    queue = Queue(waiting=state.waiting, running=state.running, workers=state.workers)
    jobs = Check(ok=True, detail=f"{state.waiting} waiting, {state.running} running")
    stall = f"{settings.keen_worker_stall_seconds:g} s"
    if state.workers:
        workers = Check(ok=True, detail=f"{state.workers} live (heartbeat within {stall})")
    else:
        workers = Check(
            ok=False, detail=f"no live worker (none with a heartbeat within {stall}): start `keen worker`"
        )
    return queue, jobs, workers


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
    response_model_exclude_none=True,  # no `queue` in inprocess mode: its answer is as before
    summary="Ready to serve: database, migrations, model configuration and (distributed) the run queue",
    responses={
        503: {
            "model": ErrorEnvelope,
            "description": "Not ready: `details.failed` names each failed check with its reason; in "
            "distributed mode `details.queue` is the queue as read (null when it could not be)",
        }
    },
)
async def ready(request: Request, settings: SettingsDep, db: DatabaseDep) -> Ready:
    checks, queue = await health_report(settings, db, limiter_of(request))
    failed = {name: check.detail for name, check in checks.items() if not check.ok}
    if failed:
        summary = "; ".join(f"{name}: {detail}" for name, detail in failed.items())
        details: dict[str, object] = {"failed": failed}
        if settings.keen_run_mode == "distributed":
            details["queue"] = None if queue is None else queue.model_dump()
        raise NotReadyError(f"not ready: {summary}", details=details)
    return Ready(checks=checks, queue=queue)


@router.get(
    "",
    response_model=Summary,
    response_model_exclude_none=True,
    summary="Version and the state of each check",
)
async def summary(request: Request, settings: SettingsDep, db: DatabaseDep) -> Summary:
    checks, queue = await health_report(settings, db, limiter_of(request))
    status: Literal["ok", "degraded"] = "ok" if all(c.ok for c in checks.values()) else "degraded"
    return Summary(status=status, version=__version__, checks=checks, queue=queue)
