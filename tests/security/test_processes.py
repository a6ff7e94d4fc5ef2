"""Issue 9, item 2: nothing a command starts outlives it, and a finished shell returns at once.

Each attack runs in bubblewrap and in the fallback (a subreaper where bwrap cannot run). PIDs a
sandboxed command prints are its own namespace's, so its processes are found from outside by a
`sleep` duration no other process uses.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path

import pytest

from helpers import call, event_count, sleeping, start_keen, turn, unique_sleep, wait_for, write_script
from security.attack import AgentCall

pytestmark = pytest.mark.usefixtures("sandbox_kind")


async def gone(token: str, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while sleeping(token):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def test_setsid_sleep_outlives_its_command(agent_call: AgentCall) -> None:
    token = unique_sleep()

    command = f"setsid sleep {token} > /dev/null 2>&1 & sleep 0.5; echo started"  # setsid has run

    result = await agent_call("run_command", {"command": command})

    assert result.output["stdout"] == "started\n"
    assert await gone(token, timeout=2)


DAEMON = (
    "import os, sys\n"
    "if os.fork() == 0:\n"
    "    os.setsid()\n"
    "    if os.fork() == 0:\n"
    "        os.execvp('sleep', ['sleep', sys.argv[1]])\n"
)


async def test_double_forked_daemon_outlives_its_command(agent_call: AgentCall, workspace: Path) -> None:
    token = unique_sleep()
    (workspace / "daemon.py").write_text(DAEMON)
    command = f"python3 daemon.py {token} > /dev/null 2>&1; sleep 0.5; echo started"

    result = await agent_call("run_command", {"command": command})

    assert result.output["stdout"] == "started\n"
    assert await gone(token, timeout=2)


async def test_background_child_holding_the_pipe_blocks_run_command(agent_call: AgentCall) -> None:
    token = unique_sleep()
    started = time.monotonic()

    result = await agent_call(
        "run_command", {"command": f"(setsid sleep {token} &); echo started", "timeout_seconds": 60}
    )

    assert result.ok and result.output["stdout"] == "started\n"
    assert time.monotonic() - started < 3  # not the timeout, nor a wait for the pipe to close
    assert await gone(token, timeout=2)


async def test_cancelled_command_leaves_its_daemons_running(agent_call: AgentCall) -> None:
    token = unique_sleep()
    command = f"setsid sleep {token} & (sleep {token} &); sleep {token}"
    task = asyncio.create_task(agent_call("run_command", {"command": command}))
    deadline = time.monotonic() + 10
    while len(sleeping(token)) < 3 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert len(sleeping(token)) == 3

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert await gone(token)


async def test_timed_out_command_leaves_its_daemons_running(agent_call: AgentCall) -> None:
    token = unique_sleep()
    command = f"setsid sleep {token} & (sleep {token} &); sleep {token}"

    result = await agent_call("run_command", {"command": command, "timeout_seconds": 1})

    assert result.output["timed_out"] is True
    assert await gone(token)


def daemon_session(tmp_path: Path, token: str) -> list[str]:
    script = write_script(
        tmp_path / "s.json",
        [
            turn(
                call(
                    "run_command",
                    command=f"setsid sleep {token} & (sleep {token} &); sleep {token}",
                    timeout_seconds=600,
                )
            )
        ],
    )
    return ["breathe", "start daemons and wait", "--model", f"scripted:{script}", "--dir", "w", "--json"]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl_c", "sigterm"])
def test_stopping_keen_leaves_the_commands_daemons_running(tmp_path: Path, signum: int) -> None:
    token = unique_sleep()
    proc = start_keen(daemon_session(tmp_path, token), tmp_path)
    wait_for(lambda: len(sleeping(token)) == 3)

    proc.send_signal(signum)
    out, err = proc.communicate(timeout=15)

    assert proc.returncode == 130, err
    assert json.loads(out)["status"] == "cancelled"
    wait_for(lambda: sleeping(token) == [], timeout=5)


def test_kill_9_of_keen_leaves_the_commands_daemons_running(tmp_path: Path, keen_home: Path) -> None:
    token = unique_sleep()
    proc = start_keen(daemon_session(tmp_path, token), tmp_path)
    wait_for(lambda: len(sleeping(token)) == 3)
    assert event_count(keen_home / "keen.db", "tool.started") == 1

    proc.kill()
    proc.wait(timeout=10)

    wait_for(lambda: sleeping(token) == [], timeout=5)
