"""The completion-gate seam: what decides whether `report_complete` is accepted.

The validation package provides the real gate; `AcceptAllGate` is the default when gates are off.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol


@dataclass
class CompletionRequest:
    workspace: Path
    summary: str
    success: bool
    files_changed: list[str]
    phase: str
    attempt: int  # 1 for the first report_complete of this agent
    max_attempts: int = 3  # refusals after which the session ends as failed
    facts: dict[str, Any] = field(default_factory=dict)


@dataclass
class GateDecision:
    passed: bool
    reasons: list[str] = field(default_factory=list)
    recovery_message: str = ""
    gate: dict[str, Any] | None = None  # the gate evaluation, stored in the events
    report: dict[str, Any] | None = None  # the validation report behind the decision
    validation_event: dict[str, Any] | None = None  # its `validation.finished` event data


@dataclass
class PhaseRequest:
    workspace: Path
    left: str  # the phase being left; its gate is evaluated
    entered: str
    files_changed: list[str]
    facts: dict[str, Any] = field(default_factory=dict)


class CompletionGate(Protocol):
    # Whether its decisions read `files_changed` (when not, nobody asks git for them).
    reads_files: bool

    async def evaluate(self, request: CompletionRequest) -> GateDecision:
        """Decide on a `report_complete`."""
        ...

    async def evaluate_phase(self, request: PhaseRequest) -> dict[str, Any] | None:
        """Advisory checks of the phase being left (None when there is nothing to check)."""
        ...


class AcceptAllGate:
    """Accepts every completion and checks no phase (`--gates off`, and the default until a
    validating gate is configured)."""

    reads_files = False

    async def evaluate(self, request: CompletionRequest) -> GateDecision:
        return GateDecision(passed=True)

    async def evaluate_phase(self, request: PhaseRequest) -> dict[str, Any] | None:
        return None
