"""Issue 9, item 3: agent commands run in bubblewrap, and what agents run still works in there.

The workspace is read-write; the system is read-only; /tmp and the home are the session's own;
the command has its own PID namespace; the network is on unless turned off. Where bwrap cannot
run, keen falls back, says so once per session and in `keen status`; server modes refuse that.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import threading
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import call, complete, git, run_keen, summon, turn
from keen.agent.worktrees import worktrees_root
from keen.config import Settings, reset_settings_cache
from keen.errors import ConfigError
from security.attack import AgentCall

bwrap_only = pytest.mark.usefixtures("bwrap_only")


@bwrap_only
async def test_writing_to_the_system(agent_call: AgentCall) -> None:
    target = Path("/usr/local") / f"keen-probe-{uuid.uuid4().hex}"
    try:
        result = await agent_call("run_command", {"command": f"touch {target}; echo rc=$?"})
        assert "rc=0" not in result.output["stdout"]
        assert "Read-only file system" in result.output["stderr"]
        assert not target.exists()
    finally:
        target.unlink(missing_ok=True)


@bwrap_only
async def test_reading_and_writing_the_hosts_tmp(agent_call: AgentCall) -> None:
    host_file = Path("/tmp") / f"keen-host-{uuid.uuid4().hex}"
    made = Path("/tmp") / f"keen-made-{uuid.uuid4().hex}"
    host_file.write_text("another program's temporary data\n")
    try:
        result = await agent_call(
            "run_command", {"command": f"cat {host_file}; echo made > {made} && cat {made}"}
        )
        assert "another program's temporary data" not in result.output["stdout"]
        assert result.output["stdout"] == "made\n"  # the command has a /tmp, of its own
        assert not made.exists()
    finally:
        host_file.unlink(missing_ok=True)
        made.unlink(missing_ok=True)


@bwrap_only
async def test_seeing_keens_own_process(agent_call: AgentCall) -> None:
    probe = f"test -d /proc/{os.getpid()} && echo KEEN-VISIBLE; ls /proc | grep -c '^[0-9]'"

    result = await agent_call("run_command", {"command": probe})

    assert "KEEN-VISIBLE" not in result.output["stdout"]
    assert int(result.output["stdout"].split()[-1]) < 10  # its own namespace: bwrap, bash, ls, grep


def tiny_wheel(directory: Path) -> Path:
    """A pure-Python wheel built by hand: installing it needs no index and no build backend."""
    files = {
        "tiny/__init__.py": b"VALUE = 'installed in the sandbox'\n",
        "tiny-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: tiny\nVersion: 1.0\n",
        "tiny-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append("tiny-1.0.dist-info/RECORD,,")
    wheel = directory / "tiny-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
        archive.writestr("tiny-1.0.dist-info/RECORD", "\n".join(record) + "\n")
    return wheel


@bwrap_only
@pytest.mark.slow
async def test_venv_and_pip_install_work_inside(
    agent_call: AgentCall, workspace: Path, keen_home: Path
) -> None:
    tiny_wheel(workspace)
    command = (
        "python3 -m venv .venv && .venv/bin/pip install -q --no-index --disable-pip-version-check "
        "tiny-1.0-py3-none-any.whl && .venv/bin/python -c 'import tiny; print(tiny.VALUE)' && "
        ".venv/bin/pip cache dir"
    )

    result = await agent_call("run_command", {"command": command, "timeout_seconds": 300})

    assert result.output["exit_code"] == 0, result.output["stderr"]
    lines = result.output["stdout"].splitlines()
    assert lines[0] == "installed in the sandbox"
    assert lines[-1].startswith(str(keen_home / "sandbox"))  # pip's cache: in the session's home


@bwrap_only
async def test_git_and_pytest_work_inside(agent_call: AgentCall, workspace: Path) -> None:
    (workspace / "test_probe.py").write_text("def test_probe():\n    assert 1 + 1 == 2\n")
    command = (
        "git checkout -q -b probe && git add test_probe.py && git commit -qm 'add a test' && "
        "git log --format=%s -1 && python -m pytest -q -p no:cacheprovider test_probe.py"
    )

    result = await agent_call("run_command", {"command": command, "timeout_seconds": 120})

    assert result.output["exit_code"] == 0, result.output["stderr"]
    assert result.output["stdout"].startswith("add a test\n")
    assert "1 passed" in result.output["stdout"]
    assert git(workspace, "log", "--format=%s", "-1", "probe").strip() == "add a test"


@bwrap_only
async def test_home_is_the_sessions_own(agent_call: AgentCall, workspace: Path, keen_home: Path) -> None:
    result = await agent_call("run_command", {"command": "echo $HOME; touch ~/.probe && echo WRITABLE"})

    home, writable = result.output["stdout"].splitlines()
    assert writable == "WRITABLE"
    assert Path(home).is_relative_to(keen_home / "sandbox") and (Path(home) / ".probe").exists()
    assert not Path(home).is_relative_to(workspace)


@pytest.fixture
def listening() -> Iterator[int]:
    """A TCP port on the host's loopback that accepts connections."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(30)

    def accept() -> None:
        try:
            while True:
                server.accept()[0].close()
        except OSError:
            return

    threading.Thread(target=accept, daemon=True).start()
    yield server.getsockname()[1]
    server.close()


def connect(port: int) -> str:
    return (
        "python3 -c \"import socket; socket.create_connection(('127.0.0.1', "
        f"{port}), timeout=5); print('CONNECTED')\""
    )


@bwrap_only
async def test_network_is_on_by_default(agent_call: AgentCall, listening: int) -> None:
    result = await agent_call("run_command", {"command": connect(listening)})

    assert result.output["stdout"] == "CONNECTED\n", result.output["stderr"]


@bwrap_only
async def test_network_turned_off_is_off(
    agent_call: AgentCall, listening: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEEN_SANDBOX_NETWORK", "false")
    reset_settings_cache()

    result = await agent_call("run_command", {"command": connect(listening)})

    assert "CONNECTED" not in result.output["stdout"]
    assert result.output["exit_code"] != 0 and "Error" in result.output["stderr"]


async def test_fallback_says_so_once_per_session(
    agent_call: AgentCall, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEEN_BWRAP", "/nonexistent/bwrap")
    reset_settings_cache()

    first = await agent_call("run_command", {"command": "true"})
    second = await agent_call("run_command", {"command": "true"})
    git_call = await agent_call("git", {"action": "status"})

    assert "sandbox is degraded" in first.output["sandbox"]
    assert "bubblewrap (/nonexistent/bwrap) is not installed" in first.output["sandbox"]
    assert "sandbox" not in second.output and "sandbox" not in git_call.output


async def test_keen_sandbox_bwrap_where_it_cannot_run_is_a_clear_error(
    agent_call: AgentCall, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEEN_SANDBOX", "bwrap")
    monkeypatch.setenv("KEEN_BWRAP", "/nonexistent/bwrap")
    reset_settings_cache()

    result = await agent_call("run_command", {"command": "echo should not run"})

    assert not result.ok
    assert "KEEN_SANDBOX=bwrap" in result.error and "not installed" in result.error


def test_keen_status_shows_the_sandbox_in_use(tmp_path: Path) -> None:
    def sandbox(**env: str) -> str:
        # With a key for the default model, so that status has no problem to exit 2 for.
        status = run_keen(
            "status", "--json", cwd=tmp_path, env={"ANTHROPIC_API_KEY": "sk-test-0123456789", **env}
        )
        assert status.returncode == 0, status.stderr
        return str(json.loads(status.stdout)["sandbox"])

    assert sandbox(KEEN_BWRAP="/nonexistent/bwrap").startswith("fallback: bubblewrap (/nonexistent/bwrap)")
    assert sandbox(KEEN_SANDBOX="none").startswith("none (KEEN_SANDBOX=none)")


@bwrap_only
def test_keen_status_shows_bubblewrap_and_its_network(tmp_path: Path) -> None:
    on = json.loads(run_keen("status", "--json", cwd=tmp_path).stdout)["sandbox"]
    off = json.loads(run_keen("status", "--json", cwd=tmp_path, env={"KEEN_SANDBOX_NETWORK": "false"}).stdout)

    assert on.startswith("bubblewrap (network on")
    assert off["sandbox"].startswith("bubblewrap (network off")


def test_server_mode_refuses_to_run_commands_without_bubblewrap(keen_home: Path) -> None:
    from keen.tools.sandbox import require_sandbox

    missing = Settings(KEEN_HOME=keen_home, KEEN_BWRAP="/nonexistent/bwrap")
    operator_opted_out = Settings(KEEN_HOME=keen_home, KEEN_BWRAP="/nonexistent/bwrap", KEEN_SANDBOX="none")

    for mode in ("server", "distributed"):
        with pytest.raises(ConfigError, match="KEEN_SANDBOX=none"):
            require_sandbox(missing, mode)  # type: ignore[arg-type]
        assert require_sandbox(operator_opted_out, mode).kind == "none"  # type: ignore[arg-type]
    assert require_sandbox(missing, "local").kind == "fallback"


@bwrap_only
def test_childs_worktree_is_visible_and_writable_to_the_child(
    breathe, tmp_path: Path, keen_home: Path
) -> None:
    child_work = (
        "pwd && echo made > child.txt && git add child.txt && git commit -qm 'child commit' && "
        "git log --format=%s -1"
    )

    run = breathe(
        agents={
            "main": [turn(summon("commit a file from a command", "general")), complete()],
            "summon-A": [turn(call("run_command", command=child_work)), complete("committed")],
        }
    )

    child = next(t["output"] for t in run.tools if t["name"] == "run_command")
    assert child["exit_code"] == 0, child["stderr"]
    assert child["stdout"].splitlines()[0].startswith(str(worktrees_root(keen_home)))
    assert child["stdout"].splitlines()[-1] == "child commit"
    assert (tmp_path / "w" / "child.txt").read_text() == "made\n"  # merged into the parent


@bwrap_only
async def test_forged_dot_git_file_makes_a_host_directory_writable(
    agent_call: AgentCall, workspace: Path, outside_tmp: Path
) -> None:
    """A child's worktree has a `.git` file naming its repository, which the sandbox binds
    writable. Inside, `.git` cannot be swapped out; one forged before (or with the sandbox
    off), even with git's layout forged around it, binds nothing."""
    swap = await agent_call("run_command", {"command": "mv .git .git-real"})
    assert swap.output["exit_code"] != 0 and (workspace / ".git").is_dir()
    (workspace / ".git").rename(workspace / ".git-real")
    fake = workspace / "fake" / "worktrees" / "x"
    fake.mkdir(parents=True)
    (fake / "gitdir").write_text(f"{workspace}/.git\n")
    (fake / "commondir").write_text(f"{outside_tmp}\n")

    for forged in (f"gitdir: {fake}\n", f"gitdir: {outside_tmp}\n"):
        (workspace / ".git").write_text(forged)
        await agent_call("run_command", {"command": f"echo pwned > {outside_tmp}/pwned.txt"})

        assert not (outside_tmp / "pwned.txt").exists()


@bwrap_only
async def test_project_tests_run_by_validation_read_keen_home(
    outside_tmp: Path, monkeypatch: pytest.MonkeyPatch, workspace: Path
) -> None:
    from keen.validation import validate_project

    home = outside_tmp / "keen-home"
    home.mkdir()
    (home / "keen.db").write_bytes(b"SQLite format 3\x00 every session of this person")
    monkeypatch.setenv("KEEN_HOME", str(home))
    reset_settings_cache()
    (workspace / "test_steal.py").write_text(
        "from pathlib import Path\n\n\ndef test_steal():\n"
        f"    Path('leak.txt').write_bytes(Path({str(home / 'keen.db')!r}).read_bytes())\n"
    )

    await validate_project(workspace, categories=["tests"])

    assert not (workspace / "leak.txt").exists()


def test_keens_own_python_under_tmp_stays_visible_read_only_in_the_sandbox(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A checkout with its venv under /tmp (the sandbox's /tmp is private) keeps its tools."""
    import sys

    from keen.tools import sandbox

    monkeypatch.setattr(sys, "prefix", "/tmp/some-checkout/.venv")
    assert sandbox._own_python()[:3] == ["--ro-bind", "/tmp/some-checkout/.venv", "/tmp/some-checkout/.venv"]
    monkeypatch.setattr(sys, "prefix", "/opt/keen/.venv")
    monkeypatch.setattr(sys, "base_prefix", "/usr")
    assert sandbox._own_python() == []
