"""run_command with real subprocesses: exit codes, timeouts and cancellation, secrets."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from keen.tools.context import ToolContext
from keen.tools.shell import STREAM_LIMIT, scrubbed_env

# Leaves a background `sleep` in the group: killing only the leader would orphan it.
SPAWNS_GROUP = "echo $$; sleep 60 & sleep 60"


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


async def test_timeout_kills_the_whole_process_group(call, group_members, wait_until) -> None:
    result = await call("run_command", {"command": SPAWNS_GROUP, "timeout_seconds": 1})

    assert not result.ok
    assert "timed out after 1s" in result.error
    assert result.output["timed_out"] is True
    assert result.output["exit_code"] is None
    assert result.duration_ms < 10_000
    pgid = int(result.output["stdout"].strip())
    assert await wait_until(lambda: group_members(pgid) == [], timeout=3)


async def test_cancelling_a_running_command_kills_its_group(
    call, root: Path, group_members, wait_until
) -> None:
    task = asyncio.create_task(call("run_command", {"command": f"echo $$ > pgid.txt; {SPAWNS_GROUP}"}))
    pgid_file = root / "pgid.txt"

    def pgid() -> int | None:
        text = pgid_file.read_text().strip() if pgid_file.exists() else ""
        return int(text) if text else None

    assert await wait_until(lambda: pgid() is not None and len(group_members(pgid())) >= 2)
    group = pgid()
    assert group is not None

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert await wait_until(lambda: group_members(group) == [], timeout=3)


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
