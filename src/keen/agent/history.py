"""The conversation as a projection of the session's events.

The agent never edits its conversation directly: it emits an event and applies it here. A
resumed session applies the stored events the same way, so it rebuilds exactly the conversation
the model saw and continues from the next call.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from keen.agent import context
from keen.events import types as ev
from keen.events.types import Event
from keen.llm.base import Message, Part, TextPart, ToolResultPart, ToolUsePart, reply_message
from keen.tools.registry import ToolResult

# Commands that run a test suite; seeing one counts as "tests were run" for the gates.
_TEST_COMMAND = re.compile(
    r"\b(pytest|unittest|tox|nox|npm (run )?test|yarn test|pnpm test|jest|vitest"
    r"|go test|cargo test|make test)\b"
)


def tool_result_content(data: dict[str, Any]) -> str:
    """The text a `tool.finished` event stands for in the conversation."""
    return ToolResult(ok=bool(data["ok"]), output=data.get("output"), error=data.get("error")).content()


@dataclass
class History:
    messages: list[Message] = field(default_factory=list)
    pending: list[Part] = field(default_factory=list)  # the user turn being assembled
    phase: str | None = None
    iterations: int = 0
    model_state: dict[str, Any] | None = None
    last_calls: list[ToolUsePart] = field(default_factory=list)
    started_calls: set[str] = field(default_factory=set)
    finished_calls: set[str] = field(default_factory=set)
    no_tool_replies: int = 0
    refusals: int = 0
    completed: dict[str, Any] | None = None  # the accepted report_complete input
    chars: int = 0  # size of `messages`, kept as they change: estimating must not walk them all
    # Facts for the quality gates, from what the session really did.
    commands_run: int = 0
    tests_run: bool = False
    tool_counts: dict[str, int] = field(default_factory=dict)
    children_summoned: int = 0
    validation: dict[str, Any] | None = None

    def apply(self, event: Event) -> None:
        handler = _HANDLERS.get(event.type)
        if handler is not None:
            handler(self, event.data)

    def request_messages(self, messages: list[Message] | None = None) -> list[Message]:
        """The conversation to send: `messages` (default: the history) plus the pending turn."""
        base = self.messages if messages is None else messages
        if not self.pending:
            return list(base)
        return [*base, Message(role="user", parts=_user_order(self.pending))]

    def facts(self) -> dict[str, Any]:
        return {
            "commands_run": self.commands_run,
            "tests_run": self.tests_run,
            "validation": self.validation,
            "tool_counts": dict(self.tool_counts),
            "children_summoned": self.children_summoned,
        }

    def unfinished_calls(self) -> list[ToolUsePart]:
        return [c for c in self.last_calls if c.id not in self.finished_calls]

    def _append(self, message: Message) -> None:
        self.messages.append(message)
        self.chars += message.chars()

    def _replace(self, messages: list[Message]) -> None:
        self.messages = messages
        self.chars = sum(m.chars() for m in messages)

    # -- handlers ---------------------------------------------------------------------------

    def _started(self, data: dict[str, Any]) -> None:
        if data.get("first_message"):  # a conversation starts with no message of its own
            self.pending.append(TextPart(text=data["first_message"]))
        self.phase = data.get("phase", self.phase)

    def _responded(self, data: dict[str, Any]) -> None:
        if data.get("side_call"):
            return  # a call outside the conversation (vision synthesis): costed, not a turn
        if self.pending:
            self._append(Message(role="user", parts=_user_order(self.pending)))
            self.pending = []
        message = reply_message(data)
        self._append(message)
        parts = message.parts
        self.iterations += 1
        self.model_state = data.get("model_state")
        self.last_calls = [p for p in parts if isinstance(p, ToolUsePart)]
        self.started_calls = set()
        self.finished_calls = set()
        # A server-side tool that paused the turn (web search) is work in progress, not idleness.
        if self.last_calls or data.get("stop_reason") == "pause_turn":
            self.no_tool_replies = 0
        else:
            self.no_tool_replies += 1

    def _tool_started(self, data: dict[str, Any]) -> None:
        self.started_calls.add(data["call_id"])
        name = str(data.get("name"))
        self.tool_counts[name] = self.tool_counts.get(name, 0) + 1
        if name == "run_command":
            self.commands_run += 1
            command = str((data.get("input") or {}).get("command", ""))
            self.tests_run = self.tests_run or bool(_TEST_COMMAND.search(command))

    def _tool_finished(self, data: dict[str, Any]) -> None:
        self.finished_calls.add(data["call_id"])
        self.pending.append(
            ToolResultPart(
                tool_use_id=data["call_id"], content=tool_result_content(data), is_error=not data["ok"]
            )
        )
        output = data.get("output")
        if (
            data.get("name") == "report_complete"
            and data["ok"]
            and isinstance(output, dict)
            and output.get("accepted")
        ):
            self.completed = output

    def _note(self, data: dict[str, Any]) -> None:
        if data.get("message"):
            self.pending.append(TextPart(text=data["message"]))

    def _phase(self, data: dict[str, Any]) -> None:
        self.phase = data["to"]
        if data.get("note"):
            self.pending.append(TextPart(text=data["note"]))

    def _blocked(self, data: dict[str, Any]) -> None:
        self.refusals += 1

    def _condensed(self, data: dict[str, Any]) -> None:
        if data["method"] == "shorten":
            self._replace(context.shorten_tool_results(self.messages, data["keep_last"], data["max_chars"]))
        else:
            self._replace(context.replace_with_summary(self.messages, data["keep_from"], data["summary"]))

    def _validated(self, data: dict[str, Any]) -> None:
        self.validation = data

    def _spawned(self, data: dict[str, Any]) -> None:
        self.children_summoned += 1

    def _conversation(self, data: dict[str, Any]) -> None:
        if data.get("role") == "user":
            self.pending.append(TextPart(text=data["text"]))

    def _cleared(self, data: dict[str, Any]) -> None:
        self._replace([])
        self.pending = []
        self.last_calls = []


def _user_order(parts: list[Part]) -> list[Part]:
    """Tool results first, then text: providers require results to lead the user turn."""
    results = [p for p in parts if isinstance(p, ToolResultPart)]
    return [*results, *(p for p in parts if not isinstance(p, ToolResultPart))]


_HANDLERS = {
    ev.SESSION_STARTED: History._started,
    ev.MODEL_RESPONDED: History._responded,
    ev.TOOL_STARTED: History._tool_started,
    ev.TOOL_FINISHED: History._tool_finished,
    ev.AGENT_NUDGED: History._note,
    ev.PHASE_CHANGED: History._phase,
    ev.COMPLETION_BLOCKED: History._blocked,
    ev.CONTEXT_CONDENSED: History._condensed,
    ev.CONVERSATION_MESSAGE: History._conversation,
    ev.CONVERSATION_CLEARED: History._cleared,
    ev.VALIDATION_FINISHED: History._validated,
    ev.CHILD_SPAWNED: History._spawned,
}
