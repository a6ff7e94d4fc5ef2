"""Hostile tool input from the model, end to end: `keen breathe` with a scripted model in a real
subprocess. No input may crash keen, leave a session `running`, or break `sessions show --json`
and `sessions logs` afterwards."""

from __future__ import annotations

import json
import os
import resource
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from helpers import call, complete, event_count, git, run_keen, start_keen, turn, wait_for, write_script

MIB = 1024 * 1024


@pytest.fixture
def workspace(repo: Path) -> Path:
    """The test repository, its `big/` folder ignored (large files, no git cost)."""
    (repo / ".gitignore").write_text("big/\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "ignore big/")
    return repo


def _breathe(tmp_path: Path, turns: list[dict[str, Any]]) -> tuple[int, dict[str, Any]]:
    script = write_script(tmp_path / "script.json", turns)
    done = run_keen(
        "breathe", "handle what the model sends", "--model", f"scripted:{script}", "--dir", "repo", "--json",
        cwd=tmp_path, timeout=180,
    )  # fmt: skip
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    return done.returncode, json.loads(done.stdout)


def _show(tmp_path: Path, session_id: str) -> dict[str, Any]:
    shown = run_keen("sessions", "show", session_id, "--json", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr[-3000:]
    logs = run_keen("sessions", "logs", session_id, cwd=tmp_path)
    assert logs.returncode == 0, logs.stderr[-3000:]
    assert "session.finished" in logs.stdout
    data: dict[str, Any] = json.loads(shown.stdout)
    assert data["status"] != "running"
    return data


def _finished(shown: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [e["data"] for e in shown["events"] if e["type"] == "tool.finished" and e["data"]["name"] == name]


def _nested(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = {"a": value}
    return value


def test_a_tool_input_nested_300_deep_is_refused_and_the_session_goes_on(
    tmp_path: Path, workspace: Path
) -> None:
    turns = [
        turn(call("read_files", paths=["README.md"], extra=_nested(300))),
        turn(
            call(
                "write_files",
                path="deep.json",
                content="{}",
                files=[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["x"]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]],
            )
        ),
        complete("survived deep input"),
    ]

    code, result = _breathe(tmp_path, turns)

    assert code == 0 and result["status"] == "completed"
    shown = _show(tmp_path, result["session_id"])
    refused = _finished(shown, "read_files")[0]
    assert not refused["ok"] and "nested more than 32 levels" in refused["error"]
    assert not _finished(shown, "write_files")[0]["ok"]
    assert not (workspace / "deep.json").exists()


def test_a_lone_surrogate_is_stored_as_valid_text_and_refused_as_tool_input(
    tmp_path: Path, workspace: Path
) -> None:
    turns = [
        turn(call("write_files", path="s.txt", content="a\ud800b"), text="a lone \udc00 half"),
        turn(call("report_complete", summary="done \ud800")),
        complete("done properly"),
    ]

    code, result = _breathe(tmp_path, turns)

    assert code == 0 and result["summary"] == "done properly"
    shown = _show(tmp_path, result["session_id"])
    write = _finished(shown, "write_files")[0]
    assert not write["ok"] and "content: " in write["error"] and "not valid Unicode" in write["error"]
    assert not _finished(shown, "report_complete")[0]["ok"]
    started = next(e for e in shown["events"] if e["type"] == "tool.started")
    assert started["data"]["input"]["content"] == "a\ufffdb"
    assert any(
        e["data"].get("text") == "a lone \ufffd half"
        for e in shown["events"]
        if e["type"] == "model.responded"
    )
    assert not (workspace / "s.txt").exists()


def test_reading_a_hundred_files_of_10_mib_is_bounded_per_call_and_stored_cut(
    tmp_path: Path, workspace: Path, keen_home: Path
) -> None:
    big = workspace / "big"
    big.mkdir()
    (big / "f0.txt").write_bytes((b"x" * 1023 + b"\n") * (10 * 1024))
    for i in range(1, 100):  # hard links: a hundred 10 MiB files on 10 MiB of disk
        os.link(big / "f0.txt", big / f"f{i}.txt")
    paths = [f"big/f{i}.txt" for i in range(100)]
    turns = [turn(call("read_files", paths=paths, max_bytes=10 * MIB)), complete("read them")]

    code, result = _breathe(tmp_path, turns)

    assert code == 0 and result["status"] == "completed"
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    assert peak_kib < 600 * 1024, f"keen peaked at {peak_kib // 1024} MiB"
    shown = _show(tmp_path, result["session_id"])
    output = _finished(shown, "read_files")[0]["output"]
    assert output["files"][0]["size"] == 10 * MIB
    assert "characters cut by keen" in output["files"][0]["content"]
    assert all("not read" in entry["error"] for entry in output["files"][1:])
    db = sqlite3.connect(keen_home / "keen.db")
    largest = db.execute("select max(length(data)) from session_events").fetchone()[0]
    assert largest < 200_000


def test_a_catastrophic_regex_neither_spins_nor_blocks_sigterm(
    tmp_path: Path, workspace: Path, keen_home: Path
) -> None:
    (workspace / "big").mkdir()
    (workspace / "big" / "a.txt").write_text("a" * 50_000 + "!\n")
    script = write_script(
        tmp_path / "script.json",
        [
            turn(call("search_files", pattern="(a+)+$", path="big/a.txt")),
            turn(call("report_complete", summary="late"), delay_ms=60_000),
        ],
    )
    code, waited, err, session_id = _signal_during_a_tool(tmp_path, keen_home, script, signal.SIGTERM)

    assert waited < 15 and code == 130
    assert "Traceback" not in err, err[-3000:]
    shown = _show(tmp_path, session_id)
    assert shown["status"] == "cancelled"
    search = _finished(shown, "search_files")[0]
    assert search["ok"] and search["output"]["count"] == 0


def test_a_long_search_stops_when_keen_is_interrupted(
    tmp_path: Path, workspace: Path, keen_home: Path
) -> None:
    data = workspace / "data"  # searched, so not ignored: committed
    data.mkdir()
    (data / "f0.txt").write_text("x\n" * 1_000_000 + "needle\n")  # passes the whole-file test
    for i in range(1, 20):
        os.link(data / "f0.txt", data / f"f{i}.txt")
    git(workspace, "add", "-A")
    git(workspace, "commit", "-q", "-m", "data")
    script = write_script(
        tmp_path / "script.json", [turn(call("search_files", pattern="^needle$", path="data")), complete()]
    )
    code, waited, _, session_id = _signal_during_a_tool(tmp_path, keen_home, script, signal.SIGINT)

    assert code == 130 and waited < 10
    assert _show(tmp_path, session_id)["status"] == "cancelled"


def _signal_during_a_tool(
    tmp_path: Path, keen_home: Path, script: Path, sig: signal.Signals
) -> tuple[int, float, str, str]:
    """Run the script, send `sig` a second after the first tool started: exit code, seconds
    keen took to exit after it, stderr, session id."""
    proc = start_keen(
        ["breathe", "work until interrupted", "--model", f"scripted:{script}", "--dir", "repo"], tmp_path
    )
    db_path = keen_home / "keen.db"
    try:
        wait_for(lambda: event_count(db_path, "tool.started") >= 1, timeout=60)
        time.sleep(1.0)
        sent = time.monotonic()
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
        waited = time.monotonic() - sent
    finally:
        proc.kill()
    session_id = sqlite3.connect(db_path).execute("select id from sessions").fetchone()[0]
    return proc.returncode, waited, err, session_id
