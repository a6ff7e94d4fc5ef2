"""The standard-library reader of local mode's SQLite file reads exactly what the repositories
read: the same rows with the same types, the same events, the same lookups and tenancy."""

from __future__ import annotations

import dataclasses
import sqlite3
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from keen.errors import InputError, NotFoundError
from keen.events import RecordingSink, SessionRef
from keen.store import Database, SessionRepository, SqlEventStore
from keen.store.actor import LOCAL_ACTOR, Actor
from keen.store.sqlite_reads import SessionRecord, open_local

ROOT = "a1" * 16
CHILD = "c2" * 16
OTHER = "a1b" + "0" * 29  # shares ROOT's first characters
ALICE = Actor("alice")


async def _populated(path: Path) -> Database:
    """Two local trees (one with a child, money, a lease and a cancel request) and alice's."""
    db = Database(f"sqlite:///{path}")
    await db.upgrade()
    sink = RecordingSink(SqlEventStore(db))
    root, child = SessionRef(ROOT, ROOT), SessionRef(CHILD, ROOT, ROOT)
    created = {"workspace": "/w", "model": "scripted:x", "user_id": "local"}
    await sink.emit(root, "session.created", {**created, "vision": "the root", "options": {"budget": "2.5"}})
    await sink.emit(root, "session.started", {"pid": 1})
    await sink.emit(
        child, "session.created", {**created, "vision": "a child", "branch": "summon-A", "depth": 1}
    )
    for cost in ("0.000001", "0.1"):
        usage = {"input_tokens": 10, "output_tokens": 2}
        await sink.emit(
            child, "model.responded", {"usage": usage, "cost_usd": Decimal(cost), "text": "é \u2603"}
        )
    await sink.emit(child, "session.finished", {"status": "completed", "summary": "ok"})
    repo = SessionRepository(db)
    assert await repo.claim(ROOT, "host:1:ab", timedelta(seconds=15))
    await repo.request_cancel(ROOT)
    other = SessionRef(OTHER, OTHER)
    await sink.emit(other, "session.created", {**created, "vision": "another"})
    alices = SessionRef("f" * 32, "f" * 32)
    await sink.emit(alices, "session.created", {**created, "user_id": "alice", "vision": "alice's"})
    return db


def _fields(row: object) -> dict[str, object]:
    return {f.name: getattr(row, f.name) for f in dataclasses.fields(SessionRecord)}


def test_a_record_has_every_column_of_the_sessions_table() -> None:
    from keen.store.models import SessionRow

    assert [f.name for f in dataclasses.fields(SessionRecord)] == list(SessionRow.__table__.columns.keys())


async def test_rows_and_events_equal_the_repositories(tmp_path: Path) -> None:
    db = await _populated(tmp_path / "keen.db")
    reads = open_local(tmp_path / "keen.db", LOCAL_ACTOR)
    assert reads is not None
    repo, store = SessionRepository(db, LOCAL_ACTOR), SqlEventStore(db, LOCAL_ACTOR)
    try:
        for ident in (ROOT, CHILD, OTHER):
            expected, got = await repo.get(ident), reads.get(ident)
            assert _fields(got) == _fields(expected)
            assert {k: type(v) for k, v in _fields(got).items()} == {
                k: type(v) for k, v in _fields(expected).items()
            }
        child = reads.get(CHILD)
        assert child.cost_usd == Decimal("0.100001") and child.created_at.tzinfo is not None
        assert reads.get(ROOT).cancel_requested_at is not None and reads.get(ROOT).options == {
            "budget": "2.5"
        }
        assert reads.events(ROOT) == await store.events(ROOT)
        assert reads.events(ROOT, after_seq=3) == await store.events(ROOT, after_seq=3)
        assert [e.seq for e in reads.events(ROOT, after_seq=3)] == [4, 5, 6]
        assert reads.root_of(CHILD[:6]).id == (await repo.root_of(CHILD[:6])).id == ROOT
    finally:
        reads.close()
        await db.dispose()


async def test_lookups_fail_the_way_the_repository_does(tmp_path: Path) -> None:
    db = await _populated(tmp_path / "keen.db")
    reads = open_local(tmp_path / "keen.db", LOCAL_ACTOR)
    assert reads is not None
    repo = SessionRepository(db, LOCAL_ACTOR)
    try:
        for ident, error, message in [
            ("a1", InputError, "ambiguous"),  # ROOT and OTHER
            ("%", NotFoundError, "no session"),  # a LIKE wildcard is a literal character
            ("a_", NotFoundError, "no session"),
            ("  ", InputError, "empty"),
            ("f" * 8, NotFoundError, "no session"),  # alice's, not the local user's
        ]:
            with pytest.raises(error, match=message):
                reads.get(ident)
            with pytest.raises(error, match=message):
                await repo.get(ident)
        assert reads.get(" a1a1a1 ").id == ROOT  # an unambiguous prefix, trimmed
    finally:
        reads.close()
        await db.dispose()


async def test_each_user_reads_their_own_rows_and_an_admin_every_row(tmp_path: Path) -> None:
    db = await _populated(tmp_path / "keen.db")
    await db.dispose()
    alice = open_local(tmp_path / "keen.db", ALICE)
    admin = open_local(tmp_path / "keen.db", Actor("root", is_admin=True))
    assert alice is not None and admin is not None
    try:
        assert alice.get("fff").vision == "alice's"
        with pytest.raises(NotFoundError):
            alice.get(ROOT)
        assert alice.events(ROOT) == []
        assert admin.get(ROOT).vision == "the root" and admin.get("fff").user_id == "alice"
        assert len(admin.events(ROOT)) == 6
    finally:
        alice.close()
        admin.close()


async def test_it_serves_only_a_database_at_this_keens_revision(tmp_path: Path) -> None:
    assert open_local(tmp_path / "missing.db", LOCAL_ACTOR) is None
    (tmp_path / "junk.db").write_bytes(b"not a database at all" * 100)
    assert open_local(tmp_path / "junk.db", LOCAL_ACTOR) is None
    sqlite3.connect(tmp_path / "empty.db").close()
    assert open_local(tmp_path / "empty.db", LOCAL_ACTOR) is None
    db = await _populated(tmp_path / "keen.db")
    await db.dispose()
    with sqlite3.connect(tmp_path / "keen.db") as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0004'")
    assert open_local(tmp_path / "keen.db", LOCAL_ACTOR) is None
    assert not (tmp_path / "missing.db").exists()  # reading never creates a file


async def test_it_never_writes(tmp_path: Path) -> None:
    db = await _populated(tmp_path / "keen.db")
    await db.dispose()
    reads = open_local(tmp_path / "keen.db", LOCAL_ACTOR)
    assert reads is not None
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        reads._conn.execute("DELETE FROM session_events")
    reads.close()
