"""Parallel children through the `keen` command: Ctrl-C stops all of them at once, and a
`kill -9` during them is resumed to the same tree an uninterrupted run makes."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

from helpers import (
    call,
    complete,
    git,
    pgid_alive,
    run_keen,
    start_keen,
    summon,
    turn,
    wait_for,
    write_script,
)

BRANCHES = ("summon-A", "summon-B", "summon-C")


def _tree(tmp_path: Path, child: Any) -> Path:
    return write_script(
        tmp_path / "s.json",
        {
            "main": [
                turn(*(summon(f"do part {b} of the work", "general") for b in BRANCHES)),
                complete("three parts merged"),
            ],
            **{b: child(b) for b in BRANCHES},
        },
    )


def _no_worktree_left(workspace: Path, keen_home: Path) -> None:
    worktrees = subprocess.run(
        ["git", "worktree", "list"], cwd=workspace, capture_output=True, text=True
    ).stdout
    assert worktrees.count("\n") == 1, worktrees
    assert not list((workspace / ".git").glob("**/index.lock"))


def test_ctrl_c_during_three_parallel_children_cancels_all_within_3_seconds(
    tmp_path: Path, keen_home: Path
) -> None:
    def sleeper(branch: str) -> list[dict[str, Any]]:
        pidfile = tmp_path / f"{branch}.pid"
        return [turn(call("run_command", command=f"echo $$ > {pidfile}; sleep 60", timeout_seconds=300))]

    script = _tree(tmp_path, sleeper)
    proc = start_keen(
        ["breathe", "three parallel parts", "--model", f"scripted:{script}", "--dir", "w", "--json"], tmp_path
    )
    pidfiles = [tmp_path / f"{b}.pid" for b in BRANCHES]
    wait_for(lambda: all(p.exists() and p.read_text().strip() for p in pidfiles))
    groups = [int(p.read_text()) for p in pidfiles]
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=15)
    assert proc.returncode == 130, err
    assert time.monotonic() - sent < 3.0
    assert json.loads(out)["status"] == "cancelled"
    assert not any(pgid_alive(g) for g in groups)
    rows = (
        sqlite3.connect(keen_home / "keen.db").execute("select branch_name, status from sessions").fetchall()
    )
    assert sorted(rows) == [("main", "cancelled")] + [(b, "cancelled") for b in BRANCHES]
    _no_worktree_left(tmp_path / "w", keen_home)


def test_kill_9_during_parallel_children_then_resume_makes_the_same_tree(
    tmp_path: Path, keen_home: Path
) -> None:
    def writer(branch: str) -> list[dict[str, Any]]:
        marker = tmp_path / f"{branch}.started"
        return [
            turn(call("write_files", path=f"{branch}.txt", content=f"{branch}\n")),
            turn(call("run_command", command=f"touch {marker}; sleep 3", timeout_seconds=60)),
            complete(f"{branch} written"),
        ]

    script = _tree(tmp_path, writer)
    proc = start_keen(
        ["breathe", "three parallel parts", "--model", f"scripted:{script}", "--dir", "w", "--json"], tmp_path
    )
    wait_for(lambda: all((tmp_path / f"{b}.started").exists() for b in BRANCHES))
    proc.kill()
    proc.wait(timeout=10)
    root = (
        sqlite3.connect(keen_home / "keen.db")
        .execute("select short_id from sessions where depth = 0")
        .fetchone()[0]
    )
    resumed = run_keen("sessions", "resume", root, "--json", cwd=tmp_path, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["status"] == "completed"
    workspace = tmp_path / "w"
    assert all((workspace / f"{b}.txt").read_text() == f"{b}\n" for b in BRANCHES)
    subjects = git(workspace, "log", "--merges", "--reverse", "--format=%s").splitlines()
    assert [s.split()[2] for s in subjects] == list(BRANCHES)
    _no_worktree_left(workspace, keen_home)


def test_a_childs_work_survives_losing_its_worktree_as_a_machine_restart_would(
    tmp_path: Path, keen_home: Path
) -> None:
    marker = tmp_path / "child.waiting"
    script = write_script(
        tmp_path / "s.json",
        {
            "main": [turn(summon("write the report of part A", "general")), complete("merged")],
            "summon-A": [
                turn(call("write_files", path="report.txt", content="half of the report\n")),
                turn(call("run_command", command=f"touch {marker}; sleep 30", timeout_seconds=60)),
                turn(call("edit_file", path="report.txt", old_text="half", new_text="all")),
                complete("report written"),
            ],
        },
    )
    proc = start_keen(
        ["breathe", "one child writes a report", "--model", f"scripted:{script}", "--dir", "w"], tmp_path
    )
    wait_for(marker.exists)
    proc.kill()
    proc.wait(timeout=10)
    db = sqlite3.connect(keen_home / "keen.db")
    root = db.execute("select short_id from sessions where depth = 0").fetchone()[0]
    worktree = Path(db.execute("select workspace from sessions where depth = 1").fetchone()[0])
    assert (worktree / "report.txt").exists()
    subprocess.run(["rm", "-rf", str(worktree)], check=True)  # what a restart does to a tmpfs worktree
    resumed = run_keen("sessions", "resume", root, "--json", cwd=tmp_path, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["status"] == "completed"
    assert (tmp_path / "w" / "report.txt").read_text() == "all of the report\n"
