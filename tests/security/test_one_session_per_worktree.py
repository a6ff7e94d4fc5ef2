"""Two sessions on one work tree would claim each other's files and commits: the second is
refused while the first runs, and a killed session does not leave the work tree locked."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from helpers import call, complete, event_count, run_keen, start_keen, turn, wait_for, write_script


def test_a_second_session_on_a_running_work_tree_is_refused_and_a_killed_one_frees_it(
    tmp_path: Path, keen_home: Path
) -> None:
    slow = write_script(
        tmp_path / "slow.json",
        [turn(call("run_command", command="sleep 20", timeout_seconds=60)), complete("slept")],
    )
    quick = write_script(tmp_path / "quick.json", [complete("nothing to do")])
    first = start_keen(
        ["breathe", "sleep for a while please", "--model", f"scripted:{slow}", "--dir", "w"], tmp_path
    )
    try:
        wait_for(lambda: event_count(keen_home / "keen.db", "tool.started") >= 1)
        second = run_keen(
            "breathe", "do something else here", "--model", f"scripted:{quick}", "--dir", "w", cwd=tmp_path
        )
        assert second.returncode == 2, second.stderr
        assert "already running on" in second.stderr and "Traceback" not in second.stderr
        rows = sqlite3.connect(keen_home / "keen.db").execute("select count(*) from sessions").fetchone()[0]
        assert rows == 1  # the refused session left nothing behind
        first.kill()
        first.wait(timeout=10)
        session_id = (
            sqlite3.connect(keen_home / "keen.db").execute("select short_id from sessions").fetchone()[0]
        )
        resumed = run_keen("sessions", "resume", session_id, "--json", cwd=tmp_path, timeout=120)
        assert resumed.returncode == 0, resumed.stderr
    finally:
        if first.poll() is None:
            first.kill()
