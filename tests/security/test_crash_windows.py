"""A `kill -9` between the git steps of summoning must not break the session: whatever a crash
left of a child (its branch, its worktree, a merge in progress) is reused or cleaned up when the
session is resumed, and no child's work is lost while the session says `completed`."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

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
from security.attack import diverge


def _killed_before_summoning(tmp_path: Path, keen_home: Path, child: list[dict]) -> tuple[str, Path]:
    token = unique_sleep()
    script = write_script(
        tmp_path / "s.json",
        {
            "main": [
                turn(call("run_command", command=f"sleep {token}", timeout_seconds=600)),
                turn(summon("write child.txt for the parent", "general")),
                complete("child merged"),
            ],
            "summon-A": child,
        },
    )
    proc = start_keen(
        ["breathe", "summon one child", "--model", f"scripted:{script}", "--dir", "w"], tmp_path
    )
    wait_for(lambda: sleeping(token) != [])
    proc.kill()
    proc.wait(timeout=10)
    short = sqlite3.connect(keen_home / "keen.db").execute("select short_id from sessions").fetchone()[0]
    return short, tmp_path / "w"


def test_a_branch_and_worktree_left_by_a_crash_before_child_spawned_are_cleaned_up(
    tmp_path: Path, keen_home: Path
) -> None:
    child = [turn(call("write_files", path="child.txt", content="from the child\n")), complete("written")]
    short, workspace = _killed_before_summoning(tmp_path, keen_home, child)
    # What a kill right after `git worktree add` leaves: the child's branch and its worktree,
    # with no child.spawned recorded.
    leftover = keen_home / "worktrees" / short / "summon-A"
    leftover.parent.mkdir(parents=True)
    git(workspace, "worktree", "add", "-q", "-b", f"keen/{short}/summon-A", str(leftover), "HEAD")
    (leftover / "half-done.txt").write_text("never committed\n")
    resumed = run_keen("sessions", "resume", short, "--json", cwd=tmp_path, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    report = json.loads(resumed.stdout)
    assert report["status"] == "completed"
    assert (workspace / "child.txt").read_text() == "from the child\n"
    assert not (workspace / "half-done.txt").exists()
    assert git(workspace, "worktree", "list").count("\n") == 1


def test_a_merge_left_in_progress_by_a_crash_is_aborted_and_the_child_still_merged(
    tmp_path: Path, keen_home: Path
) -> None:
    child = [turn(call("write_files", path="child.txt", content="from the child\n")), complete("written")]
    short, workspace = _killed_before_summoning(tmp_path, keen_home, child)
    # A merge in progress and a stale index lock, as a kill in the middle of `git merge` leaves.
    (workspace / "notes.txt").write_text("base\n")
    git(workspace, "add", "notes.txt")
    git(workspace, "commit", "-qm", "notes")
    diverge(workspace, "notes.txt")
    merge = subprocess.run(["git", "merge", "side"], cwd=workspace, capture_output=True)
    assert merge.returncode != 0 and (workspace / ".git" / "MERGE_HEAD").exists()
    (workspace / ".git" / "index.lock").write_text("")
    resumed = run_keen("sessions", "resume", short, "--json", cwd=tmp_path, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["status"] == "completed"
    assert (workspace / "child.txt").read_text() == "from the child\n"
    assert not (workspace / ".git" / "MERGE_HEAD").exists()
