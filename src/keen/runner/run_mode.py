"""Where agent runs happen (`KEEN_RUN_MODE`) and, in distributed mode, the state of their queue.

`check_run_mode` is the one test of whether the configured mode can run at all: a command that
serves or runs agent runs calls it before it starts anything, and `keen status` lists its problem.
`read_queue_state` counts the waiting and running jobs of keen's queue and the live workers,
for `/health/ready` and `keen status --verbose`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from sqlalchemy import text

from keen.config import Settings
from keen.errors import ConfigError
from keen.runner.queue import QUEUE
from keen.store.db import Database


def check_run_mode(settings: Settings) -> None:
    """Raise a `ConfigError` saying what to set when the configured run mode cannot work here:
    distributed runs are procrastinate jobs in keen's own PostgreSQL database."""
    if settings.keen_run_mode != "distributed":
        return
    if not is_postgresql(settings):
        raise ConfigError(
            "KEEN_RUN_MODE=distributed needs PostgreSQL: set KEEN_DATABASE_URL to a postgresql:// URL "
            "(the same database for every replica and worker), or set KEEN_RUN_MODE=inprocess"
        )
    try:
        importlib.import_module("procrastinate")
    except ImportError:
        raise ConfigError(
            "KEEN_RUN_MODE=distributed needs procrastinate: install keen with the postgres extra "
            "(pip install 'keens[postgres]')"
        ) from None


def is_postgresql(settings: Settings) -> bool:
    from sqlalchemy.engine import make_url

    if settings.keen_database_url is None:
        return False  # the SQLite file in KEEN_HOME
    try:
        return make_url(settings.database_url).get_backend_name() == "postgresql"
    except Exception:  # an unparseable URL is `check_database`'s to report
        return False


@dataclass(frozen=True)
class QueueState:
    waiting: int  # jobs of keen's queue not yet taken by a worker
    running: int  # jobs a worker is running
    workers: int  # workers whose heartbeat is newer than the stall time


class QueueSchemaMissing(Exception):
    """The database has no procrastinate tables: `keen db upgrade` has not been run."""


_JOBS = text(
    "SELECT status::text, count(*) FROM procrastinate_jobs "
    "WHERE queue_name = :queue AND status IN ('todo', 'doing') GROUP BY status"
)
# The same test of liveness procrastinate uses for stalled jobs: a heartbeat within the stall time.
_LIVE_WORKERS = text(
    "SELECT count(*) FROM procrastinate_workers WHERE last_heartbeat >= now() - make_interval(secs => :stall)"
)


async def read_queue_state(db: Database, settings: Settings) -> QueueState:
    """The queue as it is now, read with keen's own connection (procrastinate's tables live in
    the same database; no second pool is opened for a health check). Raises
    `QueueSchemaMissing` before `keen db upgrade`, and the driver's error when the database
    cannot be reached."""
    async with db.engine.connect() as conn:
        present = (await conn.execute(text("SELECT to_regclass('procrastinate_jobs')"))).scalar()
        if present is None:
            raise QueueSchemaMissing("the procrastinate schema is missing: run `keen db upgrade`")
        rows = (await conn.execute(_JOBS, {"queue": QUEUE})).all()
        counts = {status: int(count) for status, count in rows}
        workers = (
            await conn.execute(_LIVE_WORKERS, {"stall": settings.keen_worker_stall_seconds})
        ).scalar_one()
    return QueueState(waiting=counts.get("todo", 0), running=counts.get("doing", 0), workers=int(workers))
