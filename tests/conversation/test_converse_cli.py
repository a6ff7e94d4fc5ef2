"""`keen converse` as a person uses it: a real `keen` process on a pseudo-terminal or a pipe."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from helpers import call, complete, run_keen, sleeping, turn, unique_sleep, wait_for, write_script

QUESTION = "What does notes.txt say?"
VISION = "Create marmalade.txt containing the secret word from notes.txt.\n\nDone when the file exists."


def _script(path: Path) -> Path:
    """The conversation reads notes.txt to answer; `manifest` synthesizes the vision (one
    `converse` turn, reused by both `breathe`s since nothing new was said); the `main` agent
    does the work when `breathe` is answered with y."""
    return write_script(
        path,
        {
            "converse": [
                turn(call("read_files", paths=["notes.txt"]), text="Let me read notes.txt."),
                turn(text="notes.txt says: the secret word is marmalade."),
                turn(text=VISION),
            ],
            "main": [
                turn(call("write_files", path="marmalade.txt", content="marmalade\n")),
                complete("wrote marmalade.txt"),
            ],
        },
    )


def _converse_piped(
    directory: Path, script: Path, tmp_path: Path, typed: str, *options: str
) -> subprocess.CompletedProcess[str]:
    """`keen converse` with its input from a pipe: `typed` is what a person would type."""
    return run_keen(
        "converse",
        "--dir",
        str(directory),
        "--model",
        f"scripted:{script}",
        *options,
        cwd=tmp_path,
        input=typed,
    )


def _rows(keen_home: Path, query: str) -> list[Any]:
    return sqlite3.connect(keen_home / "keen.db").execute(query).fetchall()


def test_converse_in_a_terminal_reads_writes_a_manifest_and_breathes(
    project: Path, tmp_path: Path, keen_home: Path, terminal: Callable[..., Any]
) -> None:
    script = _script(tmp_path / "script.json")
    term = terminal("converse", "--dir", str(project), "--model", f"scripted:{script}", cwd=tmp_path)
    term.expect(r"you> ")

    term.line(QUESTION)
    term.expect(r"read_files")
    term.expect(r"keen> notes\.txt says: the secret word is marmalade\.")
    term.expect(r"you> ")

    term.line("manifest")
    written = Path(term.expect(r"Vision file written: (\S+)").group(1))
    term.expect(r"you> ")
    assert written == project / "vision.md"
    text = written.read_text()
    assert "marmalade.txt" in text and f"keen breathe -f {written}" in text
    assert "**You:** What does notes.txt say?" in text  # the discussion context

    term.line("breathe")
    term.expect(r"Create marmalade\.txt containing the secret word")
    term.expect(r"\[y/N\] ")
    term.line("n")
    term.expect(r"Not run\. Back to the conversation\.")
    term.expect(r"you> ")
    assert not (project / "marmalade.txt").exists()

    term.line("breathe")
    term.expect(r"uncommitted changes \(vision\.md\)")  # said before the question, not done silently
    term.expect(r"\[y/N\] ")
    term.line("y")
    term.expect(r"keen report")
    term.expect(r"completed")
    term.expect(r"Back to the conversation\.")
    term.expect(r"you> ")
    assert (project / "marmalade.txt").read_text() == "marmalade\n"

    term.line("exit")
    assert term.wait() == 0

    sessions = dict(_rows(keen_home, "select kind, status from sessions"))
    assert sessions == {"conversation": "completed", "agent": "completed"}
    # The agent really read the file: its content is in the stored tool result.
    outputs = _rows(
        keen_home, "select data from session_events where type = 'tool.finished' and data like '%read_files%'"
    )
    assert "The secret word is marmalade." in outputs[0][0]


def test_ctrl_c_interrupts_a_reply_and_ctrl_d_leaves_cleanly(
    project: Path, tmp_path: Path, keen_home: Path, terminal: Callable[..., Any]
) -> None:
    script = write_script(
        tmp_path / "script.json",
        {"converse": [turn(text="a very slow answer", delay_ms=30_000), turn(text="a quick answer")]},
    )
    term = terminal("converse", "--dir", str(project), "--model", f"scripted:{script}", cwd=tmp_path)
    term.expect(r"you> ")
    term.line("tell me slowly")
    term.expect(r"keen is thinking…")  # shown as the request goes out: the reply is now awaited
    term.wait_until_blocked("loop")
    term.send("\x03")  # Ctrl-C while the model is "thinking"
    term.expect(r"\(interrupted\)")
    term.expect(r"you> ")
    term.line("and now quickly")
    term.expect(r"keen> a quick answer")
    term.expect(r"you> ")
    term.send("\x04")  # Ctrl-D at an empty prompt
    assert term.wait() == 0
    assert _rows(keen_home, "select kind, status from sessions") == [("conversation", "completed")]
    messages = _rows(
        keen_home, "select data from session_events where type = 'conversation.message' order by seq"
    )
    assert [json.loads(m[0])["text"] for m in messages] == ["tell me slowly", "and now quickly"]


def test_converse_with_piped_input(project: Path, tmp_path: Path, keen_home: Path) -> None:
    script = _script(tmp_path / "script.json")
    result = _converse_piped(project, script, tmp_path, f"help\n{QUESTION}\nstatus\nclear\nexit\n")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "breathe" in out and "manifest" in out  # help lists the words
    assert "you> What does notes.txt say?" in out  # piped lines are shown as typed
    assert "the secret word is marmalade" in out
    assert "thinking" not in out  # the waiting indicator is for terminals only
    assert "local user" in out and "local (no server login" in out and "cost so far" in out
    assert "$0.0080" in out  # two scripted calls, priced
    assert "cleared" in out
    types = [
        row[0]
        for row in _rows(keen_home, "select type from session_events order by seq")
        if row[0].startswith(("conversation", "session"))
    ]
    assert types == [
        "session.created",
        "session.started",
        "conversation.message",
        "conversation.cleared",
        "session.finished",
    ]


def test_breathe_with_nothing_said_asks_for_a_message_first(project: Path, tmp_path: Path) -> None:
    script = _script(tmp_path / "script.json")
    result = _converse_piped(project, script, tmp_path, "breathe\n")
    assert result.returncode == 0, result.stderr
    assert "say what you want to build or change first" in result.stdout


def test_bad_input_exits_2_before_anything_is_created(tmp_path: Path, keen_home: Path) -> None:
    missing_dir = run_keen("converse", "--dir", "nowhere", cwd=tmp_path, input="exit\n")
    assert missing_dir.returncode == 2
    assert "does not exist" in missing_dir.stderr
    no_key = run_keen("converse", "--dir", str(tmp_path), cwd=tmp_path, input="exit\n")
    assert no_key.returncode == 2
    assert "ANTHROPIC_API_KEY" in no_key.stderr
    bad_budget = run_keen(
        "converse", "--dir", str(tmp_path), "--model", "openai:gpt-5", "--budget", "-3", cwd=tmp_path
    )
    assert bad_budget.returncode == 2 and "--budget" in bad_budget.stderr
    assert not (keen_home / "keen.db").exists()


def test_runs_started_with_breathe_use_the_limits_converse_was_given(
    project: Path, tmp_path: Path, keen_home: Path
) -> None:
    script = _script(tmp_path / "script.json")
    limits = ["--max-iterations", "1", "--run-budget", "0.25", "--max-depth", "0", "--gates", "off"]
    typed = f"{QUESTION}\nbreathe\ny\nexit\n"
    result = _converse_piped(project, script, tmp_path, typed, "--no-web-search", *limits)
    assert result.returncode == 0, result.stderr
    (options,) = _rows(keen_home, "select options from sessions where kind = 'agent'")
    stored = json.loads(options[0])
    assert (stored["max_iterations"], stored["budget"], stored["max_depth"]) == (1, "0.25", 0)
    assert (stored["gates"], stored["web_search"]) == ("off", False)
    # One model call allowed: the agent wrote the file but could not report completion.
    assert _rows(keen_home, "select status from sessions where kind = 'agent'") == [("max_iterations",)]
    assert (project / "marmalade.txt").read_text() == "marmalade\n"


def test_bad_run_limits_exit_2_before_the_conversation_starts(tmp_path: Path, keen_home: Path) -> None:
    for option, value in [("--run-budget", "lots"), ("--max-iterations", "0"), ("--gates", "loose")]:
        result = run_keen(
            "converse", "--dir", str(tmp_path), "--model", "openai:gpt-5", option, value, cwd=tmp_path
        )
        assert result.returncode == 2, (option, result.stderr)
        assert option in result.stderr
    assert not (keen_home / "keen.db").exists()


def test_ctrl_c_twice_at_the_prompt_leaves_with_130(
    project: Path, tmp_path: Path, keen_home: Path, terminal: Callable[..., Any]
) -> None:
    script = write_script(tmp_path / "script.json", {"converse": []})
    term = terminal("converse", "--dir", str(project), "--model", f"scripted:{script}", cwd=tmp_path)
    term.expect(r"you> ")
    term.wait_until_blocked("prompt")
    term.send("\x03")
    term.expect(r"Ctrl-C again, exit or Ctrl-D to leave")
    term.expect(r"you> ")
    term.wait_until_blocked("prompt")
    term.send("\x03")
    assert term.wait() == 130
    assert _rows(keen_home, "select kind, status from sessions") == [("conversation", "cancelled")]


def test_the_example_conversation_runs_offline(tmp_path: Path, keen_home: Path) -> None:
    """examples/converse.json: two messages, then `breathe` (its fourth `converse` turn is the
    vision) and `y` (its `main` list does the work)."""
    example = Path(__file__).resolve().parents[2] / "examples" / "converse.json"
    demo = tmp_path / "demo"
    demo.mkdir()
    typed = "what is in this project?\nsounds good, and reject empty names\nbreathe\ny\nexit\n"
    result = _converse_piped(demo, example, tmp_path, typed)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Create a greeter module with tests." in result.stdout
    assert (demo / "greet.py").is_file() and (demo / "test_greet.py").is_file()
    assert dict(_rows(keen_home, "select kind, status from sessions")) == {
        "conversation": "completed",
        "agent": "completed",
    }


def test_a_conversation_can_be_replayed_but_not_resumed(project: Path, tmp_path: Path) -> None:
    script = _script(tmp_path / "script.json")
    chat = _converse_piped(project, script, tmp_path, f"{QUESTION}\n")
    assert chat.returncode == 0, chat.stderr
    listed = json.loads(run_keen("sessions", "list", "--json", cwd=tmp_path).stdout)
    session_id = listed[0]["id"]
    resumed = run_keen("sessions", "resume", session_id, cwd=tmp_path)
    assert resumed.returncode == 2 and "is a conversation, not an agent session" in resumed.stderr
    replayed = run_keen("sessions", "replay", session_id, cwd=tmp_path)
    assert replayed.returncode == 0, replayed.stderr
    assert "conversation.message" in replayed.stdout and "read_files" in replayed.stdout


@pytest.mark.parametrize("during", ["prompt", "reply"])
def test_sigterm_closes_the_conversation_as_cancelled(
    during: str, project: Path, tmp_path: Path, keen_home: Path, terminal: Callable[..., Any]
) -> None:
    script = write_script(tmp_path / "script.json", {"converse": [turn(text="slow", delay_ms=30_000)]})
    term = terminal("converse", "--dir", str(project), "--model", f"scripted:{script}", cwd=tmp_path)
    term.expect(r"you> ")
    if during == "reply":
        term.line("tell me slowly")
        term.expect(r"keen is thinking…")
    term.wait_until_blocked("loop" if during == "reply" else "prompt")
    os.kill(term.pid, signal.SIGTERM)
    assert term.wait(timeout=15) == 130
    assert _rows(keen_home, "select kind, status from sessions") == [("conversation", "cancelled")]
    types = [row[0] for row in _rows(keen_home, "select type from session_events order by seq")]
    assert types[-1] == "session.finished"


def test_sigterm_during_a_breathe_run_cancels_the_run_and_leaves_the_chat(
    project: Path, tmp_path: Path, keen_home: Path, terminal: Callable[..., Any]
) -> None:
    token = unique_sleep()
    script = write_script(
        tmp_path / "script.json",
        {
            "converse": [turn(text="Sure."), turn(text=VISION)],
            "main": [turn(call("run_command", command=f"sleep {token}", timeout_seconds=300))],
        },
    )
    term = terminal("converse", "--dir", str(project), "--model", f"scripted:{script}", cwd=tmp_path)
    term.expect(r"you> ")
    term.line("make marmalade.txt")
    term.expect(r"you> ")
    term.line("breathe")
    term.expect(r"\[y/N\] ")
    term.line("y")
    wait_for(lambda: sleeping(token) != [])
    os.kill(term.pid, signal.SIGTERM)
    assert term.wait(timeout=30) == 130
    assert "Back to the conversation" not in term.text
    sessions = dict(_rows(keen_home, "select kind, status from sessions"))
    assert sessions == {"conversation": "cancelled", "agent": "cancelled"}
