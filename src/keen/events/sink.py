"""EventSink: the agent's only way to record what happened.

`emit` assigns the next gap-free `seq` of the root session, stores the event durably (the store
commits before `emit` returns, so every event is on disk before the next model call) and then
publishes it to live subscribers. Deltas are published only.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from keen.aio import uncancellable
from keen.events.bus import EventBus, LiveDelta
from keen.events.types import EVENT_TYPES, Event, SessionRef, json_safe, utcnow


class EventStore(Protocol):
    async def append(self, event: Event) -> None: ...

    async def max_seq(self, root_session_id: str) -> int: ...


class EventSink(Protocol):
    async def emit(self, ref: SessionRef, type: str, data: dict[str, Any]) -> Event: ...

    def delta(self, ref: SessionRef, kind: str, text: str) -> None: ...


class RecordingSink:
    """Stores then publishes. One instance serves a whole session tree (one `seq` counter per root)."""

    def __init__(self, store: EventStore, bus: EventBus | None = None) -> None:
        self.store = store
        self.bus = bus or EventBus()
        self._next_seq: dict[str, int] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def emit(self, ref: SessionRef, type: str, data: dict[str, Any]) -> Event:
        if type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {type!r}")
        return await uncancellable(self._record(ref, type, data))

    async def _record(self, ref: SessionRef, type: str, data: dict[str, Any]) -> Event:
        root = ref.root_session_id
        lock = self._locks.setdefault(root, asyncio.Lock())
        async with lock:
            if root not in self._next_seq:
                self._next_seq[root] = await self.store.max_seq(root) + 1
            event = Event(
                seq=self._next_seq[root],
                session_id=ref.session_id,
                root_session_id=root,
                parent_session_id=ref.parent_session_id,
                type=type,
                ts=utcnow(),
                data=json_safe(data),
            )
            await self.store.append(event)
            self._next_seq[root] = event.seq + 1
        self.bus.publish(event)
        return event

    def delta(self, ref: SessionRef, kind: str, text: str) -> None:
        self.bus.publish(LiveDelta(ref.session_id, ref.root_session_id, kind, text))
