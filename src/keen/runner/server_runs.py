"""The agent runs of one process: started, cancelled and, when the server starts, resumed, each as
an asyncio task of this process driving the session service in server mode.

`execute` (admit and start), `cancel` and `recover` are all the API asks of it. In distributed
mode (`KEEN_RUN_MODE=distributed`) `execute` queues the run as a job instead (keen.runner.queue)
in the transaction that creates its session, `cancel` aborts that job wherever it runs, and the
worker that takes the job runs it here through `run_job`. Whichever way a run ends (completed, failed, cancelled,
crashed into an error, or refused before its agent began), its session ends with a final status
and the open credit holds of its tree are released; only a stopping server leaves its runs
running, for the next start to resume (a `kill -9` leaves them the same way).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from keen.aio import uncancellable
from keen.audit import AuditEntry, Origin, Risk, append
from keen.billing.payments import provider_for
from keen.billing.records import LedgerConfig
from keen.config import Settings
from keen.errors import ConfigError, ConflictError, InputError, NotFoundError, UnavailableError
from keen.events import types as ev
from keen.events.bus import Bus
from keen.events.types import SessionRef
from keen.runner import queue
from keen.runner.admission import check_credits, check_server_model, first_call_worst_case
from keen.runner.credit_meter import TreeAccount, credit_meter_factory, release_open_holds
from keen.runner.lease import lease_alive
from keen.runner.options import RunOptions, make_options
from keen.runner.sessions import SessionService, new_session_id
from keen.runner.workspaces import prepare_workspace, remove_workspace, repo_url_scheme, workspace_path
from keen.store import Database, SessionRepository, SqlEventStore
from keen.store.actor import Actor
from keen.store.models import SessionRow
from keen.tools.sandbox import Mode, require_sandbox

if TYPE_CHECKING:
    import procrastinate

log = logging.getLogger("keen.runner")
CANCEL_WAIT_SECONDS = 5.0  # a cancel answers once the run has ended, or after this
SHUTDOWN_WAIT_SECONDS = 20.0
TAKEOVER_WAIT_SECONDS = 40.0  # a run taken over waits this long for its old owner's lease to end
# Root sessions that hold one of the user's places: queued (created) or running.
_OPEN_ROOTS = select(func.count()).where(
    SessionRow.user_id == bindparam("user"),
    SessionRow.parent_id.is_(None),
    SessionRow.kind == "agent",
    SessionRow.status.in_(("created", "running")),
)
# Serialises the admissions of one user across every replica, until the transaction ends.
_ADMISSION_LOCK = text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))")


@dataclass(frozen=True)
class Execution:
    """What a user asks to run (checked as a run's options are, by `make_options`)."""

    vision: str
    model: str | None = None
    max_iterations: int = 100
    budget: Decimal | str = "50"
    phase: str = "EXPLORE"
    max_depth: int = 10
    gates: str = "standard"
    web_search: bool = True
    repo_url: str | None = None


class ServerRuns:
    """The runs of this process, by root session id."""

    def __init__(self, settings: Settings, db: Database, bus: Bus) -> None:
        self.settings = settings
        self.db = db
        self.bus = bus
        self.ledger = LedgerConfig.from_settings(settings)
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.owners: dict[str, str] = {}  # root id → user id, of the runs in `tasks` and admitted ones
        self.stopping = False
        self._admitting: dict[str, asyncio.Lock] = {}
        self.distributed = settings.keen_run_mode == "distributed"
        # The queue this replica defers runs to and cancels them in (distributed mode).
        self.queue: procrastinate.App | None = queue.queue_app(settings) if self.distributed else None

    def service(self, actor: Actor) -> SessionService:
        mode: Mode = "distributed" if self.distributed else "server"
        service = SessionService(self.settings, actor=actor, bus=self.bus, db=self.db, mode=mode)
        service.stopping = lambda: self.stopping
        return service

    async def open_queue(self) -> None:
        """Open the queue runs are deferred to (distributed mode; nothing to do otherwise)."""
        if self.queue is not None:
            await self.queue.open_async()  # opening (and closing) twice does nothing more

    @property
    def jobs(self) -> procrastinate.App:
        """The queue, in distributed mode (the only mode that reaches for it)."""
        assert self.queue is not None, "the run queue exists in distributed mode only"
        return self.queue

    # -- starting ---------------------------------------------------------------------------

    async def execute(
        self, session: AsyncSession, actor: Actor, execution: Execution, origin: Origin
    ) -> SessionRow:
        """Admit and start a run of `actor`: the model may be used here, fewer than the allowed
        number of the user's sessions run, the credits cover the first call, the sandbox is
        there; then the workspace is made and the session created and started.

        `session` is the request's unit of work: it is committed before the run records its
        first event (on SQLite it holds the write lock the run's writes wait for), and gets the
        audit entry of the start after that.
        """
        settings = self.settings
        model = execution.model or settings.keen_model
        check_server_model(model, settings)
        session_id = new_session_id()
        workspace = workspace_path(settings, actor.user_id, session_id)
        options = make_options(
            settings,
            vision=execution.vision,
            directory=workspace,
            model=model,
            max_iterations=execution.max_iterations,
            budget=execution.budget,
            phase=execution.phase,
            max_depth=execution.max_depth,
            gates=execution.gates,
            web_search=execution.web_search,
            allow_dirty=False,
        )
        if execution.repo_url is not None:
            repo_url_scheme(execution.repo_url, settings)
        self.check_sandbox()
        worst_case = await first_call_worst_case(options, settings)
        if self.distributed:
            return await self._enqueue(session, actor, execution, options, session_id, worst_case, origin)
        # Admission reserves the run's place among the user's running sessions (`owners`, under
        # the new root's id) and lets go before anything waits for the database's write lock,
        # which another request may hold while it waits to be admitted.
        async with self._admitting.setdefault(actor.user_id, asyncio.Lock()):
            self._check_running(await self.running_count(actor.user_id))
            await check_credits(session, self.ledger, actor.user_id, worst_case)
            self.owners[session_id] = actor.user_id
        try:
            await session.commit()
            await prepare_workspace(workspace, settings, execution.repo_url)
            try:
                row = await self._launch(actor, options, session_id)
            except BaseException:
                remove_workspace(workspace)
                raise
        except BaseException:
            if session_id not in self.tasks:
                self.owners.pop(session_id, None)
            raise
        await self._audit_start(session, actor, execution, model, session_id, origin)
        return row

    async def _enqueue(
        self,
        session: AsyncSession,
        actor: Actor,
        execution: Execution,
        options: RunOptions,
        session_id: str,
        worst_case: Decimal,
        origin: Origin,
    ) -> SessionRow:
        """Distributed mode: admit across every replica, make the workspace, then create the
        session and defer its job in the request's transaction (one commit for both)."""
        self._check_running(await self._open_roots(session, actor.user_id))
        await check_credits(session, self.ledger, actor.user_id, worst_case)
        await prepare_workspace(options.workspace, self.settings, execution.repo_url)
        try:
            await session.execute(_ADMISSION_LOCK, {"key": f"admission:{actor.user_id}"})
            self._check_running(await self._open_roots(session, actor.user_id))
            connection = await session.connection()
            driver = (await connection.get_raw_connection()).driver_connection
            writer = SqlEventStore(self.db)

            async def record(ref: SessionRef, created: dict[str, Any]) -> None:
                await connection.run_sync(
                    lambda conn: writer.record_in(conn, ref, ev.SESSION_CREATED, created)
                )

            service = await self.service(actor).open()
            try:
                await service.create(options, session_id=session_id, record=record)
            finally:
                await service.close()
            await queue.defer_run(self.jobs, driver, session_id)
        except BaseException:
            remove_workspace(options.workspace)
            raise
        await self._audit_start(session, actor, execution, options.model, session_id, origin)
        row = await session.get(SessionRow, session_id)
        assert row is not None
        return row

    async def _audit_start(
        self,
        session: AsyncSession,
        actor: Actor,
        execution: Execution,
        model: str,
        session_id: str,
        origin: Origin,
    ) -> None:
        details = {"model": model, "repo_url": execution.repo_url}
        entry = AuditEntry(
            "session.start", Risk.LOW, f"user:{actor.user_id}", actor.user_id, session_id, details
        )
        await append(session, entry, origin)

    def _check_running(self, running: int) -> None:
        limit = self.settings.keen_max_running_sessions
        if running >= limit:
            raise ConflictError(
                f"{running} of your sessions are running, the most at once is "
                f"{limit}: wait for one to end or cancel one",
                details={"running": running, "limit": limit},
            )

    @staticmethod
    async def _open_roots(session: AsyncSession, user_id: str) -> int:
        """The user's root sessions queued or running, on every replica and worker."""
        return int((await session.execute(_OPEN_ROOTS, {"user": user_id})).scalar_one())

    async def _release_tree_holds(self, root_id: str) -> int:
        """Release the open credit holds of every session of the tree; how many."""
        ids = [row.id for row in await SessionRepository(self.db).tree(root_id)]
        return await release_open_holds(self.db, self.ledger, ids)

    def check_sandbox(self) -> None:
        """Server mode runs agent commands only in bubblewrap, unless `KEEN_SANDBOX=none`."""
        try:
            require_sandbox(self.settings, "server")
        except ConfigError as exc:
            raise UnavailableError(f"agent runs are off: {exc.message}") from None

    async def running_count(self, user_id: str) -> int:
        """The user's root sessions running now: in this process, or in another whose lease lives."""
        mine = {root for root, owner in self.owners.items() if owner == user_id}
        rows = await SessionRepository(self.db, Actor(user_id)).recent(limit=1000, status="running")
        elsewhere = {row.id for row in rows if lease_alive(row)}
        return len(mine | elsewhere)

    async def _launch(self, actor: Actor, options: RunOptions, session_id: str) -> SessionRow:
        service = await self.service(actor).open()
        try:
            await service.create(options, session_id=session_id)
            row = await service.get(session_id)
        except BaseException:
            await service.close()
            raise
        self._spawn(row, actor, service, resume=False)
        return row

    def _spawn(self, row: SessionRow, actor: Actor, service: SessionService, *, resume: bool) -> None:
        task = asyncio.create_task(
            self._run(row.id, actor, service, resume=resume), name=f"keen-run-{row.short_id}"
        )
        self.tasks[row.id] = task
        self.owners[row.id] = actor.user_id

        def forget(_task: asyncio.Task[None]) -> None:
            self.tasks.pop(row.id, None)
            self.owners.pop(row.id, None)

        task.add_done_callback(forget)

    async def run_job(self, root_id: str) -> None:
        """A worker's job (distributed mode): run the session to its end here, or resume it from
        its events when another worker began it, after releasing that worker's open holds. A
        cancellation of the job (an abort) cancels the run, which ends cancelled."""
        repo = SessionRepository(self.db)
        try:
            row = await repo.get(root_id)
        except NotFoundError:
            log.warning("job for session %s, which does not exist: nothing to run", root_id[:8])
            return
        if row.status in ev.TERMINAL_STATUSES or root_id in self.tasks:
            return
        resume = row.status == "running"
        if resume:
            row = await self._wait_for_lease(row)
            if row.status in ev.TERMINAL_STATUSES or lease_alive(row):
                return  # its owner lives and runs it still: this job is not needed
            released = await self._release_tree_holds(root_id)
            log.info("taking over session %s (released %d open holds)", root_id[:8], released)
        actor = Actor(row.user_id or "")
        service = await self.service(actor).open()
        self._spawn(row, actor, service, resume=resume)
        task = self.tasks[root_id]
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            task.cancel()
            await asyncio.wait({task})
            raise

    async def _wait_for_lease(self, row: SessionRow) -> SessionRow:
        """The root once the lease of the process that ran it has ended (a dead worker on another
        machine is seen only when its lease runs out), or as it is after `TAKEOVER_WAIT_SECONDS`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + TAKEOVER_WAIT_SECONDS
        while lease_alive(row) and row.status not in ev.TERMINAL_STATUSES and loop.time() < deadline:
            await asyncio.sleep(1.0)
            row = await SessionRepository(self.db).get(row.id)
        return row

    async def _run(self, root_id: str, actor: Actor, service: SessionService, *, resume: bool) -> None:
        account = TreeAccount(
            self.db, self.ledger, actor.user_id, service.sink, payments=provider_for(self.settings)
        )
        service.meter_for = credit_meter_factory(account)
        ending: tuple[str, str] | None = None  # what to end the session as, if its agent did not
        try:
            if resume:
                await account.load(root_id)
                await service.resume(root_id)
            else:
                await service.run(root_id)
        except asyncio.CancelledError:
            ending = ("cancelled", "cancelled by the user")
        except Exception as exc:  # the run's own error: the session ends failed, saying it
            log.warning(
                "run %s ended by an error: %s", root_id[:8], exc, exc_info=not isinstance(exc, InputError)
            )
            ending = ("failed", f"the run could not go on: {getattr(exc, 'message', None) or exc}")
        finally:
            await uncancellable(self._settle(service, root_id, account, ending))
            await service.close()

    async def _settle(
        self, service: SessionService, root_id: str, account: TreeAccount, ending: tuple[str, str] | None
    ) -> None:
        """Release what the tree still holds and, unless the server is stopping (its runs are
        resumed at the next start), give an unfinished session its end."""
        try:
            released = await self._release_tree_holds(root_id)
            if released:
                log.info("released %d open credit holds of session %s", released, root_id[:8])
            if self.stopping:
                return
            root = await SessionRepository(self.db).get(root_id)
            if root.status in ev.TERMINAL_STATUSES or lease_alive(root):
                return  # ended by its agent, or run by another process
            status, reason = ending or ("failed", "the run stopped without an end")
            await service.abandon(root_id, status, reason, credits_of=account.credits_of)
        except Exception:
            log.exception("could not settle the end of session %s", root_id[:8])

    # -- cancelling -------------------------------------------------------------------------

    async def cancel(
        self, session: AsyncSession, actor: Actor, session_id: str, origin: Origin
    ) -> SessionRow:
        """Cancel a session tree (another user's is not found): the run in this process is
        cancelled at once (its commands killed, its holds released), one in another process
        through the store, and one nobody runs is ended here."""
        service = await self.service(actor).open()
        try:
            root = await service.root(session_id)
            if root.status in ev.TERMINAL_STATUSES:
                raise ConflictError(f"session {root.short_id} already finished ({root.status})")
            await session.commit()  # the request's write lock (SQLite) must not hold up the run
            task = self.tasks.get(root.id)
            if self.distributed:
                await self._cancel_job(service, root)
            elif task is not None:
                await SessionRepository(self.db).request_cancel(root.id)
                task.cancel()
                await asyncio.wait({task}, timeout=CANCEL_WAIT_SECONDS)
            elif lease_alive(root):
                await service.request_cancel(root.id)
            else:
                await self._release_tree_holds(root.id)
                await service.abandon(root.id, "cancelled", "cancelled by the user while no process ran it")
            entry = AuditEntry("session.cancel", Risk.LOW, f"user:{actor.user_id}", root.user_id, root.id)
            await append(session, entry, origin)
            return await service.get(root.id)
        finally:
            await service.close()

    async def _cancel_job(self, service: SessionService, root: SessionRow) -> None:
        """Distributed mode: a queued run is cancelled before it starts and its session ended
        here; a running one is aborted on its worker (and asked through the store as well),
        waited for up to `CANCEL_WAIT_SECONDS`."""
        found = await queue.cancel_jobs(self.jobs, root.id)
        if found == "todo" or (found is None and not lease_alive(root)):
            await self._release_tree_holds(root.id)
            await service.abandon(root.id, "cancelled", "cancelled by the user before a worker ran it")
            return
        await SessionRepository(self.db).request_cancel(root.id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CANCEL_WAIT_SECONDS
        while loop.time() < deadline:
            if (await SessionRepository(self.db).get(root.id)).status in ev.TERMINAL_STATUSES:
                return
            await asyncio.sleep(0.05)

    # -- the server's start and stop --------------------------------------------------------

    async def recover(self) -> list[str]:
        """Resume the sessions a crash (or a stop) left running, and start those created but
        never started; their stale holds are released first. One that cannot be resumed ends
        failed, saying why. Returns the ids taken up."""
        taken: list[str] = []
        if self.distributed:
            return taken  # the workers take runs over (keen.runner.queue)
        for row in await SessionRepository(self.db).unfinished_roots():
            if row.id in self.tasks or lease_alive(row):
                continue
            await self._release_tree_holds(row.id)
            actor = Actor(row.user_id or "")
            service = await self.service(actor).open()
            self._spawn(row, actor, service, resume=row.status == "running")
            taken.append(row.id)
        if taken:
            log.info("resuming %d sessions left running", len(taken))
        return taken

    async def shutdown(self) -> None:
        """Stop every run without ending it: each is resumed at the next start."""
        self.stopping = True
        tasks = list(self.tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            with contextlib.suppress(Exception):
                await asyncio.wait(tasks, timeout=SHUTDOWN_WAIT_SECONDS)
        if self.queue is not None:
            await self.queue.close_async()
