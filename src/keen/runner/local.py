"""Running a root agent in this process: its dependencies wired, its lease held, and cancel
requests from the store watched while it runs.

The session service (`runner.sessions`) decides what runs; this module only runs it. A queue
worker runs a session the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal

from keen.agent.budget import IterationPool, MeterFactory
from keen.agent.loop import Agent
from keen.agent.spec import AgentDeps, AgentResult, AgentSpec
from keen.agent.tree import ChildSessions, Tree
from keen.agent.worktrees import worktrees_root
from keen.aio import uncancellable
from keen.config import Settings
from keen.errors import InputError
from keen.events.sink import EventSink, ObservedSink
from keen.events.types import Event
from keen.gitrepo import GitRepo, recover_interrupted
from keen.llm.base import Model
from keen.llm.factory import build_model
from keen.runner.lease import lease_owner
from keen.runner.options import RunOptions, completion_gate
from keen.store.repo import SessionRepository
from keen.tools.sandbox import Mode, SandboxPolicy, remove_home, session_sandbox

CANCEL_POLL_SECONDS = 0.25  # how soon a cancel request from another process is seen
HEARTBEAT_SECONDS = 2.0


class LocalRunner:
    def __init__(
        self,
        settings: Settings,
        sink: EventSink,
        control: SessionRepository,
        sessions: ChildSessions,
        lease: timedelta,
        meter_for: MeterFactory,
        sandbox: SandboxPolicy,
        mode: Mode = "local",
        stopping: Callable[[], bool] | None = None,
    ) -> None:
        self.settings = settings
        self.policy = sandbox
        self.mode = mode
        self.sink = sink
        self.control = control
        self.sessions = sessions
        self.lease = lease
        self.meter_for = meter_for
        self.stopping = stopping

    async def run(
        self,
        spec: AgentSpec,
        options: RunOptions,
        events: list[Event],
        *,
        resume: bool,
        replacing: str | None = None,
    ) -> AgentResult:
        """Run (or resume) the root agent `spec` to its end, holding its lease meanwhile
        (`replacing`: the owner of a lease known to be dead, taken over)."""
        owner = lease_owner()
        if not await self.control.claim(spec.session_id, owner, self.lease, replacing):
            raise InputError(f"session {spec.short_id} is already running in another process")
        model = build_model(options.model, self.settings, web_search=options.web_search, mode=self.mode)
        sandbox = session_sandbox(self.policy, spec.session_id)
        try:
            deps = self._deps(options, model, spec.short_id)
            deps.sandbox = sandbox
            if self.stopping is not None:
                deps.stopping = self.stopping
            assert deps.tree is not None
            deps.tree.load(events)
            if resume:
                nodes = deps.tree.projection.nodes.values()
                deps.meter.budget.spent = sum((n.cost_usd for n in nodes), Decimal(0))
                deps.iterations.used = sum(n.iterations for n in nodes)
                await recover_interrupted(GitRepo(spec.workspace))
            agent = asyncio.ensure_future(Agent(spec, deps).run(resume_events=events if resume else None))
            watcher = asyncio.ensure_future(self._watch(spec.session_id, owner, agent))
            try:
                return await agent
            finally:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
                # It ended (cancelled included): nothing will resume it, unless it was suspended.
                if agent.done() and not (self.stopping is not None and self.stopping()):
                    remove_home(sandbox)
                    await uncancellable(deps.tree.close(GitRepo(spec.workspace)))
        finally:
            await uncancellable(self.control.release(spec.session_id, owner))
            await model.aclose()

    async def _watch(self, root_id: str, owner: str, agent: asyncio.Future[AgentResult]) -> None:
        """Renew the lease and cancel the run when a cancel request is recorded."""
        loop = asyncio.get_running_loop()
        next_beat = loop.time() + HEARTBEAT_SECONDS
        while not agent.done():
            await asyncio.sleep(CANCEL_POLL_SECONDS)
            if loop.time() >= next_beat:
                cancel = await self.control.heartbeat(root_id, owner)
                next_beat = loop.time() + HEARTBEAT_SECONDS
            else:
                cancel = await self.control.cancel_requested(root_id)
            if cancel:
                agent.cancel()
                return

    def _deps(self, options: RunOptions, model: Model, short_id: str) -> AgentDeps:
        from keen.tools import agent_tools

        tree = Tree(
            root_short_id=short_id,
            worktrees_dir=worktrees_root(self.settings.keen_home),
            sessions=self.sessions,
        )
        return AgentDeps(
            model=model,
            tools=agent_tools(validation=True, summon=True),
            sink=ObservedSink(self.sink, tree.observe),
            meter=self.meter_for(options.budget),
            iterations=IterationPool(limit=options.max_iterations),
            gate=completion_gate(options.gates),
            secret_values=tuple(self.settings.secret_values()),
            retry_base_delay=self.settings.keen_retry_base_delay,
            tree=tree,
        )
