"""How an agent's session ends: one exception per final status (SPEC 3.1).

The loop raises these (or a tool does, through `AgentControl`), and `Agent.run` turns the one
it catches into the `session.finished` event. Errors from elsewhere map to an ending in
`ending_for`, the one table of which error ends a session how.
"""

from __future__ import annotations

from keen.agent.budget import BudgetExhausted
from keen.errors import InsufficientCredits, KeenError, ModelCallError, SessionEnd

__all__ = [
    "BudgetEnded",
    "Cancelled",
    "Completed",
    "CreditsEnded",
    "Failed",
    "IterationsEnded",
    "SessionEnd",
    "Stuck",
    "ending_for",
]


class Completed(SessionEnd):
    status = "completed"


class IterationsEnded(SessionEnd):
    status = "max_iterations"


class BudgetEnded(SessionEnd):
    status = "budget_exhausted"


class CreditsEnded(SessionEnd):
    status = "insufficient_credits"


class Stuck(SessionEnd):
    status = "stuck"


class Failed(SessionEnd):
    status = "failed"


class Cancelled(SessionEnd):
    status = "cancelled"


def ending_for(exc: KeenError) -> SessionEnd:
    """The ending an error causes when it reaches the loop."""
    if isinstance(exc, BudgetExhausted):
        return BudgetEnded(exc.message)
    if isinstance(exc, InsufficientCredits):
        return CreditsEnded(exc.message, exc.message)
    if isinstance(exc, ModelCallError):
        return Failed(f"model call failed: {exc.message}", exc.message)
    return Failed(exc.message, exc.message)
