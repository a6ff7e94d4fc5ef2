"""run_command with real subprocesses: exit codes, timeouts and cancellation, secrets."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from helpers import sleeping, unique_sleep
from keen.secrets import REDACTED, redact, scrubbed_env
from keen.tools.context import ToolContext
from keen.tools.sandbox import policy_from_settings
from keen.tools.shell import STREAM_LIMIT


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.05)
    return predicate()


async def wait_gone(token: str) -> bool:
    """True once no `sleep <token>` runs anywhere (a killed namespace takes a moment to reap)."""
    return await until(lambda: sleeping(token) == [], timeout=5)


async def test_returns_exit_code_and_both_streams(call, root: Path) -> None:
    result = await call("run_command", {"command": "pwd; echo oops >&2; exit 3"})

    assert result.ok, result.error  # a failing command is reported, not a tool error
    out = result.output
    assert out["exit_code"] == 3
    assert out["stdout"].strip() == str(root)
    assert out["stderr"].strip() == "oops"
    assert out["timed_out"] is False
    assert isinstance(out["duration_ms"], int)


async def test_command_has_no_stdin(call) -> None:
    result = await call("run_command", {"command": "cat; echo done", "timeout_seconds": 5})

    assert result.output["stdout"] == "done\n"
    assert result.output["timed_out"] is False


def daemons(token: str) -> str:
    """A command leaving a plain background child, a `setsid` one and a double-forked one."""
    return f"sleep {token} & setsid sleep {token} & (sleep {token} &); sleep {token}"


async def test_timeout_kills_every_process_the_command_started(call, sandbox_kind: str) -> None:
    token = unique_sleep()

    result = await call("run_command", {"command": daemons(token), "timeout_seconds": 1})

    assert not result.ok
    assert "timed out after 1s" in result.error
    assert result.output["timed_out"] is True
    assert result.output["exit_code"] is None
    assert result.duration_ms < 10_000
    assert await wait_gone(token)


async def test_cancelling_a_running_command_kills_every_process_it_started(call, sandbox_kind: str) -> None:
    token = unique_sleep()
    task = asyncio.create_task(call("run_command", {"command": daemons(token)}))
    assert await until(lambda: len(sleeping(token)) >= 4)

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert await wait_gone(token)


async def test_command_runs_in_the_workspace_with_the_sandbox_in_settings(call, root: Path) -> None:
    result = await call("run_command", {"command": "pwd; cat /proc/1/cmdline"})

    assert result.output["stdout"].splitlines()[0] == str(root)
    if policy_from_settings().kind == "bwrap":
        assert "bwrap" in result.output["stdout"]  # PID 1 of the command's own namespace


async def test_long_output_is_cut_in_the_middle(call) -> None:
    command = "printf START; head -c 100000 /dev/zero | tr '\\0' x; printf END"

    result = await call("run_command", {"command": command})

    stdout = result.output["stdout"]
    assert stdout.startswith("START") and stdout.endswith("END")
    assert "characters cut by keen" in stdout
    assert len(stdout) < STREAM_LIMIT + 100


async def test_environment_has_no_keen_secrets(call, ctx: ToolContext, monkeypatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-0123456789")
    monkeypatch.setenv("KEEN_DATABASE_URL", "postgresql://keen:pw@db/keen")
    monkeypatch.setenv("KEEN_MODEL", "anthropic:some-model")
    monkeypatch.setenv("COPIED_KEY", "held-by-keen-abcdef")
    monkeypatch.setenv("SERVICE_URL", "https://user:held-by-keen-abcdef@example.com")
    monkeypatch.setenv("HARMLESS_SETTING", "visible")
    ctx.secret_values = ("held-by-keen-abcdef",)

    result = await call("run_command", {"command": "env"}, ctx)

    env_text = result.output["stdout"]
    assert "HARMLESS_SETTING=visible" in env_text
    for leaked in ("ANTHROPIC_API_KEY", "sk-ant-test-0123456789", "KEEN_", "held-by-keen-abcdef"):
        assert leaked not in env_text


def test_scrubbed_env_rules() -> None:
    environ = {
        "PATH": "/usr/bin",
        "OPENAI_API_KEY": "sk-x",
        "KEEN_HOME": "/home/u/.keen",
        "SAME": "s3cr3t-value",
        "SHORT": "abc",
        "CONTAINS_SHORT": "xxabcxx",
    }

    env = scrubbed_env(["s3cr3t-value", "abc", ""], environ)

    # "abc" is too short to be sought inside other values; empty secrets match nothing.
    assert env == {"PATH": "/usr/bin", "CONTAINS_SHORT": "xxabcxx"}


async def test_timeout_bounds_are_checked(call) -> None:
    too_long = await call("run_command", {"command": "true", "timeout_seconds": 601})
    no_command = await call("run_command", {"command": ""})

    assert not too_long.ok and "timeout_seconds" in too_long.error
    assert not no_command.ok and "command" in no_command.error


def test_scrubbed_env_defaults_to_the_process_environment(monkeypatch) -> None:
    monkeypatch.setenv("KEEN_SECRET_KEY", "k")
    monkeypatch.setenv("SOMETHING_ELSE", "1")

    env = scrubbed_env()

    assert "KEEN_SECRET_KEY" not in env
    assert env["SOMETHING_ELSE"] == "1"
    assert env["PATH"] == os.environ["PATH"]


def test_redact_replaces_every_secret_value_longest_first() -> None:
    url = "postgresql://keen:pw-0123456789@db/keen"
    text = f"url={url} password=pw-0123456789 key=sk-ant-abcdefgh short=abc"

    out = redact(text, [url, "pw-0123456789", "sk-ant-abcdefgh", "abc", ""])

    assert out == f"url={REDACTED} password={REDACTED} key={REDACTED} short=abc"


async def test_secret_in_command_output_is_redacted(call, ctx: ToolContext) -> None:
    ctx.secret_values = ("sk-ant-test-0123456789",)

    result = await call("run_command", {"command": "echo key=sk-ant-test-0123456789 >&2; echo ok"}, ctx)

    assert result.output["stderr"] == f"key={REDACTED}\n"
    assert result.output["stdout"] == "ok\n"
