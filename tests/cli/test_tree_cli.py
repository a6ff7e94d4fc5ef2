"""The agent tree through the `keen` command: cancellation cascades, resume continues a child."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
from pathlib import Path

from helpers import (
    call,
    complete,
    event_count,
    run_keen,
    sleeping,
    start_keen,
    summon,
    turn,
    unique_sleep,
    wait_for,
    write_script,
)


def test_cancel_while_a_grandchild_runs_cancels_all_three_and_leaves_no_worktree(
    tmp_path: Path, keen_home: Path
) -> None:
    token = unique_sleep()
    script = write_script(
        tmp_path / "s.json",
        {
            "main": [turn(summon("delegate the long job", "general")), complete()],
            "summon-A": [turn(summon("run the long job", "devops")), complete()],
            "summon-A-A": [turn(call("run_command", command=f"sleep {token}", timeout_seconds=300))],
        },
    )
    proc = start_keen(
        ["breathe", "a deep tree of agents", "--model", f"scripted:{script}", "--dir", "w", "--json"],
        tmp_path,
    )
    wait_for(lambda: sleeping(token) != [])
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=15)
    assert proc.returncode == 130, err
    assert json.loads(out)["status"] == "cancelled"
    wait_for(lambda: sleeping(token) == [], timeout=3)
    db = sqlite3.connect(keen_home / "keen.db")
    rows = db.execute("select branch_name, status from sessions order by depth").fetchall()
    assert rows == [("main", "cancelled"), ("summon-A", "cancelled"), ("summon-A-A", "cancelled")]
    worktrees = subprocess.run(
        ["git", "worktree", "list"], cwd=tmp_path / "w", capture_output=True, text=True
    ).stdout
    assert worktrees.count("\n") == 1, worktrees
    leftover = keen_home / "worktrees"
    assert (
        not any(p.is_dir() and any(p.iterdir()) for p in leftover.glob("*/*")) if leftover.exists() else True
    )


def test_resume_after_a_crash_continues_the_child_then_its_parent(tmp_path: Path, keen_home: Path) -> None:
    script = write_script(
        tmp_path / "s.json",
        {
            "main": [turn(summon("write the two parts", "backend")), complete("both parts merged")],
            "summon-A": [
                turn(call("write_files", path="part1.txt", content="1\n")),
                turn(call("run_command", command="true")),
                turn(call("write_files", path="part2.txt", content="2\n"), delay_ms=4_000),
                complete("parts written"),
            ],
        },
    )
    proc = start_keen(
        ["breathe", "a tree that will crash", "--model", f"scripted:{script}", "--dir", "w", "--json"],
        tmp_path,
    )
    db_path = keen_home / "keen.db"
    wait_for(lambda: event_count(db_path, "tool.finished") >= 2)
    proc.kill()
    proc.wait(timeout=10)
    root_id = (
        sqlite3.connect(db_path).execute("select id from sessions where parent_id is null").fetchone()[0]
    )

    resumed = run_keen("sessions", "resume", root_id, "--json", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    data = json.loads(resumed.stdout)
    assert data["status"] == "completed"
    assert data["files_created"] == ["part1.txt", "part2.txt"]
    db = sqlite3.connect(db_path)
    assert db.execute("select branch_name, status from sessions order by depth").fetchall() == [
        ("main", "completed"),
        ("summon-A", "completed"),
    ]
    rows = db.execute("select seq, session_id, type, data from session_events order by seq").fetchall()
    assert [r[0] for r in rows] == list(range(1, len(rows) + 1))
    types = [r[2] for r in rows]
    assert types.count("session.resumed") == 2  # the child, then its parent
    assert types.count("child.spawned") == 1 and types.count("child.finished") == 1
    assert types.count("git.merged") == 1
    child_turns = [
        json.loads(r[3])["iteration"] for r in rows if r[2] == "model.responded" and r[1] != root_id
    ]
    assert child_turns == [1, 2, 3, 4]

    show = run_keen("sessions", "show", root_id[:10], "--tree", cwd=tmp_path)
    assert show.returncode == 0, show.stderr
    assert "summon-A [backend]" in show.stdout and "merge: merged" in show.stdout
    shown = json.loads(run_keen("sessions", "show", root_id, "--json", cwd=tmp_path).stdout)
    assert shown["tree"]["children"][0]["branch"] == "summon-A"
    assert shown["tree"]["children"][0]["merge"]["result"] == "merged"
