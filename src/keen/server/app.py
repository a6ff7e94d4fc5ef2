"""`create_app`: the FastAPI app of `keen serve` (uvicorn calls it as a factory; tests build it
in-process with their own settings)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware

from keen import __version__
from keen.config import Settings, get_settings
from keen.events.bus import EventBus
from keen.runner.server_runs import ServerRuns
from keen.server.dashboard import install_dashboard
from keen.server.errors import install_error_handlers
from keen.server.middleware import BodyLimitMiddleware, RequestContextMiddleware, SecurityHeadersMiddleware
from keen.server.openapi import install_openapi
from keen.server.ratelimit import RateLimiter, RateLimitHeadersMiddleware, global_rate_limit
from keen.server.routes import ROUTERS
from keen.store.db import Database

logger = logging.getLogger("keen.server")
DESCRIPTION = "keen's HTTP API. Every error is one envelope: `{success: false, error, request_id}`."
CORS_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
CORS_HEADERS = ["Authorization", "Content-Type", "Idempotency-Key", "Last-Event-ID", "X-Request-ID"]
CORS_EXPOSED = ["X-Request-ID", "Retry-After", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"]


def create_app(settings: Settings | None = None) -> FastAPI:
    """The app over `settings` (default: the environment's). Its database is opened here and
    disposed when the app's lifespan ends."""
    settings = settings or get_settings()
    db = Database(settings.database_url)
    runs = ServerRuns(settings, db, EventBus())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            await runs.open_queue()
            await resume_runs(runs)
            yield
        finally:
            try:
                await runs.shutdown()
            finally:
                await db.dispose()

    app = FastAPI(
        title="keen",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        dependencies=[Depends(global_rate_limit)],
    )
    app.state.settings = settings
    app.state.db = db
    app.state.rate_limiter = RateLimiter(settings)
    app.state.runs = runs  # the agent runs of this process (keen.runner.server_runs)
    app.state.bus = runs.bus  # their live events, for the SSE and WebSocket streams
    install_error_handlers(app)
    install_middleware(app, settings)
    for router in ROUTERS:
        app.include_router(router)
    install_dashboard(app)
    install_openapi(app)
    return app


async def resume_runs(runs: ServerRuns) -> None:
    """Take up the runs a crash or a stop left (a failure to is logged: the API still serves)."""
    try:
        await runs.recover()
    except Exception:
        logger.exception("could not resume the sessions left running")


def cors_origins(settings: Settings) -> list[str]:
    return [origin.strip() for origin in settings.keen_cors_origins.split(",") if origin.strip()]


def install_middleware(app: FastAPI, settings: Settings) -> None:
    """Outermost first: security headers, request context, CORS, body limit, rate-limit headers.
    (`add_middleware` puts each one outside those added before it.)"""
    app.add_middleware(RateLimitHeadersMiddleware)
    app.add_middleware(BodyLimitMiddleware, limit=settings.keen_max_body_bytes)
    origins = cors_origins(settings)
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=CORS_METHODS,
            allow_headers=CORS_HEADERS,
            expose_headers=CORS_EXPOSED,
            max_age=600,
        )
    app.add_middleware(RequestContextMiddleware)
    app.add_middleware(SecurityHeadersMiddleware)
