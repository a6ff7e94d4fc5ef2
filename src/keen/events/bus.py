"""Publish/subscribe of a session tree's events and live deltas: the `Bus` protocol and its
in-process implementation.

Stored events and ephemeral deltas (streamed text/thinking, never stored) reach subscribers in
the order they were published. A subscriber is either a callback (the CLI view: no latency, no
queue) or an async queue (WebSocket/SSE clients, which must not block the agent: a full queue
drops the subscriber, which then resumes from the store by `seq`, see `events.stream.follow`).
A bus across processes (PostgreSQL LISTEN/NOTIFY) implements the same protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from keen.events.types import Event

WAITING = "waiting"  # the live-delta kind published as a model request goes out


@dataclass(frozen=True)
class LiveDelta:
    session_id: str
    root_session_id: str
    # "text" | "thinking": streamed reply; "waiting": a model request was just sent (text empty)
    kind: str
    text: str


Item = Event | LiveDelta
Callback = Callable[[Item], None]


class Bus(Protocol):
    async def publish(self, item: Item) -> None:
        """Deliver a stored event (or a delta) to every subscriber of its root, in order."""
        ...

    def offer(self, item: Item) -> None:
        """Deliver a delta without waiting; a bus may drop it (deltas are never stored)."""
        ...

    def add_callback(self, callback: Callback, root_id: str | None = None) -> Callable[[], None]: ...

    def subscribe(self, root_id: str | None = None, maxsize: int = 10_000) -> Subscription: ...


class Subscription:
    def __init__(self, bus: EventBus, root_id: str | None, maxsize: int) -> None:
        self._bus = bus
        self.root_id = root_id
        self.queue: asyncio.Queue[Item | None] = asyncio.Queue(maxsize=maxsize)
        self.overflowed = False
        self.closed = False

    def offer(self, item: Item) -> None:
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.overflowed = True
            self.close()

    def close(self) -> None:
        self.closed = True
        self._bus._remove(self)
        with contextlib.suppress(asyncio.QueueFull):  # a full queue ends by `closed` instead
            self.queue.put_nowait(None)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Item:
        item = await self.next()
        assert item is not None
        return item

    async def next(self, timeout: float | None = None) -> Item | None:
        """The next item, or None when `timeout` seconds pass without one; raises
        `StopAsyncIteration` once the subscription is closed and drained."""
        if self.closed and self.queue.empty():
            raise StopAsyncIteration
        try:
            item = await asyncio.wait_for(self.queue.get(), timeout) if timeout else await self.queue.get()
        except TimeoutError:
            return None
        if item is None:
            raise StopAsyncIteration
        return item


class EventBus:
    """The in-process bus: one process runs the session and every watcher. Subscriptions are
    kept by root, so publishing to one tree costs only that tree's subscribers."""

    def __init__(self) -> None:
        self._callbacks: list[tuple[str | None, Callback]] = []
        self._subs: dict[str | None, list[Subscription]] = {}

    def add_callback(self, callback: Callback, root_id: str | None = None) -> Callable[[], None]:
        entry = (root_id, callback)
        self._callbacks.append(entry)
        return lambda: self._callbacks.remove(entry) if entry in self._callbacks else None

    def subscribe(self, root_id: str | None = None, maxsize: int = 10_000) -> Subscription:
        sub = Subscription(self, root_id, maxsize)
        self._subs.setdefault(root_id, []).append(sub)
        return sub

    async def publish(self, item: Item) -> None:
        self.offer(item)

    def offer(self, item: Item) -> None:
        root = item.root_session_id
        for wanted, callback in list(self._callbacks):
            if wanted is None or wanted == root:
                callback(item)
        for key in (None, root):
            for sub in list(self._subs.get(key, ())):
                sub.offer(item)

    def _remove(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.root_id)
        if subs is not None and sub in subs:
            subs.remove(sub)
            if not subs:
                del self._subs[sub.root_id]

    def subscriber_count(self) -> int:
        return len(self._callbacks) + sum(len(subs) for subs in self._subs.values())
