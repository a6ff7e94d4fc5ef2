"""`create_app`: the FastAPI app of `keen serve` (uvicorn calls it as a factory; tests build it
in-process with their own settings)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from keen import __version__
from keen.config import Settings, get_settings
from keen.server.errors import install_error_handlers
from keen.server.middleware import RequestContextMiddleware
from keen.server.openapi import install_openapi
from keen.server.routes import ROUTERS
from keen.store.db import Database

DESCRIPTION = "keen's HTTP API. Every error is one envelope: `{success: false, error, request_id}`."


def create_app(settings: Settings | None = None) -> FastAPI:
    """The app over `settings` (default: the environment's). Its database is opened here and
    disposed when the app's lifespan ends."""
    settings = settings or get_settings()
    db = Database(settings.database_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await db.dispose()

    app = FastAPI(title="keen", version=__version__, description=DESCRIPTION, lifespan=lifespan)
    app.state.settings = settings
    app.state.db = db
    install_error_handlers(app)
    app.add_middleware(RequestContextMiddleware)
    for router in ROUTERS:
        app.include_router(router)
    install_openapi(app)
    return app
