"""Following a tree's stream from a seq: what is stored after it, then what is published live,
with nothing missed and nothing twice (a watcher that reconnects resumes by seq)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from keen.events import EventBus, RecordingSink, SessionRef
from keen.events.bus import LiveDelta
from keen.events.stream import follow
from keen.store import Database, SqlEventStore

ROOT = SessionRef("f" * 32, "f" * 32)


async def test_follow_gives_the_stored_tail_then_live_events_without_gaps_or_duplicates(
    tmp_path: Path,
) -> None:
    db = Database(f"sqlite:///{tmp_path}/k.db")
    await db.upgrade()
    store = SqlEventStore(db)
    bus = EventBus()
    sink = RecordingSink(store, bus)
    await sink.emit(ROOT, "session.created", {"vision": "v", "workspace": "/w", "model": "m"})
    for i in range(4):
        await sink.emit(ROOT, "agent.nudged", {"reason": "stored", "i": i})

    seen: list[object] = []

    async def watch() -> None:
        async for item in follow(bus, store, ROOT.root_session_id, after_seq=2):
            seen.append(item)
            if getattr(item, "type", None) == "session.finished":
                return

    watcher = asyncio.ensure_future(watch())
    await asyncio.sleep(0.05)
    sink.delta(ROOT, "text", "live words")
    await sink.emit(ROOT, "agent.nudged", {"reason": "live"})
    await sink.emit(ROOT, "session.finished", {"status": "completed"})
    await asyncio.wait_for(watcher, timeout=5)
    await db.dispose()

    seqs = [item.seq for item in seen if not isinstance(item, LiveDelta)]
    assert seqs == [3, 4, 5, 6, 7]
    assert [item.text for item in seen if isinstance(item, LiveDelta)] == ["live words"]
    assert bus.subscriber_count() == 0  # the live subscription is closed when following ends
