"""The validating completion gate: the agent's `CompletionGate` backed by the validation engine
and gates (it joins agent/ and validation/, so it lives with the wiring in runner/).

`report_complete` runs the COMPLETE gate on the agent's own workspace (a child's worktree for a
child); leaving any other phase evaluates that phase's advisory gate from the session's facts.
"""

from __future__ import annotations

from typing import Any

from keen.agent.completion import CompletionRequest, GateDecision, PhaseRequest
from keen.validation.gates import GateMode, SessionFacts, evaluate_gate, recovery_message, run_complete_gate
from keen.validation.report import Timeouts

REPORT_FINDINGS = 20  # findings kept per category in the report attached to a failed session


class ValidationGate:
    reads_files = True

    def __init__(self, mode: GateMode, timeouts: Timeouts | None = None) -> None:
        self.mode = mode
        self.timeouts = timeouts

    async def evaluate(self, request: CompletionRequest) -> GateDecision:
        facts = session_facts(request.phase, request.files_changed, request.facts)
        result, report = await run_complete_gate(request.workspace, facts, self.mode, timeouts=self.timeouts)
        message = (
            "" if result.passed else recovery_message(result, report, request.attempt, request.max_attempts)
        )
        return GateDecision(
            passed=result.passed,
            reasons=result.reasons,
            recovery_message=message,
            gate=result.to_dict(),
            report=report.to_dict(max_findings=REPORT_FINDINGS) if report else None,
            validation_event=report.event_data() if report else None,
        )

    async def evaluate_phase(self, request: PhaseRequest) -> dict[str, Any] | None:
        if request.left == "COMPLETE":
            return None  # the COMPLETE gate is evaluated by report_complete, with real validation
        facts = session_facts(request.left, request.files_changed, request.facts)
        return evaluate_gate(request.left, facts, self.mode).to_dict()


def session_facts(phase: str, files_changed: list[str], facts: dict[str, Any]) -> SessionFacts:
    return SessionFacts(
        phase=phase,
        files_changed=files_changed,
        tests_run=bool(facts.get("tests_run")),
        commands_run=int(facts.get("commands_run", 0)),
        tool_counts=dict(facts.get("tool_counts", {})),
        children_summoned=int(facts.get("children_summoned", 0)),
    )
