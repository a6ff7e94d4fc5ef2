"""The PostgreSQL bus on the PostgreSQL running here: events another process records reach a
subscription exactly once and in seq order, with its deltas (long ones in pieces); what is
committed while the listener's connection is down arrives after it reconnects, with no gap;
one table read serves every subscription of a root and a whole batch of notifications."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from collections.abc import AsyncIterator
from dataclasses import dataclass

import psycopg
import pytest
from sqlalchemy import Connection
from sqlalchemy.engine import make_url

from keen.events import Event, LiveDelta, RecordingSink, SessionRef, Subscription
from keen.events.bus import Item
from keen.events.pg_bus import APPLICATION_NAME, DELTA_PIECE_CHARS, PgBus, libpq_url
from keen.events.types import utcnow
from keen.store import Database, SqlEventStore
from pgdb import PG_ADMIN, pg_url

__all__ = ["pg_url"]
ROOT = SessionRef("a" * 32, "a" * 32)
WAIT = 30.0  # seconds an item may take before the test fails (it normally takes milliseconds)


@dataclass
class Stored:
    db: Database
    store: SqlEventStore
    sink: RecordingSink  # records as another process would: its bus is not the one under test


@pytest.fixture
async def stored(pg_url: str) -> AsyncIterator[Stored]:
    """A migrated database with the root session ROOT created (seq 1)."""
    db = Database(pg_url)
    await db.upgrade()
    store = SqlEventStore(db)
    sink = RecordingSink(store)
    await sink.emit(ROOT, "session.created", {"vision": "v", "workspace": "/w", "model": "m"})
    yield Stored(db, store, sink)
    await db.dispose()


@pytest.fixture
async def bus(stored: Stored) -> AsyncIterator[PgBus]:
    bus = PgBus(libpq_url(stored.db.url), stored.store)
    await bus.start()
    yield bus
    await bus.close()


async def take(sub: Subscription, count: int) -> list[Item]:
    items = []
    for _ in range(count):
        item = await sub.next(WAIT)
        assert item is not None, f"only {len(items)} of {count} items came"
        items.append(item)
    return items


async def take_events(sub: Subscription, count: int) -> list[Event]:
    items = await take(sub, count)
    assert all(isinstance(i, Event) for i in items), items
    return [i for i in items if isinstance(i, Event)]


WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from keen.events import RecordingSink, SessionRef
    from keen.events.pg_bus import PgBus, libpq_url
    from keen.store import Database, SqlEventStore

    async def main(url, count, long_text):
        db = Database(url)
        store = SqlEventStore(db)
        bus = PgBus(libpq_url(db.url), store)
        await bus.start()
        sink = RecordingSink(store, bus)
        ref = SessionRef("a" * 32, "a" * 32)
        for i in range(count):
            sink.delta(ref, "text", f"chunk {i}")
            await sink.emit(ref, "agent.nudged", {"reason": "load", "i": i})
        sink.delta(ref, "thinking", long_text)
        await bus.close()
        await db.dispose()

    asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
    """
)


async def test_events_and_deltas_of_another_process_reach_a_subscription_once_in_order(
    stored: Stored, bus: PgBus
) -> None:
    count = 200
    long_text = "é—x" * DELTA_PIECE_CHARS  # 3,000 characters, 6,000 bytes: sent in three pieces
    sub = bus.subscribe(ROOT.root_session_id)
    writer = await asyncio.create_subprocess_exec(
        sys.executable, "-c", WRITER, stored.db.url, str(count), long_text
    )
    events: list[Event] = []
    deltas: list[LiveDelta] = []
    while len(events) < count or "".join(d.text for d in deltas if d.kind == "thinking") != long_text:
        item = await sub.next(WAIT)
        missing = sorted(set(range(2, count + 2)) - {e.seq for e in events})
        assert item is not None, f"{len(deltas)} deltas came; events missing: {missing}"
        (events if isinstance(item, Event) else deltas).append(item)  # type: ignore[arg-type]
    assert await writer.wait() == 0
    assert [e.seq for e in events] == list(range(2, count + 2))
    assert [e.data["i"] for e in events] == list(range(count))
    assert [d.text for d in deltas if d.kind == "text"] == [f"chunk {i}" for i in range(count)]
    assert [len(d.text) for d in deltas if d.kind == "thinking"] == [DELTA_PIECE_CHARS] * 3
    assert bus.deltas_dropped == 0


async def test_events_committed_while_the_listener_is_down_arrive_after_it_reconnects(
    stored: Stored, bus: PgBus
) -> None:
    sub = bus.subscribe(ROOT.root_session_id)
    await stored.sink.emit(ROOT, "agent.nudged", {"i": 0})
    assert [e.seq for e in await take_events(sub, 1)] == [2]
    name = make_url(stored.db.url).database
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        # No new connection gets in (the store's pooled one stays), then the listener is ended:
        # what is committed now notifies nobody, the bus can only find it in the table.
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        ended = admin.execute(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 5000)) FROM pg_stat_activity "
            "WHERE datname = %s AND application_name = %s",
            (name, APPLICATION_NAME),
        ).fetchone()
        assert ended is not None and ended[0] >= 1
        for i in range(1, 11):
            await stored.sink.emit(ROOT, "agent.nudged", {"i": i})
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
    missed = await take_events(sub, 10)
    assert [e.seq for e in missed] == list(range(3, 13))
    await stored.sink.emit(ROOT, "agent.nudged", {"i": 11})  # and live again, after the catch-up
    assert [e.seq for e in await take_events(sub, 1)] == [13]
    assert bus.reconnects >= 1
    assert await sub.next(0.2) is None  # nothing twice


class GatedSource:
    """The store, counting its reads; the first one waits for `gate` (so notifications pile up)."""

    def __init__(self, store: SqlEventStore) -> None:
        self.store = store
        self.reads = 0
        self.gate = asyncio.Event()

    async def events(self, root_session_id: str, *, after_seq: int = 0) -> list[Event]:
        self.reads += 1
        await self.gate.wait()
        return await self.store.events(root_session_id, after_seq=after_seq)


async def test_one_table_read_serves_every_subscription_and_a_batch_of_notifications(
    stored: Stored,
) -> None:
    source = GatedSource(stored.store)
    reader = PgBus(libpq_url(stored.db.url), source)
    writer = PgBus(libpq_url(stored.db.url), stored.store)  # another process's bus, for the barrier
    await reader.start()
    await writer.start()
    try:
        subs = [reader.subscribe(ROOT.root_session_id) for _ in range(2)]
        sink = RecordingSink(stored.store, writer)
        for i in range(50):
            await sink.emit(ROOT, "agent.nudged", {"i": i})
        # NOTIFY delivers in commit order: once this delta is here, so are the 50 notifications,
        # while the first read (for seq 2) still waits at the gate.
        sink.delta(ROOT, "text", "barrier")
        for sub in subs:
            first = await sub.next(WAIT)
            assert isinstance(first, LiveDelta) and first.text == "barrier"
        assert source.reads == 1
        source.gate.set()
        for sub in subs:
            assert [e.seq for e in await take_events(sub, 50)] == list(range(2, 52))
        assert source.reads == 1 and reader.reads == 1
        await sink.emit(ROOT, "agent.nudged", {"i": 50})
        for sub in subs:
            assert [e.seq for e in await take_events(sub, 1)] == [52]
        assert source.reads == 2
    finally:
        await writer.close()
        await reader.close()


async def test_a_local_publish_is_offered_at_once_and_only_once(stored: Stored, bus: PgBus) -> None:
    sub = bus.subscribe(ROOT.root_session_id)
    await stored.sink.emit(ROOT, "agent.nudged", {"i": 0})  # elsewhere: via its notification
    assert [e.seq for e in await take_events(sub, 1)] == [2]
    local = RecordingSink(stored.store, bus)  # a run in this process
    for i in range(1, 6):
        event = await local.emit(ROOT, "agent.nudged", {"i": i})
        assert sub.queue.get_nowait() == event  # there when emit returns, before any round trip
    await stored.sink.emit(ROOT, "agent.nudged", {"i": 6})
    # The local events' notifications (read or not, by who came first) offered nothing again.
    assert [e.seq for e in await take_events(sub, 1)] == [8]
    assert await sub.next(0.2) is None


async def test_the_first_notifications_coming_together_lose_none_of_their_events(
    stored: Stored, bus: PgBus
) -> None:
    sub = bus.subscribe(ROOT.root_session_id)

    def three_events(conn: Connection) -> None:
        # One commit: its three notifications come in one packet, all seen before any read.
        for i in range(3):
            stored.store._record(conn, ROOT, "agent.nudged", utcnow(), {"i": i}, ())

    await stored.db.write(three_events)
    assert [e.seq for e in await take_events(sub, 3)] == [2, 3, 4]
