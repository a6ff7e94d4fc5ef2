"""The app in-process over a real SQLite file with the migrations applied, and a client for it."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from keen.config import Settings
from keen.server import create_app
from keen.store.db import Database

AppFactory = Callable[..., FastAPI]


@pytest.fixture(scope="session")
def migrated_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated database file, copied for each test (migrating takes longer than copying)."""
    path = tmp_path_factory.mktemp("migrated") / "keen.db"

    async def migrate() -> None:
        db = Database(f"sqlite+aiosqlite:///{path}")
        try:
            await db.upgrade()
        finally:
            await db.dispose()

    asyncio.run(migrate())
    return path


@pytest.fixture
def settings_for(keen_home: Path, migrated_db: Path) -> Callable[..., Settings]:
    """Settings over this test's KEEN_HOME (holding a copy of the migrated database); keyword
    arguments override fields by their environment names."""

    def make(**overrides: Any) -> Settings:
        if not (keen_home / "keen.db").exists():
            shutil.copy(migrated_db, keen_home / "keen.db")
        return Settings(KEEN_HOME=keen_home, **overrides)

    return make


@pytest.fixture
async def make_app(settings_for: Callable[..., Settings]) -> AsyncIterator[AppFactory]:
    """Build apps with settings overrides; each one's lifespan runs and ends with the test."""
    stack: list[Any] = []

    def make(**overrides: Any) -> FastAPI:
        app = create_app(settings_for(**overrides))
        stack.append(app)
        return app

    yield make
    for app in stack:
        await app.state.db.dispose()


@pytest.fixture
async def app(make_app: AppFactory) -> FastAPI:
    return make_app()


ClientFactory = Callable[..., httpx.AsyncClient]


def _client_for(
    app: FastAPI, base_url: str = "http://testserver", client: tuple[str, int] = ("127.0.0.1", 50000)
) -> httpx.AsyncClient:
    """An HTTP client calling `app` in-process, as if from `client` (address, port)."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=client), base_url=base_url)


@pytest.fixture
def client_for() -> ClientFactory:
    return _client_for


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with _client_for(app) as c:
        yield c
