"""The event envelope and the event types of SPEC section 5."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from keen.text import valid_text

SESSION_CREATED = "session.created"
SESSION_STARTED = "session.started"
SESSION_RESUMED = "session.resumed"
SESSION_FINISHED = "session.finished"
PHASE_CHANGED = "phase.changed"
MODEL_RESPONDED = "model.responded"
MODEL_RETRYING = "model.retrying"  # a model call failed and is tried again after a delay
TOOL_STARTED = "tool.started"
TOOL_FINISHED = "tool.finished"
CHILD_SPAWNED = "child.spawned"
CHILD_FINISHED = "child.finished"
GIT_COMMITTED = "git.committed"
GIT_MERGED = "git.merged"
VALIDATION_FINISHED = "validation.finished"
GATE_EVALUATED = "gate.evaluated"
COMPLETION_BLOCKED = "completion.blocked"
CONTEXT_CONDENSED = "context.condensed"
AGENT_NUDGED = "agent.nudged"
BUDGET_WARNING = "budget.warning"
CREDITS_RESERVED = "credits.reserved"
CREDITS_CHARGED = "credits.charged"
CREDITS_RELEASED = "credits.released"
CONVERSATION_MESSAGE = "conversation.message"
CONVERSATION_CLEARED = "conversation.cleared"
CONVERSATION_VISION = "conversation.vision"

EVENT_TYPES = frozenset(
    {
        SESSION_CREATED,
        SESSION_STARTED,
        SESSION_RESUMED,
        SESSION_FINISHED,
        PHASE_CHANGED,
        MODEL_RESPONDED,
        MODEL_RETRYING,
        TOOL_STARTED,
        TOOL_FINISHED,
        CHILD_SPAWNED,
        CHILD_FINISHED,
        GIT_COMMITTED,
        GIT_MERGED,
        VALIDATION_FINISHED,
        GATE_EVALUATED,
        COMPLETION_BLOCKED,
        CONTEXT_CONDENSED,
        AGENT_NUDGED,
        BUDGET_WARNING,
        CREDITS_RESERVED,
        CREDITS_CHARGED,
        CREDITS_RELEASED,
        CONVERSATION_MESSAGE,
        CONVERSATION_CLEARED,
        CONVERSATION_VISION,
    }
)

ROOT_BRANCH = "main"  # the tree name of every root agent (its children are summon-A, …)
CONVERSATION_BRANCH = "converse"  # the conversation agent's tree name (and its scripted list)

# Final statuses of a session (SPEC 3.1).
TERMINAL_STATUSES = frozenset(
    {
        "completed",
        "max_iterations",
        "budget_exhausted",
        "insufficient_credits",
        "stuck",
        "failed",
        "cancelled",
    }
)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class SessionRef:
    """Who an event belongs to: the agent's session, its root (the stream) and its parent."""

    session_id: str
    root_session_id: str
    parent_session_id: str | None = None


@dataclass(frozen=True)
class Event:
    seq: int
    session_id: str
    root_session_id: str
    parent_session_id: str | None
    type: str
    ts: datetime
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "session_id": self.session_id,
            "root_session_id": self.root_session_id,
            "parent_session_id": self.parent_session_id,
            "type": self.type,
            "ts": self.ts.isoformat(),
            "data": self.data,
        }


MAX_DATA_DEPTH = 64  # event data nests a few levels; deeper came from a model and is cut
DEPTH_MARKER = f"[... nested deeper than {MAX_DATA_DEPTH} levels, cut by keen ...]"


def json_safe(value: Any, depth: int = 0) -> Any:
    """Event data as plain JSON that every reader can write out again.

    Money stays exact as a decimal string; text is valid Unicode (a lone surrogate becomes
    U+FFFD); nesting is bounded, so neither storing nor reading an event can overflow a stack.
    """
    if isinstance(value, str):
        return valid_text(value)
    if depth >= MAX_DATA_DEPTH and isinstance(value, dict | list | tuple | set | frozenset):
        return DEPTH_MARKER
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dict):
        return {valid_text(str(k)): json_safe(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_safe(v, depth + 1) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value
