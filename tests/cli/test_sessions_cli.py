"""`keen sessions …`, `keen status` and `keen version` against a real session's stored events."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest

from helpers import (
    call,
    complete,
    event_count,
    run_keen,
    sleeping,
    start_keen,
    turn,
    unique_sleep,
    wait_for,
    write_script,
)


@pytest.fixture
def finished_session(tmp_path: Path) -> str:
    script = write_script(
        tmp_path / "s.json",
        [
            turn(call("write_files", path="hello.txt", content="hi\n"), text="writing hello"),
            complete("said hello"),
        ],
    )
    result = run_keen(
        "breathe",
        "write a friendly hello file",
        "--model",
        f"scripted:{script}",
        "--dir",
        "w",
        "--json",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["session_id"]


def test_list_shows_the_session(tmp_path: Path, finished_session: str) -> None:
    listed = run_keen("sessions", "list", cwd=tmp_path)
    assert listed.returncode == 0
    assert finished_session[:8] in listed.stdout and "completed" in listed.stdout
    as_json = json.loads(run_keen("sessions", "list", "--json", cwd=tmp_path).stdout)
    assert as_json[0]["id"] == finished_session and as_json[0]["totals"]["iterations"] == 2
    assert json.loads(run_keen("sessions", "list", "--status", "failed", "--json", cwd=tmp_path).stdout) == []


def test_show_json_has_events_and_tree(tmp_path: Path, finished_session: str) -> None:
    shown = json.loads(run_keen("sessions", "show", finished_session[:6], "--json", cwd=tmp_path).stdout)
    assert shown["status"] == "completed" and shown["vision"] == "write a friendly hello file"
    assert [e["seq"] for e in shown["events"]] == list(range(1, len(shown["events"]) + 1))
    assert set(shown["events"][0]) == {
        "seq",
        "session_id",
        "root_session_id",
        "parent_session_id",
        "type",
        "ts",
        "data",
    }
    assert shown["tree"]["branch"] == "main" and shown["tree"]["status"] == "completed"
    text = run_keen("sessions", "show", finished_session, "--events", cwd=tmp_path).stdout
    assert "keen report" in text and "hello.txt" in text and "tool.finished" in text


def test_logs_and_replay_print_the_stored_events(tmp_path: Path, finished_session: str) -> None:
    logs = run_keen("sessions", "logs", finished_session, cwd=tmp_path)
    assert logs.returncode == 0
    lines = logs.stdout.strip().splitlines()
    assert "session.created" in lines[0] and "session.finished" in lines[-1]
    replay = run_keen("sessions", "replay", finished_session, cwd=tmp_path)
    assert replay.returncode == 0
    assert "write_files" in replay.stdout and "keen report" in replay.stdout and "said hello" in replay.stdout


def test_unknown_session_is_a_clear_error(tmp_path: Path, finished_session: str) -> None:
    missing = run_keen("sessions", "show", "zzzz", cwd=tmp_path)
    assert missing.returncode == 2 and "no session 'zzzz'" in missing.stderr
    done = run_keen("sessions", "resume", finished_session, cwd=tmp_path)
    assert done.returncode == 2 and "already finished (completed)" in done.stderr


def test_logs_follow_streams_a_running_session_until_it_ends(tmp_path: Path) -> None:
    script = write_script(
        tmp_path / "s.json",
        [
            turn(call("get_project_tree"), delay_ms=1500),
            turn(call("get_project_tree", max_depth=1), delay_ms=500),
            complete(),
        ],
    )
    proc = start_keen(
        ["breathe", "a slow little session", "--model", f"scripted:{script}", "--dir", "w", "--json"],
        tmp_path,
    )
    try:
        home_db = Path(os.environ["KEEN_HOME"]) / "keen.db"
        wait_for(lambda: event_count(home_db, "session.started") >= 1)
        session_id = sqlite3.connect(home_db).execute("select id from sessions").fetchone()[0]
        followed = run_keen("sessions", "logs", session_id, "--follow", cwd=tmp_path, timeout=60)
        assert followed.returncode == 0
        assert (
            "model.responded" in followed.stdout
            and followed.stdout.strip().splitlines()[-1].split()[2] == "session.finished"
        )
    finally:
        proc.wait(timeout=60)


def test_status_masks_secrets_and_version_prints(tmp_path: Path) -> None:
    key = "test-only-key-value-for-masking-1234"
    status = run_keen("status", "--verbose", "--json", cwd=tmp_path, env={"ANTHROPIC_API_KEY": key})
    data = json.loads(status.stdout)
    assert data["mode"] == "local" and data["model"] == "anthropic:claude-sonnet-5-5"
    assert key not in status.stdout and data["config"]["ANTHROPIC_API_KEY"] == "test…34"
    assert run_keen("version", cwd=tmp_path).stdout.startswith("keen ")


def test_sessions_cancel_stops_a_running_session_from_another_process(tmp_path: Path) -> None:
    token = unique_sleep()
    script = write_script(tmp_path / "s.json", [turn(call("run_command", command=f"sleep {token}"))])
    proc = start_keen(
        ["breathe", "a session to cancel", "--model", f"scripted:{script}", "--dir", "w", "--json"], tmp_path
    )
    wait_for(lambda: sleeping(token) != [])
    home_db = Path(os.environ["KEEN_HOME"]) / "keen.db"
    session_id = sqlite3.connect(home_db).execute("select short_id from sessions").fetchone()[0]
    cancelled = run_keen("sessions", "cancel", session_id, cwd=tmp_path)
    assert cancelled.returncode == 0, cancelled.stderr
    out, _ = proc.communicate(timeout=15)
    assert proc.returncode == 130
    assert json.loads(out)["status"] == "cancelled"
    again = run_keen("sessions", "cancel", session_id, cwd=tmp_path)
    assert again.returncode == 2 and "already finished (cancelled)" in again.stderr
