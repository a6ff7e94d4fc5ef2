"""`keen … | head`: a reader that leaves ends keen quietly, and piped output is not cut at 80 columns."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from pathlib import Path

from helpers import KEEN_BIN, call, complete, event_count, start_keen, turn, wait_for, write_script

EXIT_PIPE = 141  # what `git log | head` ends with: 128 + SIGPIPE


def _keen_into_a_pipe(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    env["NO_COLOR"] = "1"
    return subprocess.Popen(
        [str(KEEN_BIN), *args], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _read_lines_then_close(proc: subprocess.Popen[str], count: int) -> list[str]:
    """What `| head -N` does: read N lines, then close the pipe and go."""
    assert proc.stdout is not None
    lines = [proc.stdout.readline() for _ in range(count)]
    proc.stdout.close()
    return lines


def _finish(proc: subprocess.Popen[str], timeout: float = 60) -> str:
    assert proc.stderr is not None
    err = proc.stderr.read()
    proc.wait(timeout=timeout)
    return err


def test_closing_the_pipe_cancels_the_session_and_exits_quietly(tmp_path: Path, keen_home: Path) -> None:
    slow = [turn(call("continue_work", next_action=f"step {i}"), delay_ms=300) for i in range(20)]
    script = write_script(tmp_path / "s.json", [*slow, complete()])
    proc = _keen_into_a_pipe(
        ["breathe", "a session read through head", "--model", f"scripted:{script}", "--dir", "w"], tmp_path
    )
    lines = _read_lines_then_close(proc, 3)
    err = _finish(proc)
    assert "session.created" in lines[1]
    assert proc.returncode == EXIT_PIPE, err
    assert err == "", err  # no traceback, no "Task was destroyed", nothing
    db = sqlite3.connect(keen_home / "keen.db")
    assert db.execute("select status from sessions").fetchall() == [("cancelled",)]
    last = db.execute("select type from session_events order by seq desc limit 1").fetchone()
    assert last == ("session.finished",)


def test_logs_follow_into_a_closed_pipe_stops_quietly_while_the_session_runs(
    tmp_path: Path, keen_home: Path
) -> None:
    slow = [turn(call("continue_work", next_action=f"step {i}"), delay_ms=400) for i in range(15)]
    script = write_script(tmp_path / "s.json", [*slow, complete()])
    session = start_keen(
        ["breathe", "a session to follow", "--model", f"scripted:{script}", "--dir", "w", "--json"], tmp_path
    )
    try:
        db_path = keen_home / "keen.db"
        wait_for(lambda: event_count(db_path, "session.started") >= 1)
        session_id = sqlite3.connect(db_path).execute("select short_id from sessions").fetchone()[0]
        follower = _keen_into_a_pipe(["sessions", "logs", session_id, "--follow"], tmp_path)
        _read_lines_then_close(follower, 2)
        err = _finish(follower)
        assert follower.returncode == EXIT_PIPE, err
        assert "Traceback" not in err and err == ""
        assert session.poll() is None  # the follower stopped on its own, long before the session ended
    finally:
        session.kill()
        session.wait(timeout=30)


def test_piped_output_is_not_wrapped_at_80_columns(tmp_path: Path, keen_home: Path) -> None:
    summary = "a summary that is long enough to need more than eighty columns on one line of output " * 2
    vision = "a vision that is deliberately longer than eighty characters so that a pipe shows it whole"
    script = write_script(tmp_path / "s.json", [complete(summary.strip())])
    args = ["breathe", vision, "--model", f"scripted:{script}", "--dir", "w", "--gates", "off"]
    proc = _keen_into_a_pipe(args, tmp_path)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert any(summary.strip() in line for line in out.splitlines())  # the report's summary on one line
    listed = _keen_into_a_pipe(["sessions", "list"], tmp_path).communicate(timeout=60)[0]
    assert any(vision[:60] in line and "completed" in line for line in listed.splitlines())


def test_a_reader_gone_before_the_first_line_still_ends_the_session(tmp_path: Path, keen_home: Path) -> None:
    """`keen breathe … | true`: the output is closed before the run starts; the run is started
    and cancelled at once, not left `created` for ever."""
    script = write_script(tmp_path / "s.json", [turn(call("get_project_tree"), delay_ms=200), complete()])
    proc = _keen_into_a_pipe(
        ["breathe", "a session nobody reads", "--model", f"scripted:{script}", "--dir", "w"], tmp_path
    )
    _read_lines_then_close(proc, 0)
    err = _finish(proc)
    assert proc.returncode == EXIT_PIPE, err
    assert err == ""
    db = sqlite3.connect(keen_home / "keen.db")
    assert db.execute("select status from sessions").fetchall() == [("cancelled",)]
