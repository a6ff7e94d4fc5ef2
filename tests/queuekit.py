"""The run queue of distributed mode on a test's own PostgreSQL database, driven through
procrastinate's own API: a worker's heartbeat row, jobs deferred to keen's queue and taken."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import procrastinate
import psycopg

from keen.runner.run_mode import QUEUE
from keen.store.db import run_migrations

NOOP_TASK = "keen.tests.noop"


async def migrate_with_queue(owner_url: str) -> None:
    """keen's migrations and procrastinate's schema (applied here when the migrations did not)."""
    await asyncio.to_thread(run_migrations, owner_url)
    async with await psycopg.AsyncConnection.connect(owner_url) as conn:
        present = await (await conn.execute("SELECT to_regclass('procrastinate_jobs')")).fetchone()
    if present is None or present[0] is None:
        async with queue_app(owner_url) as app:
            await app.schema_manager.apply_schema_async()


@asynccontextmanager
async def queue_app(url: str) -> AsyncIterator[procrastinate.App]:
    """A procrastinate app on `url` with a task of keen's queue that does nothing."""
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=url))

    @app.task(name=NOOP_TASK, queue=QUEUE)
    async def noop(n: int) -> None:
        return None

    async with app.open_async():
        yield app


async def defer(app: procrastinate.App, count: int, queue: str = QUEUE) -> None:
    task = app.tasks[NOOP_TASK].configure(queue=queue)
    for n in range(count):
        await task.defer_async(n=n)
