"""The control surface the tools act on (`AgentControl`): phases and their gates, the completion
gate, files changed, and summoning through the tree. Kept apart from the loop, which only runs
iterations."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from keen.agent.completion import CompletionRequest, GateDecision, PhaseRequest
from keen.agent.ending import Completed, Failed
from keen.agent.phases import PHASE_PURPOSE, parse_phase
from keen.agent.prompts.builders import MAX_COMPLETION_REFUSALS
from keen.agent.prompts.render import render
from keen.events import types as ev
from keen.tools.context import SummonRequest, TreeView
from keen.tools.registry import ToolError

if TYPE_CHECKING:
    from keen.agent.loop import Agent


class AgentControls:
    """`AgentControl` for one agent of the tree."""

    def __init__(self, agent: Agent) -> None:
        self._agent = agent
        spec = agent.spec
        self.session_id = spec.session_id
        self.root_session_id = spec.root_session_id
        self.branch_name = spec.branch_name
        self.depth = spec.depth
        self.max_parallel = spec.max_parallel

    @property
    def phase(self) -> str:
        return self._agent.history.phase or self._agent.spec.phase.value

    @property
    def tree(self) -> TreeView | None:
        return self._agent.deps.tree

    async def emit(self, type: str, data: dict[str, Any]) -> None:
        await self._agent.recorder.emit(type, data)

    async def summon(self, request: SummonRequest) -> dict[str, Any]:
        tree = self._agent.deps.tree
        if tree is None:
            raise ToolError("the agent tree is not available in this session")
        return await tree.summon(self._agent, request)

    async def change_phase(self, phase: str, summary: str) -> dict[str, Any]:
        try:
            target = parse_phase(phase)
        except ValueError as exc:
            raise ToolError(str(exc)) from None
        previous = self.phase
        note = render("phase_note.j2", phase=target.value, purpose=PHASE_PURPOSE[target])
        await self.emit(
            ev.PHASE_CHANGED, {"from": previous, "to": target.value, "summary": summary, "note": note}
        )
        gate = await self._agent.deps.gate.evaluate_phase(
            PhaseRequest(
                workspace=self._agent.workspace.root,
                left=previous,
                entered=target.value,
                files_changed=await self._files_for_gate(),
                facts=self._agent.history.facts(),
            )
        )
        if gate is not None:
            await self.emit(ev.GATE_EVALUATED, gate)
        return {"from": previous, "to": target.value, **({"gate": gate} if gate else {})}

    async def request_completion(self, summary: str, success: bool, next_steps: list[str]) -> dict[str, Any]:
        """Accepted: the session ends `completed`. An honest "could not finish" ends it `failed`
        with no gate. Refused: a `ToolError` with the recovery message, and after the last
        allowed refusal the session ends `failed` with the validation report."""
        accepted = {"accepted": True, "summary": summary, "success": success, "next_steps": next_steps}
        if not success:
            raise Failed(
                summary,
                "the agent reported that it could not complete the vision",
                tool_output={**accepted, "accepted": False},
            )
        history = self._agent.history
        attempt = history.refusals + 1
        decision = await self._agent.deps.gate.evaluate(
            CompletionRequest(
                workspace=self._agent.workspace.root,
                summary=summary,
                success=success,
                files_changed=await self._files_for_gate(),
                phase=self.phase,
                attempt=attempt,
                max_attempts=MAX_COMPLETION_REFUSALS,
                facts=history.facts(),
            )
        )
        await self._record_decision(decision)
        if decision.passed:
            raise Completed(summary, tool_output=accepted)
        await self.emit(
            ev.COMPLETION_BLOCKED,
            {"reasons": decision.reasons, "attempt": attempt, "message": decision.recovery_message},
        )
        reasons = "; ".join(decision.reasons)
        if attempt >= MAX_COMPLETION_REFUSALS:
            raise Failed(
                f"completion refused {attempt} times: {reasons}",
                reasons,
                report=decision.report,
                tool_error=f"completion refused {attempt} times; the session ends as failed: {reasons}",
            )
        raise ToolError(decision.recovery_message or "completion refused: " + reasons)

    async def _record_decision(self, decision: GateDecision) -> None:
        if decision.validation_event is not None:
            await self.emit(ev.VALIDATION_FINISHED, decision.validation_event)
        if decision.gate is not None:
            await self.emit(ev.GATE_EVALUATED, decision.gate)

    async def _files_for_gate(self) -> list[str]:
        return await self.changed_files() if self._agent.deps.gate.reads_files else []

    async def changed_files(self) -> list[str]:
        """Files that differ from the session's start commit, committed or not."""
        return await self._agent.repo.changed_since(self._agent.spec.start_commit)
