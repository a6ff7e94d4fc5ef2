"""What every agent does the same way (the tree's agents and the conversation agent): record an
event and apply it to its history, keep the conversation inside the context window, and run
one tool call between its `tool.started` and `tool.finished` events."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from keen.agent import context
from keen.agent.history import History
from keen.aio import uncancellable
from keen.errors import SessionEnd
from keen.events import types as ev
from keen.events.sink import EventSink, TransactionalWrite
from keen.events.types import Event, SessionRef
from keen.llm.base import Message, Model, ToolUsePart
from keen.tools.registry import ToolResult

Estimate = Callable[[list[Message] | None], int]


class Recorder:
    """An agent's events: each is stored, then applied to its history (and to `on_event`), so
    the conversation always matches the log, cancelled or not."""

    def __init__(
        self,
        sink: EventSink,
        ref: SessionRef,
        history: History,
        on_event: Callable[[Event], None] | None = None,
    ) -> None:
        self.sink = sink
        self.ref = ref
        self.history = history
        self.on_event = on_event

    async def emit(self, type: str, data: dict[str, Any], writes: Sequence[TransactionalWrite] = ()) -> Event:
        return await uncancellable(self._record(type, data, writes))

    async def _record(self, type: str, data: dict[str, Any], writes: Sequence[TransactionalWrite]) -> Event:
        event = await self.sink.emit(self.ref, type, data, writes)
        self.apply(event)
        return event

    def apply(self, event: Event) -> None:
        """Apply one of this agent's events (also used to rebuild it from the log)."""
        self.history.apply(event)
        if self.on_event is not None:
            self.on_event(event)

    async def condense(self, model: Model, estimate: Estimate, force: bool = False) -> None:
        await context.condense(
            self.history.messages,
            estimate=estimate,
            limit=context.CONDENSE_AT * context.usable_window(model.context_window, model.max_output_tokens),
            emit=self.emit,
            force=force,
        )

    async def run_tool(self, call: ToolUsePart, execute: Callable[[], Awaitable[ToolResult]]) -> Event:
        """Record the call, run it, record its result. A `SessionEnd` a tool raises is recorded
        as the call's result first, then ends the session."""
        await self.emit(ev.TOOL_STARTED, {"call_id": call.id, "name": call.name, "input": call.input})
        try:
            result = await execute()
        except SessionEnd as end:
            ended = ToolResult(ok=end.tool_error is None, output=end.tool_output, error=end.tool_error)
            await self.emit(ev.TOOL_FINISHED, ended.event_data(call.id, call.name))
            raise
        return await self.emit(ev.TOOL_FINISHED, result.event_data(call.id, call.name))

    async def finish_call(self, call: ToolUsePart, result: ToolResult) -> Event:
        """Record a result for a call that was not run (refused, interrupted)."""
        return await self.emit(ev.TOOL_FINISHED, result.event_data(call.id, call.name))
