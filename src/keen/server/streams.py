"""A tree's live stream as the API's streams send it: `events.stream.follow` (stored events,
then live ones, no gap and no duplicate) up to the root's end, with a heartbeat whenever it has
been quiet for a while."""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import Final

import orjson

from keen.events.bus import Bus, Item
from keen.events.stream import EventSource, follow
from keen.events.types import Event

# How often an idle stream looks in the store for events the bus did not carry (written by
# another process).
STORE_POLL_SECONDS = 5.0


class _Heartbeat:
    def __repr__(self) -> str:
        return "HEARTBEAT"


HEARTBEAT: Final = _Heartbeat()


async def live_stream(
    bus: Bus, source: EventSource, root_id: str, after_seq: int, heartbeat_seconds: float
) -> AsyncIterator[Item | _Heartbeat]:
    """Every item of the tree after `after_seq` until its root's `session.finished`, and
    `HEARTBEAT` after each `heartbeat_seconds` without one."""
    items = follow(bus, source, root_id, after_seq, until_finished=True, poll_seconds=STORE_POLL_SECONDS)
    async for item in with_heartbeats(items, heartbeat_seconds):
        yield item


async def with_heartbeats(source: AsyncIterator[Item], every: float) -> AsyncIterator[Item | _Heartbeat]:
    """`source`'s items, and `HEARTBEAT` whenever `every` seconds pass without one. The source
    runs one item ahead of the reader at most, so a slow reader slows it (and `follow` then
    catches up from the store)."""
    queue: asyncio.Queue[Item] = asyncio.Queue(maxsize=1)

    async def pump() -> None:
        async for item in source:
            await queue.put(item)

    task = asyncio.create_task(pump())
    try:
        while True:
            getter = asyncio.ensure_future(queue.get())
            await asyncio.wait({getter, task}, timeout=every, return_when=asyncio.FIRST_COMPLETED)
            if not getter.done():
                getter.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await getter
            if getter.done() and not getter.cancelled():
                yield getter.result()
            elif task.done():
                while not queue.empty():
                    yield queue.get_nowait()
                task.result()  # its error, if it failed
                return
            else:
                yield HEARTBEAT
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        with contextlib.suppress(Exception):
            await source.aclose()  # type: ignore[attr-defined]


ENCODED_KEPT = 4096  # events of the runs being watched, kept encoded
_ENCODED: OrderedDict[tuple[str, int], str] = OrderedDict()


def encoded_event(event: Event) -> str:
    """The event as JSON, encoded once in this process for every stream (SSE or WebSocket) that
    sends it: a run watched by hundreds of clients is encoded once per event, not per client."""
    key = (event.root_session_id, event.seq)
    text = _ENCODED.get(key)
    if text is None:
        text = orjson.dumps(event.to_dict(), default=str).decode()
        _ENCODED[key] = text
        if len(_ENCODED) > ENCODED_KEPT:
            _ENCODED.popitem(last=False)
    return text
