"""Running sessions in this process: start, resume, the wiring of an agent's dependencies.

The CLI (local mode) calls this directly; the server will call the same functions from a task.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from keen.agent.budget import Budget, BudgetMeter, parse_usd
from keen.agent.completion import AcceptAllGate, CompletionGate
from keen.agent.loop import Agent, AgentDeps, AgentResult, AgentSpec, IterationPool, new_session_id
from keen.agent.phases import Phase, parse_phase
from keen.agent.vision import check_vision
from keen.config import Settings
from keen.errors import InputError, WorkspaceError
from keen.events import types as ev
from keen.events.bus import EventBus
from keen.events.sink import RecordingSink
from keen.gitrepo import GitRepo, ensure_repository
from keen.llm.base import Model
from keen.llm.factory import build_model, check_model_config
from keen.store import Database, SessionRepository, SqlEventStore
from keen.store.models import SessionRow

GATE_MODES = ("standard", "strict", "off")
MAX_ITERATIONS_CAP = 10_000


@dataclass
class RunOptions:
    vision: str
    workspace: Path
    model: str
    max_iterations: int = 100
    budget: Decimal = Decimal("50")
    phase: Phase = Phase.EXPLORE
    max_depth: int = 10
    gates: str = "standard"
    web_search: bool = True
    allow_dirty: bool = False

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["workspace"] = str(self.workspace)
        data["budget"] = format(self.budget, "f")
        data["phase"] = self.phase.value
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunOptions:
        return cls(
            vision=data["vision"],
            workspace=Path(data["workspace"]),
            model=data["model"],
            max_iterations=int(data["max_iterations"]),
            budget=Decimal(str(data["budget"])),
            phase=Phase(data["phase"]),
            max_depth=int(data["max_depth"]),
            gates=data["gates"],
            web_search=bool(data["web_search"]),
            allow_dirty=bool(data.get("allow_dirty", False)),
        )


def make_options(
    settings: Settings,
    *,
    vision: str,
    directory: Path | None,
    model: str | None,
    max_iterations: int,
    budget: str | Decimal,
    phase: str,
    max_depth: int,
    gates: str,
    web_search: bool,
    allow_dirty: bool,
) -> RunOptions:
    """Validate every option (nothing is created here); each problem is an `InputError`/`ConfigError`."""
    text = check_vision(vision)
    workspace = (directory or Path.cwd()).expanduser().resolve()
    if workspace.exists() and not workspace.is_dir():
        raise InputError(f"--dir {workspace} exists and is not a directory")
    limits = check_limits(
        max_iterations=max_iterations, budget=budget, max_depth=max_depth, gates=gates, web_search=web_search
    )
    try:
        start_phase = parse_phase(phase)
    except ValueError as exc:
        raise InputError(f"--phase: {exc}") from None
    spec = model or settings.keen_model
    check_model_config(spec, settings)
    return RunOptions(
        vision=text,
        workspace=workspace,
        model=spec,
        phase=start_phase,
        allow_dirty=allow_dirty,
        **asdict(limits),
    )


@dataclass(frozen=True)
class RunLimits:
    """The limits of one run, checked once whether they come from `keen breathe` or are kept by
    `keen converse` for the runs its `breathe` word starts."""

    max_iterations: int = 100
    budget: Decimal = Decimal("50")
    max_depth: int = 10
    gates: str = "standard"
    web_search: bool = True


def check_limits(
    *,
    max_iterations: int,
    budget: str | Decimal,
    max_depth: int,
    gates: str,
    web_search: bool,
    budget_option: str = "--budget",
) -> RunLimits:
    """Each out-of-range value is an `InputError` naming its option."""
    if not 1 <= max_iterations <= MAX_ITERATIONS_CAP:
        raise InputError(f"--max-iterations must be between 1 and {MAX_ITERATIONS_CAP}, not {max_iterations}")
    amount = parse_usd(budget, budget_option)
    if not 0 <= max_depth <= 25:
        raise InputError(f"--max-depth must be between 0 and 25, not {max_depth}")
    if gates not in GATE_MODES:
        raise InputError(f"--gates must be one of {', '.join(GATE_MODES)}, not {gates!r}")
    return RunLimits(max_iterations, amount, max_depth, gates, web_search)


def completion_gate(mode: str) -> CompletionGate:
    """The completion gate for a `--gates` mode: validation, or none at all when off."""
    if mode == "off":
        return AcceptAllGate()
    from keen.validation.completion import ValidationGate

    return ValidationGate(mode)  # type: ignore[arg-type]


class LocalRunner:
    """Owns the database, the event sink and the bus for sessions run in this process."""

    def __init__(self, settings: Settings, bus: EventBus | None = None) -> None:
        self.settings = settings
        self.bus = bus or EventBus()
        self.db: Database | None = None

    async def open(self) -> LocalRunner:
        if self.db is None:
            if self.settings.keen_database_url is None:
                self.settings.ensure_home()
            self.db = Database(self.settings.database_url)
            await self.db.upgrade()
            self.store = SqlEventStore(self.db)
            self.sessions = SessionRepository(self.db)
            self.sink = RecordingSink(self.store, self.bus)
        return self

    async def close(self) -> None:
        if self.db is not None:
            await self.db.dispose()
            self.db = None

    async def __aenter__(self) -> LocalRunner:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def create(self, options: RunOptions) -> AgentSpec:
        """Prepare the workspace and record `session.created`; returns the root agent's spec."""
        options.workspace.mkdir(parents=True, exist_ok=True)
        repo, start_commit = await ensure_repository(options.workspace, allow_dirty=options.allow_dirty)
        session_id = new_session_id()
        spec = AgentSpec(
            session_id=session_id,
            short_id=session_id[:8],
            root_session_id=session_id,
            parent_session_id=None,
            vision=options.vision,
            workspace=options.workspace,
            git_branch=await repo.current_branch(),
            max_iterations=options.max_iterations,
            max_depth=options.max_depth,
            phase=options.phase,
            gates=options.gates,
            start_commit=start_commit,
        )
        await self.sink.emit(
            spec.ref,
            ev.SESSION_CREATED,
            {
                "vision": options.vision,
                "options": options.to_json(),
                "branch": "main",
                "git_branch": spec.git_branch,
                "specialization": None,
                "depth": 0,
                "model": options.model,
                "workspace": str(options.workspace),
                "start_commit": start_commit,
                "short_id": spec.short_id,
                "phase": options.phase.value,
                "kind": "agent",
            },
        )
        return spec

    async def run(self, spec: AgentSpec, options: RunOptions) -> AgentResult:
        return await self._run(spec, options, resume=False)

    async def _run(self, spec: AgentSpec, options: RunOptions, *, resume: bool) -> AgentResult:
        """Run (or resume) a root agent with its tree wired to this runner's bus."""
        events = await self.store.events(spec.root_session_id)
        model = build_model(options.model, self.settings, web_search=options.web_search)
        deps = self._deps(options, model, spec.short_id)
        deps.tree.load(events)
        if resume:
            deps.budget.spent = sum((n.cost_usd for n in deps.tree.projection.nodes.values()), Decimal(0))
            deps.iterations.used = sum(n.iterations for n in deps.tree.projection.nodes.values())
        unsubscribe = self.bus.add_callback(deps.tree.observe, spec.root_session_id)
        try:
            return await Agent(spec, deps).run(resume_events=events if resume else None)
        finally:
            unsubscribe()
            await model.aclose()

    async def resume(self, session_id: str) -> AgentResult:
        row = await self.sessions.get(session_id)
        root = row if row.parent_id is None else await self.sessions.get(row.root_id)
        _check_resumable(root)
        options = RunOptions.from_json(root.options)
        check_model_config(options.model, self.settings)
        if not options.workspace.is_dir() or not await GitRepo(options.workspace).is_repo():
            raise WorkspaceError(f"the workspace {options.workspace} of session {root.short_id} is gone")
        spec = AgentSpec(
            session_id=root.id,
            short_id=root.short_id,
            root_session_id=root.id,
            parent_session_id=None,
            vision=root.vision,
            workspace=options.workspace,
            git_branch=root.git_branch,
            max_iterations=options.max_iterations,
            max_depth=options.max_depth,
            phase=options.phase,
            gates=options.gates,
            start_commit=root.start_commit or "HEAD",
        )
        return await self._run(spec, options, resume=True)

    def _deps(self, options: RunOptions, model: Model, short_id: str) -> AgentDeps:
        from keen.agent.tree import Tree
        from keen.tools import agent_tools

        budget = Budget(limit=options.budget)
        return AgentDeps(
            model=model,
            tools=agent_tools(validation=True, summon=True),
            sink=self.sink,
            meter=BudgetMeter(budget),
            budget=budget,
            iterations=IterationPool(limit=options.max_iterations),
            gate=completion_gate(options.gates),
            secret_values=tuple(self.settings.secret_values()),
            retry_base_delay=self.settings.keen_retry_base_delay,
            tree=Tree(root_short_id=short_id, worktrees_dir=self.settings.keen_home / "worktrees"),
        )


def _check_resumable(root: SessionRow) -> None:
    if root.status in ev.TERMINAL_STATUSES:
        raise InputError(f"session {root.short_id} already finished ({root.status}); nothing to resume")
    if root.kind != "agent":
        raise InputError(f"session {root.short_id} is a {root.kind}, not an agent session")
    if root.pid and root.pid != os.getpid() and _alive(root.pid):
        raise InputError(f"session {root.short_id} is still running in process {root.pid}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed process not yet reaped by its parent is a zombie: dead for our purposes
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True
