"""Helpers for tests: scripted turns, running `keen` as a real subprocess, git in temp repos."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

KEEN_BIN = Path(sys.executable).parent / "keen"


def git(cwd: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


class StubAgent:
    """AgentControl stand-in: the workspace tools never act on the agent."""

    session_id = "session-test"
    root_session_id = "session-test"
    branch_name = "main"
    depth = 0
    max_parallel = 3
    phase = "implementation"
    tree = None

    async def change_phase(self, phase: str, summary: str) -> dict[str, Any]:
        raise AssertionError("workspace tools do not change phases")

    async def request_completion(self, summary: str, success: bool, next_steps: list[str]) -> dict[str, Any]:
        raise AssertionError("workspace tools do not complete")

    async def emit(self, type: str, data: dict[str, Any]) -> None:
        raise AssertionError("workspace tools do not emit events")


def write_script(
    path: Path, agents: dict[str, list[dict[str, Any]]] | list[dict[str, Any]], **extra: Any
) -> Path:
    """A script file: a bare list is the main agent's turns; `extra` adds top-level keys."""
    if isinstance(agents, list):
        data: Any = {"agents": {"main": agents}, **extra} if extra else agents
    else:
        data = {"agents": agents, **extra}
    path.write_text(json.dumps(data))
    return path


def run_keen(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200", **(env or {})}
    return subprocess.run(
        [str(KEEN_BIN), *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input,
    )


def call(name: str, **tool_input: Any) -> dict[str, Any]:
    """A scripted tool call."""
    return {"name": name, "input": tool_input}


def summon(vision: str, specialization: str, **extra: Any) -> dict[str, Any]:
    """A scripted `summon_agent` call."""
    return call("summon_agent", vision=vision, specialization=specialization, **extra)


def turn(*calls: dict[str, Any], text: str | None = None, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"tool_calls": list(calls), **extra}
    if text is not None:
        out["text"] = text
    return out


def complete(summary: str = "done") -> dict[str, Any]:
    return turn(call("report_complete", summary=summary))


class SessionRun:
    """What an in-process session left behind: its result and its stored events."""

    def __init__(self, result: Any, events: list[Any], sessions: list[Any]) -> None:
        self.result = result
        self.events = events
        self.sessions = sessions

    def types(self) -> list[str]:
        return [e.type for e in self.events]

    def of_type(self, type_: str) -> list[Any]:
        return [e for e in self.events if e.type == type_]


async def run_session(
    workspace: Path, script: Path, vision: str = "build the thing described in the script", **options: Any
) -> SessionRun:
    """Run a whole session in this process through the same runner the CLI uses."""
    from keen.config import get_settings
    from keen.runner.options import make_options
    from keen.runner.sessions import SessionService

    settings = get_settings()
    defaults: dict[str, Any] = {
        "directory": workspace,
        "model": f"scripted:{script}",
        "max_iterations": 100,
        "budget": "50",
        "phase": "EXPLORE",
        "max_depth": 10,
        "gates": "off",
        "web_search": False,
        "allow_dirty": False,
    }
    run_options = make_options(settings, vision=vision, **{**defaults, **options})
    async with SessionService(settings) as service:
        spec = await service.create(run_options)
        result = await service.run(spec.session_id)
        events = await service.events(spec.root_session_id)
        sessions = await service.repo.tree(spec.root_session_id)
    return SessionRun(result, events, sessions)


def assert_gap_free(events: list[Any]) -> None:
    seqs = [e.seq for e in events]
    assert seqs == list(range(1, len(seqs) + 1)), f"seq is not gap-free: {seqs}"


def wait_for(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def processes_with(token: str, *, exact: bool = False) -> list[int]:
    """Live processes (zombies excluded) whose command line contains `token` (with `exact`: is
    `token`), seen from outside any sandbox: PIDs a command prints are its namespace's."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (
                (entry / "cmdline").read_bytes().rstrip(b"\0").replace(b"\0", b" ").decode(errors="replace")
            )
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if (cmdline == token if exact else token in cmdline) and state != "Z":
            found.append(int(entry.name))
    return found


def sleeping(token: str) -> list[int]:
    """The `sleep <token>` processes (not the shells or sandboxes whose command lines name them)."""
    return processes_with(f"sleep {token}", exact=True)


def wait_sleeping(token: str, timeout: float = 20) -> None:
    """Wait until a `sleep <token>` command runs (an agent's command has started)."""
    deadline = time.monotonic() + timeout
    while not sleeping(token) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sleeping(token), "the command never started"


def unique_sleep() -> str:
    """A `sleep` duration no other process uses, to find a test's processes from outside."""
    return f"300.{uuid.uuid4().int % 10**9:09d}"


def start_keen(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
    return subprocess.Popen(
        [str(KEEN_BIN), *args], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def event_count(db_path: Path, type_: str) -> int:
    if not db_path.exists():
        return 0
    try:
        return (
            sqlite3.connect(db_path)
            .execute("select count(*) from session_events where type = ?", (type_,))
            .fetchone()[0]
        )
    except sqlite3.OperationalError:
        return 0
