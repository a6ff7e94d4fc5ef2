"""Following a tree's stream from a seq: the stored events first, then live ones, with no gap
and no duplicate (a watcher that reconnects, or one that was dropped for being slow)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from keen.events.bus import Bus, Item
from keen.events.types import Event


class EventSource(Protocol):
    async def events(self, root_session_id: str, *, after_seq: int = 0) -> list[Event]: ...


async def follow(bus: Bus, source: EventSource, root_id: str, after_seq: int = 0) -> AsyncIterator[Item]:
    """Every event of `root_id` after `after_seq`, then what is published live, in seq order.

    The live subscription opens before the store is read, so an event recorded in between is
    seen once (from the store) and its live copy skipped. Deltas pass through as they come.
    """
    live = bus.subscribe(root_id)
    last = after_seq
    try:
        for event in await source.events(root_id, after_seq=after_seq):
            last = event.seq
            yield event
        async for item in live:
            if isinstance(item, Event):
                if item.seq <= last:
                    continue
                last = item.seq
            yield item
        if live.overflowed:  # dropped for falling behind: catch up from the store
            async for item in follow(bus, source, root_id, last):
                yield item
    finally:
        live.close()
