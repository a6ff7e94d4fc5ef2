"""Recording an event finishes even when the recorder is cancelled mid-write."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from keen.events import RecordingSink, SessionRef
from keen.events.types import Event
from keen.store import Database, SqlEventStore


class SlowStore(SqlEventStore):
    """A real SQLite store whose writes take long enough to be cancelled in the middle."""

    async def record(self, ref: SessionRef, type: str, data: dict[str, Any], writes: Any = ()) -> Event:
        await asyncio.sleep(0.2)
        return await super().record(ref, type, data, writes)


async def test_cancelling_during_a_write_keeps_seq_and_store_in_step(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path}/k.db")
    await db.upgrade()
    store = SlowStore(db)
    sink = RecordingSink(store)
    ref = SessionRef("s" * 32, "s" * 32)
    await sink.emit(ref, "session.created", {"vision": "v", "workspace": "/w", "model": "m"})
    task = asyncio.ensure_future(sink.emit(ref, "session.started", {}))
    await asyncio.sleep(0.05)
    task.cancel()
    try:
        await task
        raise AssertionError("the cancellation was swallowed")
    except asyncio.CancelledError:
        pass
    # The interrupted write landed, and the next event gets the next seq (no duplicate, no gap).
    after = await sink.emit(ref, "session.finished", {"status": "cancelled"})
    assert after.seq == 3
    assert [e.seq for e in await store.events(ref.root_session_id)] == [1, 2, 3]
    await db.dispose()
