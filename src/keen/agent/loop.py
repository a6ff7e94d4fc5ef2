"""The agent loop: one model call per iteration, tool calls in order, until an ending.

Everything the agent does is an event; its conversation is rebuilt from those events (see
`history.py`), which is what makes replay and resume after a crash exact. Every way to end is
an exception from `ending.py` that `run` turns into `session.finished`; phases and the
completion gate (`control.py`), stuck detection, condensing, budgets and the agent tree live in
their own modules.
"""

from __future__ import annotations

import asyncio
import os
import textwrap
import time
from functools import partial
from typing import Any, NoReturn

from keen.agent.calls import Caller
from keen.agent.control import AgentControls
from keen.agent.ending import Cancelled, Completed, IterationsEnded, SessionEnd, Stuck, ending_for
from keen.agent.history import History, tool_result_content
from keen.agent.prompts.builders import first_message, system_prompt
from keen.agent.prompts.render import render
from keen.agent.runtime import Recorder
from keen.agent.spec import AgentDeps, AgentResult, AgentSpec
from keen.agent.stuck import StuckDetector
from keen.errors import KeenError
from keen.events import types as ev
from keen.events.types import Event
from keen.gitrepo import Commit, GitRepo
from keen.llm.base import Message, Request, ToolSpec, ToolUsePart, Turn, estimate_tokens, tokens_for
from keen.tools.context import SummonRequest, ToolContext
from keen.tools.registry import ToolError, ToolResult
from keen.tools.summon import SummonInput, summon_agent, summon_request
from keen.tools.workspace import Workspace

MAX_NO_TOOL_REPLIES = 3


class Agent:
    """One agent of the tree."""

    def __init__(self, spec: AgentSpec, deps: AgentDeps) -> None:
        self.spec = spec
        self.deps = deps
        self.model = deps.model.for_agent(spec.branch_name)
        self.workspace = Workspace(spec.workspace)
        self.repo = GitRepo(spec.workspace)
        self.history = History(phase=spec.phase.value)
        self.recorder = Recorder(deps.sink, spec.ref, self.history)
        self.control = AgentControls(self)
        self.stuck = StuckDetector()
        self._system: str | None = None
        self._tool_specs: list[ToolSpec] = []
        self._caller = Caller(
            self.model,
            deps.meter,
            deps.sink,
            spec.ref,
            self.recorder.emit,
            retry_base_delay=deps.retry_base_delay,
        )

    @property
    def session_id(self) -> str:
        return self.spec.session_id

    async def emit(self, type: str, data: dict[str, Any]) -> Event:
        return await self.recorder.emit(type, data)

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
        except SessionEnd as end:
            ending = end
        except asyncio.CancelledError:
            if not self.deps.stopping():  # a stopping process suspends: the tree resumes later
                await self._finish(Cancelled("cancelled by the user"), started)
            raise
        except KeenError as exc:
            ending = ending_for(exc)
        return await self._finish(ending, started)

    async def _start(self) -> None:
        await self.emit(
            ev.SESSION_STARTED,
            {"pid": os.getpid(), "first_message": first_message(self.spec), "phase": self.control.phase},
        )

    async def _resume(self, events: list[Event]) -> None:
        for event in events:
            if event.session_id == self.session_id:
                self.recorder.apply(event)
        self.model.restore(self.history.model_state)
        await self.emit(ev.SESSION_RESUMED, {"pid": os.getpid(), "iterations": self.history.iterations})
        await self._finish_interrupted_calls()

    async def _finish_interrupted_calls(self) -> None:
        """Finish the tool calls of the last reply that a crash interrupted or never started."""
        done = self.history.completed  # accepted just before the crash, not yet recorded as ended
        if done is not None:
            raise Completed(str(done.get("summary", "")))
        pending = self.history.unfinished_calls()
        for call in pending:
            if call.id in self.history.started_calls and call.name != summon_agent.name:
                message = render("interrupted_tool.j2", name=call.name)
                await self.recorder.finish_call(call, ToolResult(ok=False, error=message))
        await self._run_tools(self.history.unfinished_calls())

    async def _loop(self) -> NoReturn:
        while True:
            if self.deps.stopping():
                # A step boundary of a stopping process: suspend here (as a cancellation does
                # while stopping), so the tree resumes from this step elsewhere.
                raise asyncio.CancelledError
            if self.deps.iterations.remaining() <= 0:
                raise IterationsEnded(f"stopped after reaching the iteration limit ({self._limit_text()})")
            turn = await self._call_model()
            if turn.stop_reason == "pause_turn":
                continue  # the provider paused its own tool use; send the turn back to go on
            if not turn.tool_calls:
                await self._no_tool_call()
                continue
            await self._run_tools(turn.tool_calls)

    def _limit_text(self) -> str:
        pool = self.deps.iterations
        return f"{pool.limit} iterations" if pool.parent is None else "the iterations its parent had left"

    async def _no_tool_call(self) -> None:
        count = self.history.no_tool_replies
        if count >= MAX_NO_TOOL_REPLIES:
            raise Stuck(f"{count} replies in a row without a tool call")
        message = render("nudge_no_tool.j2", count=count, limit=MAX_NO_TOOL_REPLIES)
        await self.emit(ev.AGENT_NUDGED, {"reason": "no_tool_call", "message": message})

    async def _run_tools(self, calls: list[ToolUsePart]) -> None:
        for group in _call_groups(calls):
            if len(group) > 1 and self.deps.tree is not None:
                await self._summon_together(group)
                continue
            call = group[0]
            ctx = ToolContext(
                workspace=self.workspace,
                agent=self.control,
                call_id=call.id,
                secret_values=self.deps.secret_values,
                sandbox=self.deps.sandbox,
            )
            event = await self.recorder.run_tool(call, partial(self._execute, call, ctx))
            await self._observe_result(call, event)

    async def _execute(self, call: ToolUsePart, ctx: ToolContext) -> ToolResult:
        """Run one call; a child's writes are snapshotted before its result is recorded, so a
        recorded result never stands for work a restart could lose."""
        result = await self.deps.tools.execute(call.name, call.input, ctx)
        tool = self.deps.tools.get(call.name)
        if self.deps.tree is not None and tool is not None and not tool.read_only:
            await self.deps.tree.snapshot(self)
        return result

    async def _summon_together(self, calls: list[ToolUsePart]) -> None:
        """Several `summon_agent` calls in one reply: their children run at the same time and the
        results are recorded in call order once all have finished and merged."""
        assert self.deps.tree is not None
        requests: list[SummonRequest | ToolResult] = []
        for call in calls:
            await self.emit(ev.TOOL_STARTED, {"call_id": call.id, "name": call.name, "input": call.input})
            try:
                args = self.deps.tools.validate(call.name, call.input)
                assert isinstance(args, SummonInput)
                requests.append(summon_request(call.id, args))
            except ToolError as exc:
                requests.append(ToolResult(ok=False, error=exc.message))
        started = time.perf_counter()
        wanted = [r for r in requests if isinstance(r, SummonRequest)]
        outcomes = iter(await self.deps.tree.summon_many(self, wanted))
        duration_ms = int((time.perf_counter() - started) * 1000)
        for call, request in zip(calls, requests, strict=True):
            if isinstance(request, ToolResult):
                result = request
            else:
                outcome = next(outcomes)
                result = (
                    ToolResult(ok=False, error=outcome.message, output=outcome.output)
                    if isinstance(outcome, ToolError)
                    else ToolResult(ok=True, output=outcome)
                )
                result.duration_ms = duration_ms
            await self._observe_result(call, await self.recorder.finish_call(call, result))

    async def _observe_result(self, call: ToolUsePart, event: Event) -> None:
        verdict = self.stuck.observe(
            call.name, call.input, bool(event.data["ok"]), tool_result_content(event.data)
        )
        if verdict.stuck:
            raise Stuck(verdict.stuck)
        if verdict.nudge:
            message = render("nudge_stuck.j2", reason=verdict.nudge)
            await self.emit(ev.AGENT_NUDGED, {"reason": "repeated_call", "message": message})

    # -- the model call ----------------------------------------------------------------------

    async def _call_model(self) -> Turn:
        turn = await self._caller.respond(
            self._build_request, self._condense, iteration=self.history.iterations + 1
        )
        self.deps.iterations.use()
        budget = self.deps.meter.budget
        if budget.crossed_warning():
            root = budget.root()
            await self.emit(ev.BUDGET_WARNING, {"spent_usd": root.spent, "budget_usd": root.limit})
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
        await self.recorder.condense(self.model, self._estimate, force)

    def _system_prompt(self) -> str:
        tree = self.deps.tree
        return system_prompt(
            self.spec,
            tool_names=self.deps.tools.names,
            budget=self.deps.meter.budget.limit,
            max_iterations=self.deps.iterations.limit,
            focus=tree.focus(self.spec.specialization) if tree is not None else "",
        )

    # -- the end -----------------------------------------------------------------------------

    async def _finish(self, end: SessionEnd, started: float) -> AgentResult:
        made = await self._commit_remaining(end)
        files = await self.repo.changes_between(self.spec.start_commit, "HEAD", skipped=made.skipped)
        result = AgentResult(
            session_id=self.session_id,
            status=end.status,
            summary=end.summary,
            error=end.error,
            iterations=self.deps.iterations.used,
            cost_usd=self.deps.meter.budget.spent,
            files=files,
            report=end.report,
            duration_ms=int((time.monotonic() - started) * 1000),
            credits=self.deps.meter.credits_of(self.session_id),
        )
        await self.emit(ev.SESSION_FINISHED, result.finished_data())
        return result

    async def _commit_remaining(self, end: SessionEnd) -> Commit:
        summary = end.summary.strip()
        first_line = " ".join((summary.splitlines() or [end.status])[0].split()) or end.status
        # git's subject convention: 72 characters with the "keen: " prefix, cut between words.
        headline = textwrap.shorten(first_line, width=72 - len("keen: "), placeholder=" …")
        if headline == "…":  # one word longer than the subject
            headline = first_line[: 72 - len("keen: ") - 1] + "…"
        message = render(
            "final_commit.j2",
            headline=headline,
            summary=summary if summary != headline else "",
            status=end.status,
            session=self.spec.short_id,
            branch=self.spec.branch_name,
            vision=self.spec.vision[:500],
        )
        return await self._commit(message)

    async def commit_checkpoint(self, what: str) -> str | None:
        """Commit pending work (before summoning, so a child starts from it)."""
        message = f"keen: {what}\n\nSession: {self.spec.short_id} ({self.spec.branch_name})"
        return (await self._commit(message)).commit

    async def _commit(self, message: str) -> Commit:
        made = await self.repo.commit(message)
        if made.commit is not None:
            await self.emit(
                ev.GIT_COMMITTED,
                {"branch": made.branch, "commit": made.commit, "message": message, "files": made.files},
            )
        return made


def _call_groups(calls: list[ToolUsePart]) -> list[list[ToolUsePart]]:
    """The calls of a reply in order, with each run of consecutive `summon_agent` calls as one
    group (those children run at the same time) and every other call alone."""
    groups: list[list[ToolUsePart]] = []
    for call in calls:
        summons = call.name == summon_agent.name
        if summons and groups and groups[-1][0].name == summon_agent.name:
            groups[-1].append(call)
        else:
            groups.append([call])
    return groups
