"""Issue 9, item 5: hooks an agent plants never run in keen's own git operations.

bubblewrap keeps `.git/hooks` and `.git/config` read-only; without it (`KEEN_SANDBOX=none`) the
agent can write them from a command. keen's commits and merges run outside any sandbox, so they
must run no hook at all (`--no-verify` skips only two of them) and no configured file system
monitor; the agent's own `git` tool calls run them, sandboxed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import call, complete, git, summon, turn
from keen.gitrepo import GitRepo
from security.attack import AgentCall

HOOKS = (
    "pre-commit",
    "prepare-commit-msg",
    "commit-msg",
    "post-commit",
    "reference-transaction",
    "post-merge",
)

UNSANDBOXED = {"KEEN_SANDBOX": "none"}  # so the agent's commands can write the hooks


def plant(hooks_dir: Path, markers: Path) -> None:
    """Hooks that each leave a marker file outside the workspace when they run."""
    hooks_dir.mkdir(parents=True, exist_ok=True)
    for name in HOOKS:
        hook = hooks_dir / name
        hook.write_text(f"#!/bin/sh\ntouch {markers}/{name}\n")
        hook.chmod(0o755)


def plant_command(markers: Path) -> str:
    """The same, as a command the agent runs inside its sandbox (its .git is writable there)."""
    lines = [
        f"printf '#!/bin/sh\\ntouch {markers}/{name}\\n' > .git/hooks/{name} && chmod +x .git/hooks/{name}"
        for name in HOOKS
    ]
    return "mkdir -p .git/hooks && " + " && ".join(lines)


@pytest.fixture
def markers(tmp_path: Path) -> Path:
    path = tmp_path / "markers"
    path.mkdir()
    return path


def test_planted_hooks_run_on_keens_final_commit(breathe, tmp_path: Path, markers: Path) -> None:
    breathe(
        turn(call("run_command", command=plant_command(markers))),
        turn(call("write_files", path="work.txt", content="the agent's work\n")),
        env=UNSANDBOXED,
    )

    workspace = tmp_path / "w"
    assert (workspace / ".git" / "hooks" / "post-commit").exists()  # planted...
    assert "work.txt" in git(workspace, "show", "--name-only", "--format=", "HEAD").split()  # ...committed
    assert sorted(p.name for p in markers.iterdir()) == []  # ...and none ran


async def test_planted_hooks_run_on_keens_commit_and_merge(tmp_path: Path, markers: Path) -> None:
    repo_path = tmp_path / "repo"
    repo_path.mkdir()
    git(repo_path, "init", "-q", "-b", "main")
    git(repo_path, "commit", "-q", "--allow-empty", "-m", "initial")
    git(repo_path, "checkout", "-q", "-b", "side")
    (repo_path / "side.txt").write_text("side\n")
    git(repo_path, "add", "-A")
    git(repo_path, "commit", "-q", "-m", "side")
    git(repo_path, "checkout", "-q", "main")
    plant(repo_path / ".git" / "hooks", markers)
    repo = GitRepo(repo_path)

    (repo_path / "main.txt").write_text("main\n")
    commit = await repo.commit_all("keen: a commit of its own")
    await repo.run("merge", "--no-ff", "--no-edit", "side")

    assert commit is not None and (repo_path / "side.txt").exists()
    assert sorted(p.name for p in markers.iterdir()) == []


def test_planted_hooks_run_when_keen_merges_a_child(breathe, tmp_path: Path, markers: Path) -> None:
    into_repository = plant_command(markers).replace(".git/", "$(git rev-parse --git-common-dir)/")
    breathe(
        agents={
            "main": [turn(summon("plant hooks from a child", "general")), complete("merged")],
            "summon-A": [
                turn(call("run_command", command=into_repository)),
                turn(call("write_files", path="child.txt", content="from the child\n")),
                complete("child work"),
            ],
        },
        env=UNSANDBOXED,
    )

    assert (tmp_path / "w" / ".git" / "hooks" / "post-merge").exists()
    assert (tmp_path / "w" / "child.txt").exists()  # committed on the child's branch and merged
    assert sorted(p.name for p in markers.iterdir()) == []


async def test_planted_fsmonitor_runs_on_keens_git(tmp_path: Path, markers: Path) -> None:
    repo_path = tmp_path / "repo"
    repo_path.mkdir()
    git(repo_path, "init", "-q", "-b", "main")
    monitor = repo_path / ".git" / "monitor.sh"
    monitor.write_text(f"#!/bin/sh\ntouch {markers}/fsmonitor\n")
    monitor.chmod(0o755)
    git(repo_path, "config", "core.fsmonitor", str(monitor))
    (repo_path / "file.txt").write_text("x\n")

    await GitRepo(repo_path).commit_all("keen: commit")

    assert sorted(p.name for p in markers.iterdir()) == []


@pytest.mark.usefixtures("bwrap_only")
async def test_agents_own_git_commit_runs_its_hooks_outside_the_sandbox(
    agent_call: AgentCall, workspace: Path, markers: Path
) -> None:
    hook = workspace / ".git" / "hooks" / "pre-commit"
    hook.write_text(f"#!/bin/sh\necho ran > hook-ran.txt\ntouch {markers}/escaped 2>/dev/null\nexit 0\n")
    hook.chmod(0o755)
    await agent_call("write_files", {"path": "a.txt", "content": "a\n"})
    await agent_call("git", {"action": "add"})

    result = await agent_call("git", {"action": "commit", "message": "agent's commit"})

    assert result.ok, result.error
    assert (workspace / "hook-ran.txt").exists()  # the agent's hook ran, inside the sandbox
    assert sorted(p.name for p in markers.iterdir()) == []  # and could not write outside it
