"""The run queue of distributed mode on a test's own PostgreSQL database (its schema comes with
keen's migrations), driven through procrastinate's own API: a worker's heartbeat row, jobs
deferred to keen's queue and taken."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import procrastinate

from keen.runner.queue import QUEUE

NOOP_TASK = "keen.tests.noop"


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
