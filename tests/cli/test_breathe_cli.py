"""`keen breathe` as a person runs it: a real `keen` process in a temp directory."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
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

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fizzbuzz.json"


def test_example_runs_offline_and_reports_json(tmp_path: Path, keen_home: Path) -> None:
    result = run_keen(
        "breathe",
        "add a fizzbuzz module with tests",
        "--dir",
        "demo",
        "--model",
        f"scripted:{EXAMPLE}",
        "--json",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["status"] == "completed"
    assert data["files_created"] == ["fizzbuzz.py", "test_fizzbuzz.py"]
    assert data["session_id"]
    assert (tmp_path / "demo" / "fizzbuzz.py").is_file()
    # Progress went to stderr, labelled as scripted.
    assert "scripted" in result.stderr


def test_live_output_is_labelled_scripted_and_ends_with_the_report(tmp_path: Path) -> None:
    result = run_keen(
        "breathe",
        "add a fizzbuzz module with tests",
        "--dir",
        "demo",
        "--model",
        f"scripted:{EXAMPLE}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "scripted model" in result.stdout
    assert "keen report" in result.stdout and "completed" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["breathe", ""], "too short (0 characters)"),
        (["breathe", "123456789"], "too short (9 characters)"),
        (["breathe", "-f", "missing-vision.md"], "vision file missing-vision.md does not exist"),
        (["breathe", "a long enough vision", "--model", "bogus:model"], "unknown model provider 'bogus'"),
        (
            ["breathe", "a long enough vision", "--model", "anthropic:claude-sonnet-5-5"],
            "set ANTHROPIC_API_KEY",
        ),
        (["breathe", "a long enough vision", "--model", "openai:gpt-5"], "OPENAI_API_KEY"),
        (["breathe", "a long enough vision", "--model", "scripted:nope.json"], "nope.json"),
        (["breathe", "a long enough vision", "--budget", "-1"], "--budget must be a positive"),
        (["breathe", "a long enough vision", "--gates", "lax"], "--gates must be one of"),
        (["breathe", "a long enough vision", "--phase", "DREAM"], "unknown phase 'DREAM'"),
    ],
)
def test_bad_input_exits_2_naming_the_problem_and_creates_nothing(
    tmp_path: Path, keen_home: Path, args: list[str], message: str
) -> None:
    result = run_keen(*args, "--dir", "newdir", cwd=tmp_path)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert message in result.stderr
    assert not (tmp_path / "newdir").exists()
    assert not (keen_home / "keen.db").exists()


def test_too_long_vision_is_refused(tmp_path: Path) -> None:
    vision = tmp_path / "v.md"
    vision.write_text("x" * 30_001)
    result = run_keen(
        "breathe", "-f", str(vision), "--model", f"scripted:{EXAMPLE}", "--dir", "d", cwd=tmp_path
    )
    assert result.returncode == 2
    assert "too long (30,001 characters)" in result.stderr


def test_dirty_tree_is_refused_unless_allow_dirty(repo: Path, tmp_path: Path) -> None:
    (repo / "wip.txt").write_text("mine\n")
    script = write_script(tmp_path / "s.json", [complete()])
    refused = run_keen("breathe", "finish the work in progress", "--model", f"scripted:{script}", cwd=repo)
    assert refused.returncode == 2
    assert "uncommitted change" in refused.stderr and "--allow-dirty" in refused.stderr
    allowed = run_keen(
        "breathe",
        "finish the work in progress",
        "--model",
        f"scripted:{script}",
        "--allow-dirty",
        "--json",
        cwd=repo,
    )
    assert allowed.returncode == 0, allowed.stderr
    log = subprocess.run(["git", "log", "--format=%s"], cwd=repo, capture_output=True, text=True).stdout
    assert "snapshot of uncommitted changes" in log


def test_not_a_repository_is_initialised_with_a_snapshot(tmp_path: Path) -> None:
    work = tmp_path / "plain"
    work.mkdir()
    (work / "notes.txt").write_text("hello\n")
    script = write_script(tmp_path / "s.json", [complete()])
    result = run_keen(
        "breathe", "tidy up these notes", "--model", f"scripted:{script}", "--dir", str(work), cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    files = subprocess.run(["git", "ls-files"], cwd=work, capture_output=True, text=True).stdout.split()
    assert files == ["notes.txt"]


def test_agent_not_completing_exits_1(tmp_path: Path) -> None:
    script = write_script(tmp_path / "s.json", [turn(call("get_project_tree"))] * 3)
    result = run_keen(
        "breathe",
        "explore forever",
        "--model",
        f"scripted:{script}",
        "--dir",
        "w",
        "--max-iterations",
        "2",
        "--json",
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert json.loads(result.stdout)["status"] == "max_iterations"


def test_dry_run_prints_plan_and_prompt_and_calls_no_model(tmp_path: Path, keen_home: Path) -> None:
    script = write_script(tmp_path / "s.json", [])  # an empty script: any model call would fail
    result = run_keen(
        "breathe",
        "create",
        "--model",
        f"scripted:{script}",
        "--dir",
        "w",
        "--dry-run",
        "--json",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["model"] == f"scripted:{script}"
    assert "Create a new, well-structured project" in plan["system_prompt"]  # the shorthand expanded
    assert "report_complete" in plan["tools"]
    assert not (tmp_path / "w").exists()
    assert not (keen_home / "keen.db").exists()


def test_run_command_never_sees_keens_own_api_key(tmp_path: Path) -> None:
    secret = "sk-ant-test-0123456789abcdef"
    script = write_script(tmp_path / "s.json", [turn(call("run_command", command="env")), complete()])
    result = run_keen(
        "breathe",
        "print the environment",
        "--model",
        f"scripted:{script}",
        "--dir",
        "w",
        "--json",
        cwd=tmp_path,
        env={"ANTHROPIC_API_KEY": secret, "KEEN_SECRET_KEY": "server-secret-value-123"},
    )
    assert result.returncode == 0, result.stderr
    show = run_keen("sessions", "show", json.loads(result.stdout)["session_id"], "--json", cwd=tmp_path)
    events = json.loads(show.stdout)["events"]
    env_out = next(e for e in events if e["type"] == "tool.finished")["data"]["output"]["stdout"]
    assert "PATH=" in env_out
    assert secret not in env_out and "ANTHROPIC_API_KEY" not in env_out
    assert "server-secret-value-123" not in env_out


def test_help_does_not_import_heavy_modules() -> None:
    code = (
        "import sys\n"
        "sys.argv = ['keen', '--help']\n"
        "from keen.cli.app import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & "
        "{'anthropic', 'openai', 'genai_prices', 'sqlalchemy', 'fastapi', 'alembic'})\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "HEAVY []" in out
    assert "breathe" in out and "sessions" in out


def test_ctrl_c_kills_the_running_command_and_cancels_within_3_seconds(
    tmp_path: Path, keen_home: Path
) -> None:
    token = unique_sleep()  # the command's PIDs are its sandbox's: find it from outside by its argv
    script = write_script(
        tmp_path / "s.json",
        [turn(call("run_command", command=f"sleep {token} & sleep {token}", timeout_seconds=300))],
    )
    proc = start_keen(
        ["breathe", "wait for a long time", "--model", f"scripted:{script}", "--dir", "w", "--json"], tmp_path
    )
    wait_for(lambda: len(sleeping(token)) == 2)
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=10)
    elapsed = time.monotonic() - sent
    assert proc.returncode == 130, err
    assert elapsed < 3.0, elapsed
    wait_for(lambda: sleeping(token) == [], timeout=3)
    data = json.loads(out)
    assert data["status"] == "cancelled"
    db = sqlite3.connect(keen_home / "keen.db")
    assert db.execute("select status from sessions").fetchall() == [("cancelled",)]


def test_kill_9_then_resume_completes_with_no_event_lost_or_duplicated(
    tmp_path: Path, keen_home: Path
) -> None:
    script = write_script(
        tmp_path / "s.json",
        [
            turn(call("write_files", path="one.txt", content="1\n")),
            turn(call("run_command", command="true")),
            turn(call("write_files", path="two.txt", content="2\n"), delay_ms=4_000),  # killed while waiting
            turn(call("write_files", path="three.txt", content="3\n")),
            complete("three files written"),
        ],
    )
    proc = start_keen(
        ["breathe", "write three files", "--model", f"scripted:{script}", "--dir", "w", "--json"], tmp_path
    )
    db_path = keen_home / "keen.db"
    wait_for(lambda: event_count(db_path, "tool.finished") >= 2)
    proc.kill()
    proc.wait(timeout=10)
    session_id = sqlite3.connect(db_path).execute("select id from sessions").fetchone()[0]
    status = sqlite3.connect(db_path).execute("select status from sessions").fetchone()[0]
    assert status == "running"

    resumed = run_keen("sessions", "resume", session_id[:8], "--json", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    data = json.loads(resumed.stdout)
    assert data["status"] == "completed"
    assert data["files_created"] == ["one.txt", "three.txt", "two.txt"]
    rows = (
        sqlite3.connect(db_path).execute("select seq, type, data from session_events order by seq").fetchall()
    )
    assert [r[0] for r in rows] == list(range(1, len(rows) + 1))
    types = [r[1] for r in rows]
    assert types.count("session.started") == 1 and types.count("session.resumed") == 1
    iterations = [json.loads(r[2])["iteration"] for r in rows if r[1] == "model.responded"]
    assert iterations == [1, 2, 3, 4, 5]
    written = [json.loads(r[2])["input"].get("path") for r in rows if r[1] == "tool.started"]
    assert written == ["one.txt", None, "two.txt", "three.txt", None]
    assert types[-1] == "session.finished"


def test_keen_validate_runs_the_engine_from_the_command_line(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    (project / "mod.py").write_text("def f(:\n")
    result = run_keen("validate", "--dir", str(project), "--categories", "syntax", "--json", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["overall"] == "fail"
    assert report["categories"]["syntax"]["findings"][0]["file"] == "mod.py"
    missing = run_keen("validate", "--dir", str(tmp_path / "nope"), cwd=tmp_path)
    assert missing.returncode == 2 and "nope" in missing.stderr
