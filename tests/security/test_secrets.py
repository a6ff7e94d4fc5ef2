"""Issue 9, item 1: an agent command must not get at keen's secrets, and none may be stored.

keen runs as a real process holding `ANTHROPIC_API_KEY` in its environment; each test is one way
a command was seen to reach it. A leak would sit in the event log, so that is what is checked:
neither the key nor its variable name (nor the redaction marker, which would mean the command
did read it) may appear there.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from helpers import call, complete, run_keen, turn
from security.attack import REDACTED, SECRET, AgentCall, commands

pytestmark = pytest.mark.usefixtures("bwrap_only")


def assert_nothing_leaked(text: str) -> None:
    assert SECRET not in text
    assert "ANTHROPIC_API_KEY" not in text
    assert REDACTED not in text  # redaction is the second line; the first is that nothing is read


def test_cat_proc_ppid_environ(breathe) -> None:
    run = breathe(commands("cat /proc/$PPID/environ | tr '\\0' '\\n'"))

    assert run.tools[0]["ok"]
    assert_nothing_leaked(run.output())


def test_cat_proc_star_environ(breathe) -> None:
    # Filtered as an attacker would: the whole listing would be cut to fit a tool result.
    run = breathe(commands("cat /proc/*/environ | tr '\\0' '\\n' | grep -a 'ANTHROPIC[_]API_KEY'"))

    assert_nothing_leaked(run.output())


def test_ps_eww(breathe) -> None:
    run = breathe(commands("ps axeww | grep -a 'ANTHROPIC[_]API_KEY'; ps axeww | wc -l"))

    assert int(run.output().split()[-1]) >= 2  # ps ran and listed the command's own processes
    assert_nothing_leaked(run.output())


def test_walking_up_the_ancestors_environ(breathe) -> None:
    walk = (
        "p=$$; while [ \"$p\" -gt 1 ]; do echo \"== $p\"; tr '\\0' '\\n' < /proc/$p/environ; "
        "p=$(sed 's/.*) //' /proc/$p/stat | cut -d' ' -f2); done"
    )
    run = breathe(commands(walk))

    assert "== " in run.output()
    assert_nothing_leaked(run.output())


def test_keen_db_through_proc_ppid_fd(breathe) -> None:
    fds = 'ls -l /proc/$PPID/fd/; for f in /proc/$PPID/fd/*; do timeout 1 head -c 16 "$f"; done'
    run = breathe(commands(fds))

    assert "keen.db" not in run.output()
    assert "SQLite format 3" not in run.output()


def test_reading_keen_home_directly(breathe, outside_tmp: Path) -> None:
    home = outside_tmp / "keen-home"
    home.mkdir()
    (home / "auth.json").write_text('{"refresh_token": "person-refresh-token-1234"}')

    run = breathe(
        commands(f"ls -la {home}", f"head -c 16 {home}/keen.db; cat {home}/auth.json; echo END"),
        env={"KEEN_HOME": str(home)},
    )

    assert (home / "keen.db").exists()
    assert "keen.db" not in run.output(0) and "auth.json" not in run.output(0)
    assert "END" in run.output(1)
    assert "SQLite format 3" not in run.output(1) and "person-refresh-token-1234" not in run.output(1)


def test_reading_other_sessions_worktrees_and_workspaces(breathe, outside_tmp: Path) -> None:
    home = outside_tmp / "keen-home"
    other_worktree = home / "worktrees" / "0ther5e5" / "summon-A"
    other_workspace = home / "workspaces" / "someone-else"
    for path in (other_worktree, other_workspace):
        path.mkdir(parents=True)
        (path / "private.txt").write_text("another session's private work\n")

    run = breathe(
        commands(f"cat {other_worktree}/private.txt {other_workspace}/private.txt", f"ls -R {home}"),
        env={"KEEN_HOME": str(home)},
    )

    assert "another session's private work" not in run.output(0)
    assert "0ther5e5" not in run.output(1) and "someone-else" not in run.output(1)


def test_reading_keens_database_outside_keen_home(breathe, outside_tmp: Path) -> None:
    database = outside_tmp / "data" / "keen.db"
    database.parent.mkdir()
    url = f"sqlite+aiosqlite:///{database}"

    run = breathe(commands(f"head -c 16 {database}; echo END"), env={"KEEN_DATABASE_URL": url})

    assert database.read_bytes().startswith(b"SQLite format 3")
    assert "END" in run.output() and "SQLite format 3" not in run.output()


def test_reading_a_named_env_file(breathe, outside_tmp: Path) -> None:
    env_file = outside_tmp / "keen.env"
    env_file.write_text("OPENAI_API_KEY=sk-named-file-secret-0123456789\n")

    run = breathe(commands(f"cat {env_file}; echo END"), env={"KEEN_ENV_FILE": str(env_file)})

    assert "END" in run.output()
    assert "sk-named-file-secret-0123456789" not in run.output()


def test_keen_home_inside_the_workspace(breathe, tmp_path: Path) -> None:
    workspace = tmp_path / "w"
    home = workspace / ".keen"
    home.mkdir(parents=True)
    (workspace / ".gitignore").write_text(".keen/\n")

    run = breathe(
        commands(f"ls -a {home}; head -c 16 {home}/keen.db; echo END"),
        env={"KEEN_HOME": str(home)},
        workspace=workspace,
    )

    assert "END" in run.output()
    assert "SQLite format 3" not in run.output()


def test_workspace_dotenv_is_read_as_keens_configuration(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / ".env").write_text(
        "ANTHROPIC_BASE_URL=http://attacker.invalid\nKEEN_MODEL=openai:attacker-model\n"
    )

    status = run_keen("status", "--verbose", "--json", cwd=project, env={"ANTHROPIC_API_KEY": SECRET})

    config = json.loads(status.stdout)["config"]
    assert config["ANTHROPIC_BASE_URL"] is None
    assert config["KEEN_MODEL"] == "anthropic:claude-sonnet-5-5"


def test_keen_home_env_and_named_env_files_are_still_read(tmp_path: Path, keen_home: Path) -> None:
    (keen_home / ".env").write_text("KEEN_MODEL=openai:from-keen-home\nANTHROPIC_BASE_URL=http://home\n")
    named = tmp_path / "team.env"
    named.write_text("KEEN_MODEL=openai:from-named-file\n")

    status = run_keen("status", "--verbose", "--json", cwd=tmp_path, env={"KEEN_ENV_FILE": str(named)})
    missing = run_keen("status", cwd=tmp_path, env={"KEEN_ENV_FILE": str(tmp_path / "nope.env")})

    config = json.loads(status.stdout)["config"]
    assert config["KEEN_MODEL"] == "openai:from-named-file"  # a named file wins over $KEEN_HOME/.env
    assert config["ANTHROPIC_BASE_URL"] == "http://home"
    assert missing.returncode == 2 and "nope.env" in missing.stderr


def test_secret_found_in_a_file_reaches_the_event_log(breathe, tmp_path: Path) -> None:
    workspace = tmp_path / "w"
    workspace.mkdir()
    (workspace / "settings.py").write_text(f"API_KEY = {SECRET!r}\n")

    run = breathe(
        turn(call("read_files", paths=["settings.py"]), call("run_command", command="grep -r API_KEY .")),
        workspace=workspace,
    )

    stored = json.dumps(run.tools)
    assert SECRET not in stored
    assert stored.count(REDACTED) == 2


async def test_secret_in_any_tool_result_is_redacted(agent_call: AgentCall, workspace: Path) -> None:
    (workspace / "notes.txt").write_text(f"the key is {SECRET}\n")

    read = await agent_call("read_files", {"paths": ["notes.txt"]})
    missing = await agent_call("edit_file", {"path": f"{SECRET}.txt", "old_text": "a", "new_text": "b"})

    assert SECRET not in json.dumps(read.output) and REDACTED in json.dumps(read.output)
    assert not missing.ok
    assert SECRET not in f"{missing.error}{missing.output}" and REDACTED in f"{missing.error}"


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root to switch users")
def nobodys_python() -> str:
    """An interpreter the user `nobody` may run: this one, or the system's of the same version."""
    for candidate in (sys.executable, f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"):
        probe = [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "/bin/sh",
            "-c",
            f'test -x "{candidate}"',
        ]
        if subprocess.run(probe, check=False).returncode == 0:
            return candidate
    pytest.skip("no Python interpreter that the user nobody can run")


def test_fallback_proc_ppid_environ_of_a_same_user_keen() -> None:
    """Where bwrap cannot run, keen is non-dumpable: a command running as the same (non-root)
    user cannot read its environment through /proc, its parent's or an ancestor's."""
    walk = "tr '\\0' '\\n' < /proc/$PPID/environ; p=$(cut -d' ' -f4 /proc/$PPID/stat); tr '\\0' '\\n' < /proc/$p/environ"
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        base.chmod(0o777)  # nobody's: pytest's own temp dirs are private to root
        script = base / "s.json"
        script.write_text(json.dumps([turn(call("run_command", command=walk)), complete()]))
        env = {
            "PATH": os.environ["PATH"],
            "HOME": str(base),
            "KEEN_HOME": str(base / ".keen"),
            "KEEN_BWRAP": "/nonexistent/bwrap",
            "ANTHROPIC_API_KEY": SECRET,
            "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
        }
        python = nobodys_python()

        def as_nobody(*args: str) -> subprocess.CompletedProcess[str]:
            argv = [
                "setpriv",
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                python,
                "-m",
                "keen",
                *args,
            ]
            return subprocess.run(argv, cwd=base, env=env, capture_output=True, text=True, timeout=120)

        done = as_nobody(
            "breathe", "read the environment", "--model", f"scripted:{script}", "--dir", "w", "--json"
        )
        assert done.returncode == 0, done.stderr
        shown = as_nobody("sessions", "show", json.loads(done.stdout)["session_id"], "--json")
    events = json.loads(shown.stdout)["events"]
    output = next(e["data"]["output"] for e in events if e["type"] == "tool.finished")
    assert "Permission denied" in output["stderr"]
    assert_nothing_leaked(output["stdout"] + output["stderr"])
