"""The event store on SQLite and on the PostgreSQL running on this machine."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.exc import IntegrityError

from helpers import call, complete, run_session, turn, write_script
from keen.config import reset_settings_cache
from keen.events import RecordingSink, SessionRef
from keen.events.types import Event, utcnow
from keen.store import Database, SessionRepository, SqlEventStore
from keen.store.db import HEAD_REVISION, MIGRATIONS_DIR


def test_head_revision_constant_matches_the_migrations() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    assert ScriptDirectory.from_config(cfg).get_current_head() == HEAD_REVISION


async def _store(url: str) -> tuple[Database, SqlEventStore]:
    db = Database(url)
    await db.upgrade()
    return db, SqlEventStore(db)


async def test_events_get_gap_free_seq_and_project_onto_the_session_row(tmp_path: Path) -> None:
    db, store = await _store(f"sqlite:///{tmp_path}/k.db")
    sink = RecordingSink(store)
    root = SessionRef("r" * 32, "r" * 32)
    child = SessionRef("c" * 32, "r" * 32, "r" * 32)
    await sink.emit(root, "session.created", {"vision": "v", "workspace": "/w", "model": "m"})
    await sink.emit(root, "session.started", {"pid": 1})
    await sink.emit(
        child,
        "session.created",
        {"vision": "child", "workspace": "/w2", "model": "m", "branch": "summon-A", "depth": 1},
    )
    for cost in ("0.000001", "0.1", "0.2"):
        await sink.emit(
            root,
            "model.responded",
            {"usage": {"input_tokens": 10, "output_tokens": 2}, "cost_usd": Decimal(cost)},
        )
    await sink.emit(root, "session.finished", {"status": "completed", "summary": "ok"})
    events = await store.events(root.root_session_id)
    assert [e.seq for e in events] == list(range(1, 8))
    rows = {r.branch_name: r for r in await SessionRepository(db).tree(root.root_session_id)}
    assert rows["main"].cost_usd == Decimal("0.300001")  # exact decimals, not floats
    assert rows["main"].iterations == 3 and rows["main"].input_tokens == 30
    assert rows["main"].status == "completed" and rows["main"].finished_at.tzinfo is not None
    assert rows["summon-A"].parent_id == root.session_id and rows["summon-A"].depth == 1
    await db.dispose()


async def test_a_duplicate_seq_is_refused(tmp_path: Path) -> None:
    db, store = await _store(f"sqlite:///{tmp_path}/k.db")
    ref = SessionRef("a" * 32, "a" * 32)
    await RecordingSink(store).emit(ref, "session.created", {"vision": "v", "workspace": "/w", "model": "m"})
    with pytest.raises(IntegrityError):
        await store.append(
            Event(1, ref.session_id, ref.root_session_id, None, "session.started", utcnow(), {})
        )
    assert len(await store.events(ref.root_session_id)) == 1
    await db.dispose()


async def test_a_new_sink_continues_after_the_stored_seq(tmp_path: Path) -> None:
    db, store = await _store(f"sqlite:///{tmp_path}/k.db")
    ref = SessionRef("b" * 32, "b" * 32)
    await RecordingSink(store).emit(ref, "session.created", {"vision": "v", "workspace": "/w", "model": "m"})
    second = await RecordingSink(store).emit(ref, "session.started", {})
    assert second.seq == 2
    await db.dispose()


async def test_migrations_and_a_whole_session_on_postgresql(
    pg_url: str, repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEEN_DATABASE_URL", pg_url)
    reset_settings_cache()
    shared = Database(pg_url)  # a shared database is migrated by `keen db upgrade`, not by a run
    await shared.upgrade()
    await shared.dispose()
    script = write_script(
        tmp_path / "s.json",
        [turn(call("write_files", path="pg.txt", content="stored in postgres\n")), complete("done")],
    )
    run = await run_session(repo, script)
    assert run.result.status == "completed"
    with psycopg.connect(pg_url) as conn:
        version = conn.execute("select version_num from alembic_version").fetchone()
        rows = conn.execute("select seq, type from session_events order by seq").fetchall()
        status, cost = conn.execute("select status, cost_usd from sessions").fetchone()
        column = conn.execute(
            "select data_type, numeric_scale from information_schema.columns where table_name='sessions' and column_name='cost_usd'"
        ).fetchone()
    assert version == (HEAD_REVISION,)
    assert [r[0] for r in rows] == list(range(1, len(rows) + 1))
    assert rows[0][1] == "session.created" and rows[-1][1] == "session.finished"
    assert status == "completed" and cost == run.result.cost_usd.quantize(Decimal("0.000001"))
    assert column == ("numeric", 6)
    assert not (Path(str(tmp_path)) / "keen.db").exists()
