"""The read commands' light path (`StoredSessions` on local mode's file) shows a session exactly
as the session service does, and loads neither SQLAlchemy nor the runner."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

from helpers import call, complete, run_session, summon, turn, write_script
from keen.config import get_settings
from keen.events import RecordingSink, SessionRef
from keen.runner.session_view import INTERRUPTED, StoredSessions, session_reads
from keen.runner.sessions import SessionService
from keen.store import SqlEventStore
from keen.store.db import open_database


async def _views(ident: str) -> tuple[object, ...]:
    settings = get_settings()
    shown = []
    for reads in (session_reads(settings), SessionService(settings)):
        async with reads as service:
            row = await service.get(ident)
            log = await service.events(row.root_id)
            tree = await service.tree(row.root_id, log)
            shown.append((type(reads), service.summary(row), log, tree.to_dict()))
    return tuple(shown)


async def test_a_finished_tree_shows_the_same_through_both_paths(repo: Path, tmp_path: Path) -> None:
    script = write_script(
        tmp_path / "s.json",
        {
            "main": [turn(summon("write notes", "general")), complete("merged")],
            "summon-A": [turn(call("write_files", path="notes.md", content="n\n")), complete("notes")],
        },
    )
    run = await run_session(repo, script)
    child = next(s for s in run.sessions if s.parent_id is not None)
    for ident in (run.result.session_id, child.id[:10]):
        (light, *shown_light), (full, *shown_full) = await _views(ident)
        assert light is StoredSessions and full is SessionService
        assert shown_light == shown_full
    summary = shown_light[0]
    assert summary["parent"] == run.result.session_id and summary["status"] == "completed"


async def test_a_run_whose_process_is_gone_shows_interrupted_through_both_paths() -> None:
    settings = get_settings()
    settings.ensure_home()
    db = await open_database(settings.database_url)
    sink = RecordingSink(SqlEventStore(db))
    root = SessionRef("d" * 32, "d" * 32)
    base = {"workspace": "/w", "model": "m", "user_id": "local"}
    await sink.emit(root, "session.created", {**base, "vision": "left running"})
    await sink.emit(root, "session.started", {"pid": 1})
    await sink.emit(SessionRef("e" * 32, root.root_session_id, root.session_id), "session.created", base)
    await db.dispose()
    (light, *shown_light), (_, *shown_full) = await _views("dddd")
    assert light is StoredSessions and shown_light == shown_full
    summary, _, tree = shown_light
    assert summary["status"] == INTERRUPTED and tree["status"] == INTERRUPTED
    assert tree["children"][0]["status"] == INTERRUPTED


async def test_the_service_reads_a_file_not_at_this_keens_revision_and_upgrades_it() -> None:
    settings = get_settings()
    settings.ensure_home()
    await (await open_database(settings.database_url)).dispose()
    with sqlite3.connect(settings.local_database) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0004'")
    assert isinstance(session_reads(settings), SessionService)
    async with session_reads(settings) as service:
        assert await service.events("0" * 32) == []
    assert isinstance(session_reads(settings), StoredSessions)  # upgraded back to head


def test_the_read_commands_load_neither_sqlalchemy_nor_the_runner(repo: Path, tmp_path: Path) -> None:
    script = write_script(tmp_path / "s.json", [complete("done")])
    session_id = asyncio.run(run_session(repo, script)).result.session_id
    probe = (
        "import sys\n"
        "from keen.cli.app import main\n"
        "try:\n"
        "    main()\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] == 'sqlalchemy' or m in\n"
        "    ('keen.runner.sessions', 'keen.store.db', 'keen.gitrepo', 'aiosqlite'))\n"
        "print(heavy, file=sys.stderr)\n"
    )
    for args in (
        ["show", session_id, "--json"],
        ["logs", session_id],
        ["replay", session_id, "--speed", "0"],
    ):
        result = subprocess.run(
            [sys.executable, "-c", probe, "sessions", *args], capture_output=True, text=True, timeout=60
        )
        assert result.stderr.strip().splitlines()[-1] == "[]", (args, result.stderr[-2000:])
        assert result.returncode == 0 and "done" in result.stdout, (args, result.stdout[-2000:])
    shown = subprocess.run(
        [sys.executable, "-m", "keen", "sessions", "show", session_id, "--json"],
        capture_output=True,
        text=True,
    )
    assert json.loads(shown.stdout)["status"] == "completed"
