"""The smaller things a new user trips on: options where people put them, stdin, clean errors,
titles, statuses and phases that say what is true."""

from __future__ import annotations

import io
import json
import shlex
import sqlite3
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from helpers import (
    call,
    complete,
    event_count,
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
from keen.cli.views import SessionView
from keen.events import types as ev
from keen.events.types import Event


def _event(seq: int, type_: str, data: dict[str, object]) -> Event:
    return Event(seq, "s1", "s1", None, type_, datetime.now(UTC), data)


def _breathe(cwd: Path, script: Path, *args: str, **run: Any) -> subprocess.CompletedProcess[str]:
    """`keen breathe ARGS` with the scripted model."""
    return run_keen("breathe", *args, "--model", f"scripted:{script}", cwd=cwd, **run)


def test_verbose_shows_the_agents_text_in_the_terminal_live_view() -> None:
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=120, color_system=None)
    view = SessionView(console, model="scripted:x.json", budget=1, max_iterations=5, live=True, verbose=True)
    with view:
        view.handle(_event(1, ev.SESSION_CREATED, {"vision": "v", "branch": "main"}))
        view.handle(
            _event(
                2,
                ev.MODEL_RESPONDED,
                {"iteration": 1, "text": "I will read the notes first", "tool_calls": []},
            )
        )
    assert "I will read the notes first" in screen.getvalue()
    quiet = io.StringIO()
    plain = SessionView(
        Console(file=quiet, force_terminal=True, width=120), model="m", budget=1, max_iterations=5, live=True
    )
    with plain:
        plain.handle(
            _event(1, ev.MODEL_RESPONDED, {"iteration": 1, "text": "hidden words", "tool_calls": []})
        )
    assert "hidden words" not in quiet.getvalue()


def test_no_color_is_accepted_after_the_command(tmp_path: Path) -> None:
    colour = {"FORCE_COLOR": "1", "TERM": "xterm-256color", "NO_COLOR": ""}
    coloured = run_keen("breathe", "short", cwd=tmp_path, env=colour)
    assert coloured.returncode == 2 and "\x1b[1;31m" in coloured.stderr  # a red "error:"
    after = run_keen("breathe", "short", "--no-color", cwd=tmp_path, env=colour)
    assert after.returncode == 2 and "too short" in after.stderr
    assert "\x1b[1;31m" not in after.stderr and "No such option" not in after.stderr


def test_an_unknown_status_filter_is_an_error_listing_the_statuses(tmp_path: Path) -> None:
    result = run_keen("sessions", "list", "--status", "bogus", cwd=tmp_path)
    assert result.returncode == 2
    assert "unknown session status 'bogus'" in result.stderr
    for status in ("created", "running", "interrupted", "completed", "cancelled", "max_iterations"):
        assert status in result.stderr


def test_f_dash_reads_the_vision_from_stdin(tmp_path: Path) -> None:
    script = write_script(tmp_path / "s.json", [complete()])
    vision = "a vision that arrives on standard input"
    result = _breathe(tmp_path, script, "-f", "-", "--dir", "w", "--json", input=vision)
    assert result.returncode == 0, result.stderr
    shown = json.loads(
        run_keen("sessions", "show", json.loads(result.stdout)["session_id"], "--json", cwd=tmp_path).stdout
    )
    assert shown["vision"] == vision


def test_nothing_is_printed_before_a_refusal(repo: Path, tmp_path: Path) -> None:
    (repo / "wip.txt").write_text("mine\n")
    script = write_script(tmp_path / "s.json", [complete()])
    refused = _breathe(repo, script, "finish the work in progress")
    assert refused.returncode == 2 and "uncommitted change" in refused.stderr
    assert refused.stdout == ""  # no banner, no empty live panel


def test_show_tree_draws_the_tree_once(tmp_path: Path) -> None:
    script = write_script(
        tmp_path / "s.json",
        {"main": [turn(summon("write the notes", "general")), complete()], "summon-A": [complete("noted")]},
    )
    result = _breathe(tmp_path, script, "a root with one child", "--dir", "w", "--gates", "off", "--json")
    assert result.returncode == 0, result.stderr
    shown = run_keen("sessions", "show", json.loads(result.stdout)["session_id"], "--tree", cwd=tmp_path)
    assert shown.returncode == 0
    assert shown.stdout.count("summon-A") == 1, shown.stdout
    assert "keen report" in shown.stdout


def test_a_session_whose_process_is_gone_shows_as_interrupted(tmp_path: Path, keen_home: Path) -> None:
    token = unique_sleep()
    script = write_script(
        tmp_path / "s.json",
        [turn(call("run_command", command=f"sleep {token}", timeout_seconds=600))],
    )
    proc = start_keen(
        ["breathe", "a session that is killed", "--model", f"scripted:{script}", "--dir", "w"], tmp_path
    )
    wait_for(lambda: sleeping(token) != [])
    proc.kill()
    proc.wait(timeout=10)
    short_id = sqlite3.connect(keen_home / "keen.db").execute("select short_id from sessions").fetchone()[0]
    listed = json.loads(run_keen("sessions", "list", "--json", cwd=tmp_path).stdout)
    assert [r["status"] for r in listed] == ["interrupted"]
    assert (
        json.loads(run_keen("sessions", "list", "--status", "running", "--json", cwd=tmp_path).stdout) == []
    )
    assert (
        len(
            json.loads(run_keen("sessions", "list", "--status", "interrupted", "--json", cwd=tmp_path).stdout)
        )
        == 1
    )
    shown = run_keen("sessions", "show", short_id, "--tree", cwd=tmp_path).stdout
    assert "interrupted" in shown and "running" not in shown
    assert f"keen sessions resume {short_id}" in shown
    tree = json.loads(run_keen("sessions", "show", short_id, "--json", cwd=tmp_path).stdout)["tree"]
    assert tree["status"] == "interrupted"


def test_replay_is_titled_as_a_replay(tmp_path: Path) -> None:
    script = write_script(tmp_path / "s.json", [complete("replayed")])
    result = _breathe(tmp_path, script, "a session to replay", "--dir", "w", "--json")
    session_id = json.loads(result.stdout)["session_id"]
    replay = run_keen("sessions", "replay", session_id, cwd=tmp_path)
    assert replay.returncode == 0
    assert replay.stdout.splitlines()[0].startswith(f"keen replay of session {session_id[:8]}")
    assert "keen breathe" not in replay.stdout


def test_evolve_dry_run_prints_a_command_that_runs_with_150_iterations(
    tmp_path: Path, keen_home: Path
) -> None:
    project = tmp_path / "p"
    project.mkdir()
    (project / "calc.py").write_text('"""Calc."""\n\n\ndef add(a, b):\n    """Add."""\n    return a + b\n')
    git(project, "init", "-q", "-b", "main")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "initial")
    script = write_script(tmp_path / "s.json", [complete("improved")])
    dry = run_keen(
        "evolve",
        "--dir",
        str(project),
        "--dry-run",
        "--model",
        f"scripted:{script}",
        "--json",
        cwd=tmp_path,
        timeout=300,
    )
    assert dry.returncode == 0, dry.stderr
    command = shlex.split(json.loads(dry.stdout)["run_command"])
    assert command[:2] == ["keen", "breathe"] and "--max-iterations" in command
    ran = run_keen(*command[1:], "--gates", "off", "--json", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    options = json.loads(
        sqlite3.connect(keen_home / "keen.db").execute("select options from sessions").fetchone()[0]
    )
    assert options["max_iterations"] == 150 and options["model"] == f"scripted:{script}"


def test_conversations_show_no_phase(tmp_path: Path, keen_home: Path) -> None:
    script = write_script(tmp_path / "s.json", {"converse": []})
    chat = run_keen("converse", "--model", f"scripted:{script}", cwd=tmp_path, input="exit\n")
    assert chat.returncode == 0, chat.stderr
    wait_for(lambda: event_count(keen_home / "keen.db", "session.finished") >= 1)
    (row,) = json.loads(run_keen("sessions", "list", "--json", cwd=tmp_path).stdout)
    assert row["kind"] == "conversation" and row["phase"] is None
    table = run_keen("sessions", "list", cwd=tmp_path).stdout
    assert "EXPLORE" not in table
    shown = run_keen("sessions", "show", row["id"], cwd=tmp_path).stdout
    assert "phase" not in shown and "EXPLORE" not in shown
