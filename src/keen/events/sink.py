"""EventSink: the agent's only way to record what happened.

`emit` stores the event durably (the store assigns the root's next gap-free `seq` inside its
transaction and commits before `emit` returns, so every event is on disk before the next model
call) and then publishes it to live subscribers. Deltas are published only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from keen.aio import uncancellable
from keen.events.bus import Bus, EventBus, LiveDelta
from keen.events.types import EVENT_TYPES, Event, SessionRef, json_safe

# Work a store runs in the transaction that records an event (typed loosely: events/ knows no
# database; the store passes its connection).
TransactionalWrite = Callable[[Any], None]


class EventStore(Protocol):
    async def record(
        self, ref: SessionRef, type: str, data: dict[str, Any], writes: Sequence[TransactionalWrite] = ()
    ) -> Event: ...


class EventSink(Protocol):
    async def emit(
        self, ref: SessionRef, type: str, data: dict[str, Any], writes: Sequence[TransactionalWrite] = ()
    ) -> Event: ...

    def delta(self, ref: SessionRef, kind: str, text: str) -> None: ...


class RecordingSink:
    """Stores then publishes. Any number of sinks, in any number of processes, may write to
    one tree: the store hands out its seq."""

    def __init__(self, store: EventStore, bus: Bus | None = None) -> None:
        self.store = store
        self.bus: Bus = bus or EventBus()

    async def emit(
        self, ref: SessionRef, type: str, data: dict[str, Any], writes: Sequence[TransactionalWrite] = ()
    ) -> Event:
        if type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {type!r}")
        return await uncancellable(self._record(ref, type, data, writes))

    async def _record(
        self, ref: SessionRef, type: str, data: dict[str, Any], writes: Sequence[TransactionalWrite]
    ) -> Event:
        event = await self.store.record(ref, type, json_safe(data), writes)
        await self.bus.publish(event)
        return event

    def delta(self, ref: SessionRef, kind: str, text: str) -> None:
        self.bus.offer(LiveDelta(ref.session_id, ref.root_session_id, kind, text))


class ObservedSink:
    """A sink that shows every event it recorded to `observe` first (the tree's projection is
    fed from what was stored, in the order it was stored)."""

    def __init__(self, sink: EventSink, observe: Callable[[Event], None]) -> None:
        self.inner = sink
        self.observe = observe

    async def emit(
        self, ref: SessionRef, type: str, data: dict[str, Any], writes: Sequence[TransactionalWrite] = ()
    ) -> Event:
        event = await self.inner.emit(ref, type, data, writes)
        self.observe(event)
        return event

    def delta(self, ref: SessionRef, kind: str, text: str) -> None:
        self.inner.delta(ref, kind, text)
