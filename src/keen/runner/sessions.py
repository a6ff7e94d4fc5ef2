"""THE session service: what the CLI calls today and the API and queue workers will call.

Create a session, run it by id, resume it, cancel it (from any process: the request is recorded
in the store), find its root, summarise it, build the dry-run plan, open a conversation. It alone
builds an `AgentSpec` (always from a `session.created` payload, so a new session, a resumed one
and a summoned child are described the same way) and the `session.created` payloads.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from keen.agent.budget import MeterFactory, budget_meter
from keen.agent.phases import Phase
from keen.agent.spec import ROOT_BRANCH, AgentResult, AgentSpec
from keen.config import Settings
from keen.errors import InputError, WorkspaceError
from keen.events import types as ev
from keen.events.bus import Bus, Callback, EventBus
from keen.events.projections import TreeProjection
from keen.events.sink import RecordingSink
from keen.events.types import Event, SessionRef
from keen.gitrepo import GitRepo, ensure_repository
from keen.runner.lease import LEASE, lease_alive
from keen.runner.options import RunOptions
from keen.runner.session_view import INTERRUPTED, STATUSES, session_summary, shown_status, shown_tree
from keen.runner.worktree_lock import WorktreeLock
from keen.store import Database, SessionRepository, SqlEventStore
from keen.store.actor import LOCAL_ACTOR, Actor
from keen.store.db import open_database
from keen.store.models import SessionRow
from keen.tools.context import SummonRequest
from keen.tools.sandbox import Mode, SandboxPolicy, require_sandbox


def new_session_id() -> str:
    return uuid.uuid4().hex


# -- specs and payloads: the one place ---------------------------------------------------------


def root_created(
    options: RunOptions, *, session_id: str, git_branch: str | None, start_commit: str, user_id: str
) -> dict[str, Any]:
    return {
        "vision": options.vision,
        "options": options.to_json(),
        "branch": ROOT_BRANCH,
        "git_branch": git_branch,
        "specialization": None,
        "depth": 0,
        "model": options.model,
        "workspace": str(options.workspace),
        "start_commit": start_commit,
        "short_id": session_id[:8],
        "phase": options.phase.value,
        "kind": "agent",
        "user_id": user_id,
    }


def conversation_created(
    *, session_id: str, workspace: Path, model: str, budget: Decimal, max_tool_rounds: int, user_id: str
) -> dict[str, Any]:
    return {
        "vision": f"conversation about {workspace}",
        "options": {
            "model": model,
            "budget": budget,
            "max_tool_rounds": max_tool_rounds,
            "workspace": str(workspace),
        },
        "branch": ev.CONVERSATION_BRANCH,
        "git_branch": None,
        "specialization": None,
        "depth": 0,
        "model": model,
        "workspace": str(workspace),
        "short_id": session_id[:8],
        "kind": "conversation",
        "user_id": user_id,
    }


def _expectation(context: str | None) -> str:
    base = "a summary of what you did, what is left, and anything the parent must know to integrate your work"
    return f"{base}. Context from your parent: {context}" if context else base


class SessionSpecs:
    """Children's payloads and specs, handed to the agent tree (`agent.tree.ChildSessions`)."""

    def new_id(self) -> str:
        return new_session_id()

    def child_created(
        self,
        parent: AgentSpec,
        request: SummonRequest,
        *,
        session_id: str,
        branch_name: str,
        git_branch: str,
        worktree: Path,
        start_commit: str,
        budget: Decimal,
        max_iterations: int,
        model: str,
    ) -> dict[str, Any]:
        return {
            "vision": request.vision,
            "options": {
                "max_iterations": max_iterations,
                "budget": budget,
                "context": request.context,
                "call_id": request.call_id,
                "max_depth": parent.max_depth,
                "max_parallel": parent.max_parallel,
                "gates": parent.gates,
            },
            "branch": branch_name,
            "git_branch": git_branch,
            "specialization": request.specialization,
            "depth": parent.depth + 1,
            "model": model,
            "workspace": str(worktree),
            "start_commit": start_commit,
            "short_id": session_id[:8],
            "phase": Phase.EXPLORE.value,
            "kind": "agent",
            "parent_branch": parent.branch_name,
            "parent_expectation": _expectation(request.context),
        }

    def spec(self, session_id: str, parent: AgentSpec | None, created: dict[str, Any]) -> AgentSpec:
        return spec_from_created(session_id, parent, created)


def spec_from_created(session_id: str, parent: AgentSpec | None, created: dict[str, Any]) -> AgentSpec:
    """The spec of an agent from its `session.created` payload (and its parent's spec)."""
    options = created.get("options") or {}
    # What the payload does not say comes from the parent, or from AgentSpec's own defaults.
    inherited: Any = parent if parent is not None else AgentSpec
    return AgentSpec(
        session_id=session_id,
        short_id=created.get("short_id") or session_id[:8],
        root_session_id=parent.root_session_id if parent else session_id,
        parent_session_id=parent.session_id if parent else None,
        vision=created["vision"],
        workspace=Path(created["workspace"]),
        branch_name=created.get("branch", ROOT_BRANCH),
        git_branch=created.get("git_branch"),
        specialization=created.get("specialization"),
        depth=int(created.get("depth", 0)),
        max_iterations=int(options.get("max_iterations", AgentSpec.max_iterations)),
        max_depth=int(options.get("max_depth", inherited.max_depth)),
        max_parallel=int(options.get("max_parallel", inherited.max_parallel)),
        phase=Phase(created.get("phase") or AgentSpec.phase.value),
        gates=str(options.get("gates", inherited.gates)),
        parent_branch=created.get("parent_branch") or (parent.branch_name if parent else None),
        parent_expectation=created.get("parent_expectation"),
        start_commit=created.get("start_commit") or "HEAD",
    )


def dry_run_spec(options: RunOptions) -> AgentSpec:
    """The spec a run of `options` would start with (no session is made)."""
    created = root_created(options, session_id="dry-run", git_branch=None, start_commit="HEAD", user_id="")
    return spec_from_created("dry-run", None, created)


def dry_run_plan(options: RunOptions) -> dict[str, Any]:
    """What `keen breathe --dry-run` shows: the limits, the tools and the rendered prompts."""
    from keen.agent.prompts.builders import first_message, system_prompt
    from keen.tools import agent_tools

    spec = dry_run_spec(options)
    tools = agent_tools(validation=True, summon=True)
    return {
        "model": options.model,
        "workspace": str(options.workspace),
        "max_iterations": options.max_iterations,
        "budget_usd": format(options.budget, "f"),
        "phase": options.phase.value,
        "max_depth": options.max_depth,
        "max_parallel": options.max_parallel,
        "gates": options.gates,
        "web_search": options.web_search,
        "tools": tools.names,
        "system_prompt": system_prompt(
            spec, tool_names=tools.names, budget=options.budget, max_iterations=options.max_iterations
        ),
        "first_message": first_message(spec),
    }


# -- the service ------------------------------------------------------------------------------


class SessionService:
    """Sessions of one acting user, on the configured database."""

    def __init__(
        self,
        settings: Settings,
        *,
        actor: Actor = LOCAL_ACTOR,
        bus: Bus | None = None,
        meter_for: MeterFactory | None = None,
        mode: Mode = "local",
        db: Database | None = None,
    ) -> None:
        self.settings = settings
        self.actor = actor
        self.mode = mode
        self.bus: Bus = bus or EventBus()
        # Server modes plug a credit meter in here; local mode measures against the budget.
        self.meter_for: MeterFactory = meter_for or budget_meter
        self.db: Database | None = None
        self._shared_db = db  # a database the caller opened (and disposes): the server's
        self._locks: dict[str, WorktreeLock] = {}  # work trees of created sessions not yet run
        self._last_read: tuple[str | None, list[Event]] = (None, [])
        # Whether the process is stopping: its runs are then suspended, not ended (server modes).
        self.stopping: Callable[[], bool] | None = None

    async def open(self) -> SessionService:
        if self.db is None and self._shared_db is not None:
            self._use(self._shared_db)
        if self.db is None:
            local_file = self.settings.keen_database_url is None
            if local_file:
                self.settings.ensure_home()
            self._use(await open_database(self.settings.database_url))
        return self

    def _use(self, db: Database) -> None:
        self.db = db
        self._writer = SqlEventStore(db)  # the runner records what it runs
        self.events_store = SqlEventStore(db, self.actor)
        self.repo = SessionRepository(db, self.actor)
        self._control = SessionRepository(db)
        self.sink = RecordingSink(self._writer, self.bus)

    async def close(self) -> None:
        for lock in self._locks.values():
            lock.release()
        self._locks.clear()
        if self.db is not None:
            if self.db is not self._shared_db:
                await self.db.dispose()
            self.db = None

    async def __aenter__(self) -> SessionService:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- reading ----------------------------------------------------------------------------

    async def get(self, session_id: str) -> SessionRow:
        return await self.repo.get(session_id)

    async def root(self, session_id: str) -> SessionRow:
        return await self.repo.root_of(session_id)

    async def recent(
        self, *, limit: int = 20, status: str | None = None, offset: int = 0
    ) -> Sequence[SessionRow]:
        if status is not None and status not in STATUSES:
            raise InputError(f"unknown session status {status!r}; the statuses are: {', '.join(STATUSES)}")
        if status in (INTERRUPTED, "running"):  # both are stored as running; the lease tells them apart
            rows = await self.repo.recent(limit=limit + offset, status="running")
            return [r for r in rows if self.status_of(r) == status][offset:]
        return await self.repo.recent(limit=limit, status=status, offset=offset)

    async def count(self, *, status: str | None = None) -> int:
        """How many root sessions `recent` can list (with `status`)."""
        if status in (INTERRUPTED, "running"):
            rows = await self.repo.recent(limit=10_000, status="running")
            return sum(1 for r in rows if self.status_of(r) == status)
        return await self.repo.count(status=status)

    async def events(self, root_id: str, *, after_seq: int = 0) -> list[Event]:
        """A root's log after `after_seq`. The log is append-only, so the last root read whole is
        kept and read again only past its end (a resume reads what the view just read)."""
        if after_seq:
            return await self.events_store.events(root_id, after_seq=after_seq)
        known = self._last_read[1] if self._last_read[0] == root_id else []
        known = known + await self.events_store.events(root_id, after_seq=known[-1].seq if known else 0)
        self._last_read = (root_id, known)
        return list(known)

    async def tree(self, root_id: str, events: list[Event] | None = None) -> TreeProjection:
        """The agent tree from the log (`events`, when already read), as `shown_tree` says."""
        log = await self.events(root_id) if events is None else events
        return shown_tree(log, await self.repo.get(root_id), self.mode)

    def watch(self, callback: Callback, root_id: str | None = None) -> Callable[[], None]:
        """Call `callback` with every live event and delta (of `root_id`); returns unsubscribe."""
        return self.bus.add_callback(callback, root_id)

    def status_of(self, row: SessionRow) -> str:
        return shown_status(row, self.mode)

    def summary(self, row: SessionRow) -> dict[str, Any]:
        return session_summary(row, self.mode)

    # -- running ----------------------------------------------------------------------------

    async def create(
        self,
        options: RunOptions,
        *,
        session_id: str | None = None,
        record: Callable[[SessionRef, dict[str, Any]], Awaitable[None]] | None = None,
    ) -> AgentSpec:
        """Prepare the workspace and record `session.created`; returns the root agent's spec
        (`session_id`: an id chosen beforehand, as the server does to name the workspace;
        `record`: records the event in the caller's transaction instead of its own)."""
        self.sandbox_policy()  # a mode that cannot contain its commands refuses before any work
        lock = self._lock(options.workspace)
        try:
            repo, start_commit, plan = await ensure_repository(
                options.workspace, allow_dirty=options.allow_dirty
            )
        except BaseException:
            lock.release()
            raise
        session_id = session_id or new_session_id()
        lock.describe(f"session {session_id[:8]}")
        self._locks[session_id] = lock
        created = root_created(
            options,
            session_id=session_id,
            git_branch=await repo.current_branch(),
            start_commit=start_commit,
            user_id=self.actor.user_id,
        )
        created["workspace_note"] = plan.note
        spec = spec_from_created(session_id, None, created)
        if record is None:
            await self.sink.emit(spec.ref, ev.SESSION_CREATED, created)
        else:
            await record(spec.ref, created)
        return spec

    async def run(self, session_id: str) -> AgentResult:
        """Run a created session to its end in this process."""
        root = await self.root(session_id)
        if root.status != "created":
            raise InputError(f"session {root.short_id} was already started ({self.status_of(root)})")
        return await self._execute(root, resume=False)

    async def resume(self, session_id: str) -> AgentResult:
        """Continue an interrupted session from its next model call."""
        root = await self.root(session_id)
        self._check_resumable(root)
        options = RunOptions.from_json(root.options)
        if not options.workspace.is_dir() or not await GitRepo(options.workspace).is_repo():
            raise WorkspaceError(f"the workspace {options.workspace} of session {root.short_id} is gone")
        return await self._execute(root, resume=True)

    def _lock(self, workspace: Path) -> WorktreeLock:
        lock = WorktreeLock(self.settings.keen_home / "locks", workspace)
        lock.acquire()
        return lock

    async def _execute(self, root: SessionRow, *, resume: bool) -> AgentResult:
        lock = self._locks.pop(root.id, None)
        if lock is None:
            lock = self._lock(Path(root.workspace))
            lock.describe(f"session {root.short_id}")
        try:
            return await self._run(root, resume=resume)
        finally:
            lock.release()

    async def _run(self, root: SessionRow, *, resume: bool) -> AgentResult:
        events = await self.events(root.id)
        created = next(e.data for e in events if e.type == ev.SESSION_CREATED and e.session_id == root.id)
        spec = spec_from_created(root.id, None, created)
        from keen.runner.local import LocalRunner

        runner = LocalRunner(
            self.settings,
            self.sink,
            self._control,
            SessionSpecs(),
            LEASE,
            self.meter_for,
            self.sandbox_policy(),
            self.mode,
            self.stopping,
        )
        options = RunOptions.from_json(root.options)
        return await runner.run(
            spec, options, events, resume=resume, replacing=root.lease_owner if resume else None
        )

    def sandbox_policy(self) -> SandboxPolicy:
        """How this mode contains agent commands (server modes refuse to run without bubblewrap
        unless the operator chose `KEEN_SANDBOX=none`)."""
        return require_sandbox(self.settings, self.mode)

    def _check_resumable(self, root: SessionRow) -> None:
        if root.kind != "agent":
            raise InputError(f"session {root.short_id} is a {root.kind}, not an agent session")
        if root.status in ev.TERMINAL_STATUSES:
            raise InputError(f"session {root.short_id} already finished ({root.status}); nothing to resume")
        if lease_alive(root):
            raise InputError(f"session {root.short_id} is still running ({root.lease_owner})")

    async def check_resumable(self, session_id: str) -> SessionRow:
        """The root to resume, or an `InputError` saying why it cannot be."""
        root = await self.root(session_id)
        self._check_resumable(root)
        return root

    async def request_cancel(self, session_id: str) -> SessionRow:
        """Record a cancel request; the process running the session sees it within one step."""
        root = await self.root(session_id)
        if root.status in ev.TERMINAL_STATUSES:
            raise InputError(f"session {root.short_id} already finished ({root.status})")
        if root.kind == "agent" and not lease_alive(root):
            raise InputError(
                f"session {root.short_id} is not running in any process; resume it with: "
                f"keen sessions resume {root.short_id}"
            )
        await self._control.request_cancel(root.id)
        return root

    async def abandon(
        self,
        session_id: str,
        status: str,
        reason: str,
        *,
        credits_of: Callable[[str], Decimal | None] | None = None,
    ) -> SessionRow:
        """End a session that no process runs and none will resume: each agent of its tree not
        finished yet gets its `session.finished` with `status` and `reason`, deepest first
        (`credits_of`: the credits each agent and its children were charged, when metered)."""
        if status not in ev.TERMINAL_STATUSES:
            raise ValueError(f"{status!r} is not a final status")
        root = await self.root(session_id)
        if lease_alive(root):
            raise InputError(f"session {root.short_id} is still running ({root.lease_owner})")
        projection = TreeProjection.from_events(await self.events(root.id))
        unfinished = [n for n in projection.nodes.values() if n.status not in ev.TERMINAL_STATUSES]
        for node in sorted(unfinished, key=lambda n: -n.depth):
            subtree = _subtree(projection, node.session_id)
            data: dict[str, Any] = {
                "status": status,
                "summary": reason,
                "files_created": [],
                "files_modified": [],
                "files_deleted": [],
                "files_skipped": [],
                "iterations": sum(n.iterations for n in subtree),
                "cost_usd": sum((n.cost_usd for n in subtree), Decimal(0)),
                "credits": credits_of(node.session_id) if credits_of else None,
                "duration_ms": 0,
            }
            if status != "cancelled":
                data["error"] = reason
            ref = SessionRef(node.session_id, root.id, node.parent_id)
            await self.sink.emit(ref, ev.SESSION_FINISHED, data)
        return await self.repo.get(root.id)

    # -- conversations ---------------------------------------------------------------------

    async def open_conversation(self, workspace: Path, model_spec: str, budget: Decimal) -> Conversation:
        """Start a conversation session about `workspace`; close it with `Conversation.close`."""
        from keen.agent.conversation import ConversationAgent
        from keen.llm.factory import build_model

        model = build_model(model_spec, self.settings, web_search=False, mode=self.mode)
        agent = ConversationAgent(
            workspace=workspace,
            model=model,
            sink=self.sink,
            meter=self.meter_for(budget),
            secret_values=tuple(self.settings.secret_values()),
            retry_base_delay=self.settings.keen_retry_base_delay,
            session_id=new_session_id(),
        )
        created = conversation_created(
            session_id=agent.session_id,
            workspace=agent.workspace.root,
            model=model.name,
            budget=budget,
            max_tool_rounds=agent.max_tool_rounds,
            user_id=self.actor.user_id,
        )
        conversation = Conversation(agent, model)
        try:
            await agent.start(created)
        except BaseException:
            await model.aclose()
            raise
        return conversation


def _subtree(projection: TreeProjection, session_id: str) -> list[Any]:
    """The node of `session_id` and every node below it."""
    found, todo = [], [session_id]
    while todo:
        node = projection.nodes.get(todo.pop())
        if node is not None:
            found.append(node)
            todo.extend(node.children)
    return found


class Conversation:
    """An open conversation: its agent, and the model connection to close at the end."""

    def __init__(self, agent: Any, model: Any) -> None:
        self.agent = agent
        self._model = model

    async def close(self, status: str) -> None:
        try:
            await self.agent.finish(status)
        finally:
            await self._model.aclose()
