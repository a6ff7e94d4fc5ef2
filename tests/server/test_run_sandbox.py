"""The sandbox of server runs, through a real `keen serve`: a scripted command of one user's run
tries to read another session's workspace, the server's database, its secret key and its
process environment, and to write outside its workspace; every attempt fails."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from helpers import call, complete, turn, write_script
from runkit import RUN_ENV, events_of, execute, grant, sign_up, wait_finished
from serverkit import Server

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed"),
]
PROVIDER_KEY = "sk-ant-test-0123456789abcdefghijklmnop"
THEIR_SECRET = "their-private-notes-4d1f"


def probe(home: Path, other_workspace: Path, server_pid: int, *, writes: bool = True) -> str:
    """A shell script printing ESCAPED:<what> for each attempt that works, then `probed`."""
    reads = {
        "other-workspace": f"cat {other_workspace}/notes.txt",
        "other-workspace-listing": f"ls {other_workspace}",
        "keen-db": f"head -c 64 {home}/keen.db",
        "secret-key": f"cat {home}/secret.key",
        "server-environ": f"cat /proc/{server_pid}/environ",
        "server-cmdline": f"cat /proc/{server_pid}/cmdline",
    }
    targets = (
        {}
        if not writes
        else {
            "write-keen-home": f"{home}/planted.txt",
            "write-other-workspace": f"{other_workspace}/planted.txt",
            "write-system": "/usr/planted.txt",
        }
    )
    lines = [
        f'out=$({command} 2>/dev/null) && [ -n "$out" ] && echo "ESCAPED:{name}"'
        for name, command in reads.items()
    ]
    lines += [f'(echo x > {target}) 2>/dev/null && echo "ESCAPED:{name}"' for name, target in targets.items()]
    lines += [
        'env | grep -q -e KEEN_ -e ANTHROPIC_API_KEY && echo "ESCAPED:environment"',
        'echo "probed"',
    ]
    return "\n".join(lines)


def test_a_command_of_a_server_run_sees_no_other_workspace_no_keen_home_and_no_server_process(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    env = {k: v for k, v in RUN_ENV.items() if k != "KEEN_SECRET_KEY"}  # the secret lives in secret.key
    server = Server(home, {**env, "ANTHROPIC_API_KEY": PROVIDER_KEY})
    try:
        server.wait_live()
        ready = httpx.get(f"{server.url}/health/ready").json()
        assert ready["checks"]["sandbox"]["ok"] and "bubblewrap" in ready["checks"]["sandbox"]["detail"]

        theirs, their_id = sign_up(server.url, "them@example.org")
        grant(home, their_id, "10")
        notes = write_script(
            tmp_path / "notes.json",
            [turn(call("write_files", files=[{"path": "notes.txt", "content": THEIR_SECRET}])), complete()],
        )
        their_session = execute(server.url, theirs, notes, vision="keep private notes here")
        assert wait_finished(server.url, theirs, their_session["id"])["status"] == "completed"
        their_workspace = home / "workspaces" / their_id / their_session["id"]
        assert (their_workspace / "notes.txt").read_text() == THEIR_SECRET

        mine, my_id = sign_up(server.url, "me@example.org")
        grant(home, my_id, "10")
        script = write_script(
            tmp_path / "probe.json",
            [turn(call("run_command", command=probe(home, their_workspace, server.pid))), complete()],
        )
        session = execute(server.url, mine, script, vision="look around the machine")
        assert wait_finished(server.url, mine, session["id"])["status"] == "completed"
        events = events_of(server.url, mine, session["id"])
    finally:
        server.stop()

    output = next(e["data"]["output"] for e in events if e["type"] == "tool.finished")
    assert output["stdout"].strip().endswith("probed"), output
    assert "ESCAPED" not in output["stdout"], output["stdout"]
    assert not (home / "planted.txt").exists()
    assert not (their_workspace / "planted.txt").exists()
    assert not Path("/usr/planted.txt").exists()
    stored = str(events)
    assert THEIR_SECRET not in stored and PROVIDER_KEY not in stored
    assert (home / "secret.key").read_text().strip() not in stored
    # The probe finds what is there when nothing contains it.
    bare = subprocess.run(
        ["bash", "-c", probe(home, their_workspace, os.getpid(), writes=False)],
        capture_output=True,
        text=True,
    )
    for found in ("other-workspace", "keen-db", "secret-key", "server-environ"):
        assert f"ESCAPED:{found}\n" in bare.stdout, bare.stdout
