"""The agent loop: one model call per iteration, tool calls in order, until a limit or the end.

Everything the agent does is an event; its conversation is rebuilt from those events (see
`history.py`), which is what makes replay and resume after a crash exact. Limits end the loop
through typed results; phases, stuck detection, condensing, budgets, the completion gate and
the agent tree live in their own modules.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from keen.agent import context
from keen.agent.budget import Budget, BudgetExhausted, Meter
from keen.agent.calls import Caller
from keen.agent.completion import CompletionGate, CompletionRequest, GateDecision, PhaseRequest
from keen.agent.history import History, tool_result_content
from keen.agent.phases import PHASE_PURPOSE, Phase, parse_phase
from keen.agent.prompts.render import render
from keen.agent.stuck import StuckDetector
from keen.aio import uncancellable
from keen.errors import KeenError, ModelCallError
from keen.events import types as ev
from keen.events.sink import EventSink
from keen.events.types import Event, SessionRef
from keen.gitrepo import FileChanges, GitRepo
from keen.llm.base import (
    Message,
    Model,
    Request,
    ToolSpec,
    ToolUsePart,
    Turn,
    estimate_tokens,
    tokens_for,
)
from keen.tools.context import ToolContext
from keen.tools.registry import ToolError, ToolRegistry, ToolResult
from keen.tools.workspace import Workspace

MAX_NO_TOOL_REPLIES = 3
MAX_COMPLETION_REFUSALS = 3


@dataclass
class AgentSpec:
    """Who the agent is and what it may do."""

    session_id: str
    short_id: str
    root_session_id: str
    parent_session_id: str | None
    vision: str
    workspace: Path
    branch_name: str = "main"
    git_branch: str | None = None
    specialization: str | None = None
    depth: int = 0
    max_iterations: int = 100
    max_depth: int = 10
    phase: Phase = Phase.EXPLORE
    gates: str = "standard"
    parent_branch: str | None = None
    parent_expectation: str | None = None
    start_commit: str = "HEAD"  # what "files changed" is measured against

    @property
    def ref(self) -> SessionRef:
        return SessionRef(self.session_id, self.root_session_id, self.parent_session_id)


@dataclass
class IterationPool:
    """Iterations shared down the tree: a child's use counts against every ancestor."""

    limit: int
    parent: IterationPool | None = None
    used: int = 0

    def remaining(self) -> int:
        own = self.limit - self.used
        return own if self.parent is None else min(own, self.parent.remaining())

    def use(self) -> None:
        pool: IterationPool | None = self
        while pool is not None:
            pool.used += 1
            pool = pool.parent

    def child(self, cap: int) -> IterationPool:
        return IterationPool(limit=max(min(cap, self.remaining()), 0), parent=self)


@dataclass
class AgentResult:
    session_id: str
    status: str
    summary: str
    error: str | None
    iterations: int  # this agent and its children
    cost_usd: Decimal  # this agent and its children
    files: FileChanges
    report: dict[str, Any] | None = None
    duration_ms: int = 0

    def finished_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "status": self.status,
            "summary": self.summary,
            **self.files.as_dict(),
            "iterations": self.iterations,
            "cost_usd": self.cost_usd,
            "credits": None,
            "duration_ms": self.duration_ms,
        }
        if self.error:
            data["error"] = self.error
        if self.report is not None:
            data["report"] = self.report
        return data


class _End(Exception):
    """Raised inside the loop to end the session with a status."""

    def __init__(self, status: str, summary: str, error: str | None = None) -> None:
        super().__init__(summary)
        self.status, self.summary, self.error = status, summary, error


@dataclass
class AgentDeps:
    """What an agent runs on; children get the same with their own budget, pool and workspace."""

    model: Model
    tools: ToolRegistry
    sink: EventSink
    meter: Meter
    budget: Budget
    iterations: IterationPool
    gate: CompletionGate
    secret_values: tuple[str, ...] = ()
    retry_base_delay: float = 1.0
    tree: Any = None  # agent.tree.Tree when summoning is available


class Agent:
    """One agent of the tree. It implements `AgentControl` for the tools it runs."""

    def __init__(self, spec: AgentSpec, deps: AgentDeps) -> None:
        self.spec = spec
        self.deps = deps
        self.model = deps.model.for_agent(spec.branch_name)
        self.workspace = Workspace(spec.workspace)
        self.repo = GitRepo(spec.workspace)
        self.start_commit = spec.start_commit
        self.history = History(phase=spec.phase.value)
        self.stuck = StuckDetector()
        self.report: dict[str, Any] | None = None
        self._end: _End | None = None
        self._system: str | None = None
        self._tool_specs: list[ToolSpec] = []
        self._caller = Caller(
            self.model, deps.meter, deps.sink, spec.ref, self._emit, retry_base_delay=deps.retry_base_delay
        )
        # AgentControl identity
        self.session_id = spec.session_id
        self.root_session_id = spec.root_session_id
        self.branch_name = spec.branch_name
        self.depth = spec.depth
        self.tree = deps.tree

    # -- running -----------------------------------------------------------------------------

    async def run(self, resume_events: list[Event] | None = None) -> AgentResult:
        """Run to the end. Cancellation is recorded as `cancelled` and then re-raised."""
        started = time.monotonic()
        try:
            if resume_events is None:
                await self._start()
            else:
                await self._resume(resume_events)
            await self._loop()
        except _End as end:
            self._end = end
        except asyncio.CancelledError:
            await self._finish(_End("cancelled", "cancelled by the user"), started)
            raise
        except BudgetExhausted as exc:
            self._end = _End("budget_exhausted", exc.message)
        except ModelCallError as exc:
            self._end = _End("failed", f"model call failed: {exc.message}", exc.message)
        except KeenError as exc:
            self._end = _End("failed", exc.message, exc.message)
        assert self._end is not None
        return await self._finish(self._end, started)

    async def _start(self) -> None:
        first = render(
            "first_message.j2",
            vision=self.spec.vision,
            phase=self.spec.phase.value,
            workspace=self.workspace.root,
        )
        await self._emit(
            ev.SESSION_STARTED, {"pid": os.getpid(), "first_message": first, "phase": self.phase}
        )

    async def _resume(self, events: list[Event]) -> None:
        for event in events:
            if event.session_id == self.session_id:
                self.history.apply(event)
        self.model.restore(self.history.model_state)
        await self._emit(ev.SESSION_RESUMED, {"pid": os.getpid(), "iterations": self.history.iterations})
        await self._finish_interrupted_calls()

    async def _finish_interrupted_calls(self) -> None:
        """Finish the tool calls of the last reply that a crash interrupted or never started."""
        pending = self.history.unfinished_calls()
        if not pending:
            self._check_completed()
            return
        for call in pending:
            if call.id in self.history.started_calls and call.name != "summon_agent":
                message = render("interrupted_tool.j2", name=call.name)
                await self._emit(
                    ev.TOOL_FINISHED, ToolResult(ok=False, error=message).event_data(call.id, call.name)
                )
        await self._run_tools(self.history.unfinished_calls())

    async def _loop(self) -> None:
        while True:
            self._check_completed()
            if self.deps.iterations.remaining() <= 0:
                raise _End(
                    "max_iterations", f"stopped after reaching the iteration limit ({self._limit_text()})"
                )
            turn = await self._call_model()
            calls = turn.tool_calls
            if turn.stop_reason == "pause_turn":
                continue  # the provider paused its own tool use; send the turn back to go on
            if not calls:
                await self._no_tool_call()
                continue
            await self._run_tools(calls)

    def _check_completed(self) -> None:
        done = self.history.completed
        if done is not None:
            raise _End("completed", str(done.get("summary", "")))

    def _limit_text(self) -> str:
        pool = self.deps.iterations
        return f"{pool.limit} iterations" if pool.parent is None else "the iterations its parent had left"

    async def _no_tool_call(self) -> None:
        count = self.history.no_tool_replies
        if count >= MAX_NO_TOOL_REPLIES:
            raise _End("stuck", f"{count} replies in a row without a tool call")
        message = render("nudge_no_tool.j2", count=count, limit=MAX_NO_TOOL_REPLIES)
        await self._emit(ev.AGENT_NUDGED, {"reason": "no_tool_call", "message": message})

    async def _run_tools(self, calls: list[ToolUsePart]) -> None:
        for call in calls:
            await self._emit(ev.TOOL_STARTED, {"call_id": call.id, "name": call.name, "input": call.input})
            ctx = ToolContext(
                workspace=self.workspace,
                agent=self,
                call_id=call.id,
                secret_values=self.deps.secret_values,
            )
            result = await self.deps.tools.execute(call.name, call.input, ctx)
            event = await self._emit(ev.TOOL_FINISHED, result.event_data(call.id, call.name))
            if self._end is not None:
                raise self._end
            self._check_completed()
            verdict = self.stuck.observe(call.name, call.input, result.ok, tool_result_content(event.data))
            if verdict.stuck:
                raise _End("stuck", verdict.stuck)
            if verdict.nudge:
                message = render("nudge_stuck.j2", reason=verdict.nudge)
                await self._emit(ev.AGENT_NUDGED, {"reason": "repeated_call", "message": message})

    # -- the model call ----------------------------------------------------------------------

    async def _call_model(self) -> Turn:
        turn = await self._caller.respond(
            self._build_request, self._condense, iteration=self.history.iterations + 1
        )
        self.deps.iterations.use()
        if self.deps.budget.crossed_warning():
            root = self.deps.budget.root()
            await self._emit(ev.BUDGET_WARNING, {"spent_usd": root.spent, "budget_usd": root.limit})
        return turn

    def _build_request(self, messages: list[Message] | None = None) -> Request:
        if self._system is None:
            self._system = self._system_prompt()
            self._tool_specs = self.deps.tools.specs()
        return Request(
            system=self._system, tools=self._tool_specs, messages=self.history.request_messages(messages)
        )

    def _estimate(self, messages: list[Message] | None = None) -> int:
        if messages is not None:
            return estimate_tokens(self._build_request(messages))
        # The usual case, once per call: the history keeps its own size.
        request = self._build_request([])
        fixed = len(request.system) + sum(t.chars() for t in request.tools)
        pending = sum(m.chars() for m in request.messages)
        count = len(self.history.messages) + len(request.messages)
        return tokens_for(fixed + self.history.chars + pending, count)

    async def _condense(self, force: bool = False) -> None:
        await context.condense(
            self.history.messages,
            estimate=self._estimate,
            limit=context.CONDENSE_AT
            * context.usable_window(self.model.context_window, self.model.max_output_tokens),
            emit=self._emit,
            force=force,
        )

    def _system_prompt(self) -> str:
        tree = self.deps.tree
        return system_prompt(
            self.spec,
            tool_names=self.deps.tools.names,
            budget=self.deps.budget.limit,
            max_iterations=self.deps.iterations.limit,
            focus=tree.focus(self.spec.specialization) if tree is not None else "",
        )

    # -- AgentControl ------------------------------------------------------------------------

    @property
    def phase(self) -> str:
        return self.history.phase or self.spec.phase.value

    async def emit(self, type: str, data: dict[str, Any]) -> None:
        await self._emit(type, data)

    async def change_phase(self, phase: str, summary: str) -> dict[str, Any]:
        try:
            target = parse_phase(phase)
        except ValueError as exc:
            raise ToolError(str(exc)) from None
        previous = self.phase
        note = render("phase_note.j2", phase=target.value, purpose=PHASE_PURPOSE[target])
        await self._emit(
            ev.PHASE_CHANGED, {"from": previous, "to": target.value, "summary": summary, "note": note}
        )
        gate = await self.deps.gate.evaluate_phase(
            PhaseRequest(
                workspace=self.workspace.root,
                left=previous,
                entered=target.value,
                files_changed=await self.changed_files(),
                facts=self.history.facts(),
            )
        )
        if gate is not None:
            await self._emit(ev.GATE_EVALUATED, gate)
        return {"from": previous, "to": target.value, **({"gate": gate} if gate else {})}

    async def request_completion(self, summary: str, success: bool, next_steps: list[str]) -> dict[str, Any]:
        accepted = {"accepted": True, "summary": summary, "success": success, "next_steps": next_steps}
        if not success:
            # An honest "could not finish" is not a claim of done: end as failed, no gate needed.
            self._end = _End("failed", summary, "the agent reported that it could not complete the vision")
            return {**accepted, "accepted": False}
        decision = await self.deps.gate.evaluate(
            CompletionRequest(
                workspace=self.workspace.root,
                summary=summary,
                success=success,
                files_changed=await self.changed_files(),
                phase=self.phase,
                attempt=self.history.refusals + 1,
                max_attempts=MAX_COMPLETION_REFUSALS,
                facts=self.history.facts(),
            )
        )
        await self._record_decision(decision)
        if decision.passed:
            return accepted
        attempt = self.history.refusals + 1
        await self._emit(
            ev.COMPLETION_BLOCKED,
            {"reasons": decision.reasons, "attempt": attempt, "message": decision.recovery_message},
        )
        if attempt >= MAX_COMPLETION_REFUSALS:
            self.report = decision.report
            reasons = "; ".join(decision.reasons)
            self._end = _End("failed", f"completion refused {attempt} times: {reasons}", reasons)
            raise ToolError(f"completion refused {attempt} times; the session ends as failed: {reasons}")
        raise ToolError(decision.recovery_message or "completion refused: " + "; ".join(decision.reasons))

    async def _record_decision(self, decision: GateDecision) -> None:
        if decision.validation_event is not None:
            await self._emit(ev.VALIDATION_FINISHED, decision.validation_event)
        if decision.gate is not None:
            await self._emit(ev.GATE_EVALUATED, decision.gate)

    async def changed_files(self) -> list[str]:
        """Files that differ from the session's start commit, committed or not."""
        out = await self.repo.run("diff", "--name-only", self.start_commit)
        untracked = await self.repo.run("ls-files", "--others", "--exclude-standard")
        return sorted({*out.stdout.split(), *untracked.stdout.split()})

    # -- recording ---------------------------------------------------------------------------

    async def _emit(self, type: str, data: dict[str, Any]) -> Event:
        return await uncancellable(self._record(type, data))

    async def _record(self, type: str, data: dict[str, Any]) -> Event:
        event = await self.deps.sink.emit(self.spec.ref, type, data)
        self.history.apply(event)  # the conversation must match the log, cancelled or not
        return event

    async def _finish(self, end: _End, started: float) -> AgentResult:
        await self._commit_remaining(end)
        files = await self.repo.changes_between(self.start_commit, "HEAD")
        result = AgentResult(
            session_id=self.session_id,
            status=end.status,
            summary=end.summary,
            error=end.error,
            iterations=self.deps.iterations.used,
            cost_usd=self.deps.budget.spent,
            files=files,
            report=self.report,
            duration_ms=int((time.monotonic() - started) * 1000),
        )
        await self._emit(ev.SESSION_FINISHED, result.finished_data())
        return result

    async def _commit_remaining(self, end: _End) -> str | None:
        headline = (end.summary.strip().splitlines() or [end.status])[0][:72] or end.status
        message = render(
            "final_commit.j2",
            headline=headline,
            status=end.status,
            session=self.spec.short_id,
            branch=self.spec.branch_name,
            vision=self.spec.vision[:500],
        )
        return await self._commit(message)

    async def commit_checkpoint(self, what: str) -> str | None:
        """Commit pending work (before summoning, so a child starts from it)."""
        return await self._commit(f"keen: {what}\n\nSession: {self.spec.short_id} ({self.spec.branch_name})")

    async def _commit(self, message: str) -> str | None:
        commit = await self.repo.commit_all(message)
        if commit is None:
            return None
        files = await self.repo.files_in_commit(commit)
        branch = await self.repo.current_branch()
        await self._emit(
            ev.GIT_COMMITTED, {"branch": branch, "commit": commit, "message": message, "files": files}
        )
        return commit


def new_session_id() -> str:
    return uuid.uuid4().hex


def system_prompt(
    spec: AgentSpec, *, tool_names: list[str], budget: Decimal, max_iterations: int, focus: str = ""
) -> str:
    """The system prompt of an agent (also shown by `keen breathe --dry-run`)."""
    return render(
        "system.j2",
        role="root" if spec.parent_session_id is None else "child",
        vision=spec.vision,
        workspace=spec.workspace,
        specialization=spec.specialization or "general",
        specialization_focus=focus,
        parent_branch=spec.parent_branch or "the root agent",
        parent_expectation=spec.parent_expectation or "a summary of what you did and what is left",
        branch_name=spec.branch_name,
        git_branch=spec.git_branch or "",
        depth=spec.depth,
        max_depth=spec.max_depth,
        phases=[(p.value, PHASE_PURPOSE[p]) for p in Phase],
        can_summon="summon_agent" in tool_names,
        has_validation="validate_project" in tool_names,
        gates=spec.gates,
        max_refusals=MAX_COMPLETION_REFUSALS,
        max_iterations=max_iterations,
        budget=f"{budget:.2f}",
    )


def first_message(spec: AgentSpec) -> str:
    return render("first_message.j2", vision=spec.vision, phase=spec.phase.value, workspace=spec.workspace)
