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
    run_keen,
    sleeping,
    start_keen,
    summon,
    turn,
    unique_sleep,
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
    tokens = {b: unique_sleep() for b in BRANCHES}

    def sleeper(branch: str) -> list[dict[str, Any]]:
        return [turn(call("run_command", command=f"sleep {tokens[branch]}", timeout_seconds=300))]

    script = _tree(tmp_path, sleeper)
    proc = start_keen(
        ["breathe", "three parallel parts", "--model", f"scripted:{script}", "--dir", "w", "--json"], tmp_path
    )
    wait_for(lambda: all(sleeping(t) for t in tokens.values()))
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=15)
    assert proc.returncode == 130, err
    assert time.monotonic() - sent < 3.0
    assert json.loads(out)["status"] == "cancelled"
    wait_for(lambda: not any(sleeping(t) for t in tokens.values()), timeout=3)
    rows = (
        sqlite3.connect(keen_home / "keen.db").execute("select branch_name, status from sessions").fetchall()
    )
    assert sorted(rows) == [("main", "cancelled")] + [(b, "cancelled") for b in BRANCHES], err
    _no_worktree_left(tmp_path / "w", keen_home)


def test_kill_9_during_parallel_children_then_resume_makes_the_same_tree(
    tmp_path: Path, keen_home: Path
) -> None:
    tokens = {b: unique_sleep() for b in BRANCHES}

    def writer(branch: str) -> list[dict[str, Any]]:
        return [
            turn(call("write_files", path=f"{branch}.txt", content=f"{branch}\n")),
            turn(call("run_command", command=f"sleep {tokens[branch]}", timeout_seconds=600)),
            complete(f"{branch} written"),
        ]

    script = _tree(tmp_path, writer)
    proc = start_keen(
        ["breathe", "three parallel parts", "--model", f"scripted:{script}", "--dir", "w", "--json"], tmp_path
    )
    wait_for(lambda: all(sleeping(t) for t in tokens.values()))
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
    token = unique_sleep()
    script = write_script(
        tmp_path / "s.json",
        {
            "main": [turn(summon("write the report of part A", "general")), complete("merged")],
            "summon-A": [
                turn(call("write_files", path="report.txt", content="half of the report\n")),
                turn(call("run_command", command=f"sleep {token}", timeout_seconds=600)),
                turn(call("edit_file", path="report.txt", old_text="half", new_text="all")),
                complete("report written"),
            ],
        },
    )
    proc = start_keen(
        ["breathe", "one child writes a report", "--model", f"scripted:{script}", "--dir", "w"], tmp_path
    )
    wait_for(lambda: sleeping(token) != [])
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


def test_kill_9_with_a_parked_worktree_then_resume_leaves_none(tmp_path: Path, keen_home: Path) -> None:
    token = unique_sleep()

    def writer(branch: str) -> list[dict[str, Any]]:
        return [
            turn(call("write_files", path=f"{branch}.txt", content=f"{branch}\n")),
            complete(f"{branch} written"),
        ]

    script = write_script(
        tmp_path / "s.json",
        {
            "main": [
                turn(summon("do part A of the work", "general"), summon("do part B of the work", "general")),
                turn(summon("do part C of the work", "general")),
                complete("three parts merged"),
            ],
            "summon-A": writer("summon-A"),
            "summon-B": writer("summon-B"),
            "summon-C": [
                turn(call("run_command", command=f"sleep {token}", timeout_seconds=600)),
                *writer("summon-C"),
            ],
        },
    )
    proc = start_keen(
        ["breathe", "three parts, two then one", "--model", f"scripted:{script}", "--dir", "w", "--json"],
        tmp_path,
    )
    wait_for(lambda: sleeping(token) != [])
    workspace = tmp_path / "w"
    assert "detached" in git(workspace, "worktree", "list")  # A's or B's worktree, parked for reuse
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
    assert all((workspace / f"{b}.txt").read_text() == f"{b}\n" for b in BRANCHES)
    _no_worktree_left(workspace, keen_home)
    assert git(workspace, "for-each-ref", "refs/keen/") == ""
