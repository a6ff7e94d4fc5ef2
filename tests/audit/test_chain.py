"""The audit chain: appends link each entry to the one before; verify names the first entry that
was edited, removed or reordered; concurrent appenders still make one line."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, select, update

from keen.audit import AuditEntry, Origin, Risk, append, verify
from keen.store import Database
from keen.store.db import keep_writes, run_migrations, set_acting_user
from keen.store.models import AuditLogRow
from pgdb import app_login_role

ENTRIES = 5
T0 = datetime(2026, 12, 10, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated database: a SQLite file, or a PostgreSQL database (as its owner)."""
    url = f"sqlite:///{tmp_path}/k.db" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    run_migrations(url)
    yield url


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    database = Database(db_url)
    yield database
    await database.dispose()


def entry(n: int) -> AuditEntry:
    return AuditEntry(
        f"test.action{n}",
        Risk.MEDIUM,
        f"user:{n}",
        user_id=f"{n}".ljust(32, "0"),
        target=f"thing:{n}",
        details={"n": n},
    )


async def fill(db: Database, count: int = ENTRIES) -> None:
    for n in range(1, count + 1):
        async with db.transaction() as session:
            await set_acting_user(session, None, True)
            await append(session, entry(n), Origin("10.0.0.1", f"req-{n}"), now=T0 + timedelta(seconds=n))


async def report(db: Database) -> Any:
    async with db.transaction() as session:
        await set_acting_user(session, None, True)
        return await verify(session)


async def tamper(db: Database, *statements: Any) -> None:
    async with db.transaction() as session:
        await set_acting_user(session, None, True)
        for statement in statements:
            await session.execute(statement)


async def test_a_fresh_chain_is_intact(db: Database) -> None:
    assert (await report(db)).describe() == "chain intact (0 entries)"
    await fill(db)
    result = await report(db)
    assert result.intact and result.entries == ENTRIES
    assert result.describe() == f"chain intact ({ENTRIES} entries)"
    async with db.transaction() as session:
        rows = (await session.execute(select(AuditLogRow).order_by(AuditLogRow.seq))).scalars().all()
    assert [r.seq for r in rows] == list(range(1, ENTRIES + 1))
    assert rows[0].prev_hash == "0" * 64
    assert all(later.prev_hash == earlier.hash for earlier, later in pairwise(rows))
    assert (rows[2].ip, rows[2].request_id, rows[2].risk, rows[2].details) == (
        "10.0.0.1",
        "req-3",
        "medium",
        {"n": 3},
    )


EDITS: dict[str, Any] = {
    "seq": lambda n: 1000 + n,
    "ts": lambda n: T0 + timedelta(days=1),
    "action": lambda n: "test.other",
    "risk": lambda n: "low",
    "user_id": lambda n: "f" * 32,
    "actor": lambda n: "user:someone-else",
    "ip": lambda n: "10.9.9.9",
    "request_id": lambda n: "req-forged",
    "target": lambda n: "thing:else",
    "details": lambda n: {"n": n + 1},
    "prev_hash": lambda n: "1" * 64,
    "hash": lambda n: "2" * 64,
}


@pytest.mark.parametrize("field", sorted(EDITS))
async def test_editing_any_field_of_any_entry_is_found_at_that_entry(db: Database, field: str) -> None:
    await fill(db)
    for n in (1, 3, ENTRIES):
        original = await _row(db, n)
        await tamper(db, update(AuditLogRow).where(AuditLogRow.seq == n).values({field: EDITS[field](n)}))
        result = await report(db)
        assert (result.intact, result.first_bad) == (False, n), (field, n, result.problem)
        assert f"chain broken at entry {n}" in result.describe()
        await tamper(
            db,
            update(AuditLogRow)
            .where(AuditLogRow.seq == (EDITS["seq"](n) if field == "seq" else n))
            .values({field: getattr(original, field)}),
        )
        assert (await report(db)).intact  # put back, it holds again


@pytest.mark.parametrize("removed", [1, 3, ENTRIES])
async def test_removing_an_entry_is_found_at_that_entry(db: Database, removed: int) -> None:
    await fill(db)
    await tamper(db, delete(AuditLogRow).where(AuditLogRow.seq == removed))
    result = await report(db)
    assert (result.intact, result.first_bad) == (False, removed), result.problem
    assert "missing" in str(result.problem)


@pytest.mark.parametrize(("first", "second"), [(1, 2), (2, 4), (4, ENTRIES)])
async def test_swapping_two_entries_is_found_at_the_earlier(db: Database, first: int, second: int) -> None:
    await fill(db)
    by_seq = AuditLogRow.seq
    await tamper(
        db,
        update(AuditLogRow).where(by_seq == first).values(seq=-1),
        update(AuditLogRow).where(by_seq == second).values(seq=first),
        update(AuditLogRow).where(by_seq == -1).values(seq=second),
    )
    result = await report(db)
    assert (result.intact, result.first_bad) == (False, first), result.problem


async def test_an_append_is_part_of_the_transaction_that_makes_it(db: Database) -> None:
    class Refused(Exception):
        pass

    with pytest.raises(Refused):
        async with db.transaction() as session:
            await set_acting_user(session, None, True)
            await append(session, entry(1), Origin())
            raise Refused
    assert (await report(db)).entries == 0  # rolled back with it, and no gap left behind
    with pytest.raises(Refused):
        async with db.transaction() as session:
            await set_acting_user(session, None, True)
            await append(session, entry(1), Origin())
            raise keep_writes(Refused())
    await fill(db, 1)
    result = await report(db)
    assert result.intact and result.entries == 2


async def test_twenty_concurrent_appenders_make_one_linear_chain(db_url: str) -> None:
    if db_url.startswith("postgresql"):
        with app_login_role(db_url) as app_url:  # as the server would: the app role, under RLS
            await _appenders(app_url)
    else:
        await _appenders(db_url)
    db = Database(db_url)
    try:
        result = await report(db)
        async with db.transaction() as session:
            await set_acting_user(session, None, True)
            actions = (
                (await session.execute(select(AuditLogRow.actor).order_by(AuditLogRow.seq))).scalars().all()
            )
    finally:
        await db.dispose()
    assert result.intact and result.entries == 20 * 3, result.describe()
    assert sorted(actions) == sorted(f"user:{w}" for w in range(20) for _ in range(3))


async def _appenders(url: str) -> None:
    """20 threads, each with its own event loop and connections, appending 3 entries each."""
    start, errors = threading.Barrier(20), []

    def work(worker: int) -> None:
        async def run() -> None:
            db = Database(url)
            try:
                start.wait()
                for _ in range(3):
                    async with db.transaction() as session:
                        user = f"{worker}".ljust(32, "0")
                        await set_acting_user(session, user, False)  # each appends its own entries
                        await append(
                            session,
                            AuditEntry("test.concurrent", Risk.LOW, f"user:{worker}", user_id=user),
                            Origin(),
                        )
            finally:
                await db.dispose()

        try:
            asyncio.run(run())
        except Exception as exc:  # reported below with the worker's number
            errors.append((worker, repr(exc)))

    threads = [threading.Thread(target=work, args=(w,)) for w in range(20)]
    for thread in threads:
        thread.start()
    await asyncio.to_thread(lambda: [t.join() for t in threads])
    assert not errors, errors


async def _row(db: Database, seq: int) -> AuditLogRow:
    async with db.transaction() as session:
        await set_acting_user(session, None, True)
        return (await session.execute(select(AuditLogRow).where(AuditLogRow.seq == seq))).scalar_one()
