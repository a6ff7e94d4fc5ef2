"""Following a tree's stream from a seq: the stored events first, then live ones, with no gap
and no duplicate (a watcher that reconnects, or one that was dropped for being slow).

This is what every live view reads through (the API's SSE and WebSocket streams): the bus says
what is new, the store is the truth. An event the bus did not carry (one written by another
process, which an in-process bus never sees) is read from the store when the next live event
shows a gap, or when `poll_seconds` pass with nothing live; a bus across processes (PostgreSQL
LISTEN/NOTIFY) makes that polling a rare fallback, with no change here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from keen.events import types as ev
from keen.events.bus import Bus, Item, Subscription
from keen.events.types import Event


class EventSource(Protocol):
    async def events(self, root_session_id: str, *, after_seq: int = 0) -> list[Event]: ...


def ends_stream(event: Event) -> bool:
    """The root's own `session.finished`: nothing is recorded in its stream after it."""
    return event.type == ev.SESSION_FINISHED and event.session_id == event.root_session_id


async def follow(
    bus: Bus,
    source: EventSource,
    root_id: str,
    after_seq: int = 0,
    *,
    until_finished: bool = False,
    poll_seconds: float | None = None,
) -> AsyncIterator[Item]:
    """Every event of `root_id` after `after_seq`, then what is published live, in seq order
    (with `until_finished`, up to the root's `session.finished`).

    The live subscription opens before the store is read, so an event recorded in between is
    seen once (from the store) and its live copy skipped. Deltas pass through as they come.
    """
    state = _Position(after_seq)
    live = bus.subscribe(root_id)
    try:
        while True:
            async for event in state.stored(source, root_id):
                yield event
                if until_finished and ends_stream(event):
                    return
            while True:
                try:
                    item = await live.next(poll_seconds)
                except StopAsyncIteration:
                    break
                if item is None or (isinstance(item, Event) and item.seq > state.last + 1):
                    # Idle, or a gap: whatever the bus did not carry is in the store.
                    async for event in state.stored(source, root_id):
                        yield event
                        if until_finished and ends_stream(event):
                            return
                    continue
                if isinstance(item, Event):
                    if item.seq <= state.last:
                        continue
                    state.last = item.seq
                yield item
                if until_finished and isinstance(item, Event) and ends_stream(item):
                    return
            if not live.overflowed:
                return
            # Dropped for falling behind: subscribe again, then catch up from the store.
            live = _resubscribe(bus, live, root_id)
    finally:
        live.close()


class _Position:
    def __init__(self, last: int) -> None:
        self.last = last

    async def stored(self, source: EventSource, root_id: str) -> AsyncIterator[Event]:
        for event in await source.events(root_id, after_seq=self.last):
            if event.seq > self.last:
                self.last = event.seq
                yield event


def _resubscribe(bus: Bus, old: Subscription, root_id: str) -> Subscription:
    old.close()
    return bus.subscribe(root_id)
