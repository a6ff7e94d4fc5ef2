"""Two processes appending to one root session get a gap-free, duplicate-free seq (the store
assigns it inside the appending transaction), on SQLite and on PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from keen.events import RecordingSink, SessionRef
from keen.store import Database, SqlEventStore

ROOT = SessionRef("r" * 32, "r" * 32)
CHILD = SessionRef("c" * 32, "r" * 32, "r" * 32)
PER_PROCESS = 150

WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from keen.events import RecordingSink, SessionRef
    from keen.store import Database, SqlEventStore

    async def main(url, session, count):
        db = Database(url)
        sink = RecordingSink(SqlEventStore(db))
        ref = SessionRef(session, "r" * 32, None if session == "r" * 32 else "r" * 32)
        for i in range(count):
            await sink.emit(ref, "agent.nudged", {"reason": "load", "i": i})
        await db.dispose()

    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
    """
)


async def _two_writers(url: str) -> list[int]:
    db = Database(url)
    await db.upgrade()
    store = SqlEventStore(db)
    sink = RecordingSink(store)
    await sink.emit(ROOT, "session.created", {"vision": "v", "workspace": "/w", "model": "m"})
    await sink.emit(CHILD, "session.created", {"vision": "c", "workspace": "/c", "model": "m", "depth": 1})
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, url, ref.session_id, str(PER_PROCESS)])
        for ref in (ROOT, CHILD)
    ]
    for proc in procs:
        assert proc.wait(timeout=120) == 0
    seqs = [e.seq for e in await store.events(ROOT.root_session_id)]
    await db.dispose()
    return seqs


async def test_two_processes_on_one_sqlite_root_make_no_gap_and_no_duplicate(tmp_path: Path) -> None:
    seqs = await _two_writers(f"sqlite:///{tmp_path}/k.db")
    assert seqs == list(range(1, 2 * PER_PROCESS + 3))


async def test_two_processes_on_one_postgresql_root_make_no_gap_and_no_duplicate(pg_url: str) -> None:
    seqs = await _two_writers(pg_url)
    assert seqs == list(range(1, 2 * PER_PROCESS + 3))
