"""Distributed runs (`KEEN_RUN_MODE=distributed`): each agent run is a procrastinate job on the
same PostgreSQL, run by whichever `keen worker` takes it.

- `defer_run` queues a session's run on the caller's own database connection, so the job is
  committed with the session row that asks for it (a session never exists without its job).
  One run per session at a time: the job's `queueing_lock` (one waiting) and `lock` (one
  running) are the session id.
- `run_session` is the job: the worker's `ServerRuns` starts the session, or resumes it from its
  events when another worker began it (that worker's open holds are released first).
- Abort (procrastinate's cancel with abort, from any replica) reaches the job as a cancellation:
  the agent is cancelled, its commands killed, its holds released, the session ends cancelled.
- Takeover: procrastinate reports the jobs of workers whose heartbeat stalled but does not retry
  them; every worker's recovery loop queues them again (`requeue_stalled`).
- A worker told to stop finishes its runs at a step boundary (or suspends them when the grace
  period ends) and hands each back to the queue: the job is retried a second later, by another
  worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from keen.config import Settings
from keen.events.pg_bus import libpq_url

if TYPE_CHECKING:
    import procrastinate

    from keen.runner.server_runs import ServerRuns

log = logging.getLogger("keen.runner.queue")

QUEUE = "keen-runs"  # the queue agent runs are deferred to
RUN_TASK = "keen.run_session"
HANDED_BACK_ATTEMPTS = 1000  # a run may be handed back (worker stops) this often before it fails
HANDED_BACK_WAIT_SECONDS = 1  # before a run handed back may start again
RUNS_KEY = "keen_runs"  # where a worker's `ServerRuns` is in a job's additional context


class HandedBack(Exception):
    """A run goes back to the queue (its worker stops, or the database failed before it could
    start): the job is retried after `HANDED_BACK_WAIT_SECONDS`, by whichever worker takes it."""


def queue_app(settings: Settings, *, pool_size: int = 4) -> procrastinate.App:
    """The procrastinate app of this process (open it with `async with app.open_async()`)."""
    from keen.runner.run_mode import check_run_mode

    check_run_mode(settings)  # PostgreSQL and procrastinate, or a clear error
    import procrastinate

    connector = procrastinate.PsycopgConnector(
        conninfo=libpq_url(settings.database_url), min_size=1, max_size=pool_size
    )
    app = procrastinate.App(connector=connector)
    app.task(
        name=RUN_TASK,
        queue=QUEUE,
        pass_context=True,
        retry=procrastinate.RetryStrategy(
            max_attempts=HANDED_BACK_ATTEMPTS, wait=HANDED_BACK_WAIT_SECONDS, retry_exceptions=[HandedBack]
        ),
    )(run_session)
    return app


async def defer_run(app: procrastinate.App, connection: Any, session_id: str) -> int:
    """Queue the run of `session_id` in the transaction of `connection` (a psycopg 3 async
    connection); the job's id."""
    task = app.tasks[RUN_TASK]
    deferrer = task.configure(lock=session_id, queueing_lock=session_id, connection=connection)
    job_id: int = await deferrer.defer_async(session_id=session_id)
    return job_id


async def run_session(context: Any, session_id: str) -> None:
    """The job: run (or take over) the session in this worker. The run's own errors end its
    session (failed, saying why); only the database failing before it could start is retried."""
    from sqlalchemy.exc import DBAPIError

    runs: ServerRuns = context.additional_context[RUNS_KEY]
    try:
        await runs.run_job(session_id)
    except (DBAPIError, OSError) as exc:
        raise HandedBack(f"session {session_id[:8]} could not start here: {exc}") from exc
    if runs.stopping:
        raise HandedBack(f"worker stopping: session {session_id[:8]} goes back to the queue")


async def active_jobs(app: procrastinate.App, session_id: str) -> list[Any]:
    """The session's jobs that are waiting or running."""
    jobs = []
    for status in ("doing", "todo"):
        jobs += list(await app.job_manager.list_jobs_async(queue=QUEUE, lock=session_id, status=status))
    return jobs


async def cancel_jobs(app: procrastinate.App, session_id: str) -> str | None:
    """Cancel the session's job: a waiting one is cancelled before it runs (`"todo"`), a running
    one is asked to abort (`"doing"`); None when it has none."""
    for job in await active_jobs(app, session_id):
        assert job.id is not None
        if job.status == "todo" and await app.job_manager.cancel_job_by_id_async(job.id):
            return "todo"
        if await app.job_manager.cancel_job_by_id_async(job.id, abort=True):
            return "doing"
    return None


async def requeue_stalled(app: procrastinate.App, stall_seconds: float) -> list[int]:
    """Queue again the runs of workers whose heartbeat is older than `stall_seconds`."""
    import procrastinate

    requeued = []
    stalled = await app.job_manager.get_stalled_jobs(queue=QUEUE, seconds_since_heartbeat=stall_seconds)
    for job in stalled:
        try:
            await app.job_manager.retry_job(job)
        except procrastinate.exceptions.ConnectorException:
            continue  # another worker's recovery re-queued it first
        assert job.id is not None
        requeued.append(job.id)
    if requeued:
        log.warning("queued again %d runs of stalled workers: jobs %s", len(requeued), requeued)
    return requeued


# -- the worker process -------------------------------------------------------------------------


def worker_name() -> str:
    return f"keen-worker@{socket.gethostname()}:{os.getpid()}"


async def run_worker(settings: Settings, *, concurrency: int, queues: Iterable[str] | None) -> None:
    """`keen worker`: run jobs until SIGTERM/SIGINT, then hand the runs back and stop."""
    from procrastinate.worker import Worker

    from keen.events.pg_bus import bus_for, running
    from keen.runner.server_runs import ServerRuns
    from keen.store import Database, SqlEventStore

    db = Database(settings.database_url)
    try:
        await db.require_current()
        # Stored events reach every replica by the store's own NOTIFY; the bus carries the live
        # deltas of this worker's runs to them.
        bus = bus_for(db.url, SqlEventStore(db))
        runs = ServerRuns(settings, db, bus)
        runs.check_sandbox()
        app = queue_app(settings, pool_size=concurrency + 3)
        grace = settings.keen_worker_shutdown_grace_seconds
        async with running(bus), app.open_async():
            worker = Worker(
                app,
                queues=list(queues) if queues else [QUEUE],
                name=worker_name(),
                concurrency=concurrency,
                install_signal_handlers=False,
                additional_context={RUNS_KEY: runs},
                update_heartbeat_interval=settings.keen_worker_heartbeat_seconds,
                stalled_worker_timeout=settings.keen_worker_stall_seconds,
                fetch_job_polling_interval=settings.keen_worker_poll_seconds,
                abort_job_polling_interval=1.0,
                # The runs are handed back by `stop` within `grace`; procrastinate must not
                # abort them before (its abort would end them instead of suspending them).
                shutdown_graceful_timeout=grace + 30,
            )
            stop = _Stopper(runs, worker, grace)
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.request)
            recovery = asyncio.create_task(_recover_forever(app, settings), name="keen-recovery")
            log.info("worker %s runs %s with concurrency %d", worker_name(), queues or [QUEUE], concurrency)
            try:
                await worker.run()
            finally:
                stop.close()
                recovery.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await recovery
                for sig in (signal.SIGTERM, signal.SIGINT):
                    loop.remove_signal_handler(sig)
    finally:
        await db.dispose()


class _Stopper:
    """Stops a worker: no new job, the runs end at their next step boundary (the agent loop sees
    `stopping`) or are suspended when `grace` seconds have passed, each handed back."""

    def __init__(self, runs: ServerRuns, worker: Any, grace: float) -> None:
        self.runs = runs
        self.worker = worker
        self.grace = grace
        self._timer: asyncio.TimerHandle | None = None

    def request(self) -> None:
        if self.runs.stopping:
            return
        log.info("stopping: %d runs go back to the queue", len(self.runs.tasks))
        self.runs.stopping = True
        self.worker.stop()
        self._timer = asyncio.get_running_loop().call_later(self.grace, self._suspend_all)

    def close(self) -> None:
        """The worker stopped: no suspension is due any more."""
        if self._timer is not None:
            self._timer.cancel()

    def _suspend_all(self) -> None:
        for task in list(self.runs.tasks.values()):
            task.cancel()


async def _recover_forever(app: procrastinate.App, settings: Settings) -> None:
    while True:
        await asyncio.sleep(settings.keen_worker_recovery_seconds)
        try:
            await requeue_stalled(app, settings.keen_worker_stall_seconds)
        except Exception:  # the database may be away for a moment: try again next round
            log.exception("could not look for stalled runs")
