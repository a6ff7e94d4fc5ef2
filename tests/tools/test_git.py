"""The git tool on real repositories."""

from __future__ import annotations

from pathlib import Path

import pytest

from keen.tools.context import ToolContext


async def test_status_defaults_to_short_branch_format(call, repo: Path) -> None:
    (repo / "new.txt").write_text("x")

    result = await call("git", {"action": "status"})

    assert result.ok, result.error
    assert result.output["command"] == "git status --short --branch"
    assert result.output["stdout"].splitlines() == ["## main", "?? new.txt"]


async def test_commit_branch_checkout_merge_flow(call, repo: Path, run_git) -> None:
    await call("write_files", {"path": "app.py", "content": "v = 1\n"})
    assert (await call("git", {"action": "add"})).ok
    committed = await call("git", {"action": "commit", "message": "add app"})
    assert committed.ok, committed.error

    created = await call("git", {"action": "checkout", "branch": "feature", "create": True})
    assert created.ok, created.error
    assert created.output["command"] == "git checkout -b feature"
    assert run_git(repo, "branch", "--show-current").strip() == "feature"

    await call("edit_file", {"path": "app.py", "old_text": "v = 1", "new_text": "v = 2"})
    await call("git", {"action": "add", "args": ["app.py"]})
    assert (await call("git", {"action": "commit", "message": "bump v"})).ok

    assert (await call("git", {"action": "checkout", "branch": "main"})).ok
    assert (repo / "app.py").read_text() == "v = 1\n"
    merged = await call("git", {"action": "merge", "branch": "feature"})
    assert merged.ok, merged.error

    assert (repo / "app.py").read_text() == "v = 2\n"
    log = await call("git", {"action": "log"})
    subjects = [line.split(" ", 1)[1] for line in log.output["stdout"].splitlines()]
    assert subjects == ["bump v", "add app", "initial"]
    branches = await call("git", {"action": "branch"})
    assert "feature" in branches.output["stdout"]


async def test_branch_action_creates_a_branch(call, repo: Path, run_git) -> None:
    result = await call("git", {"action": "branch", "branch": "topic"})

    assert result.ok, result.error
    assert "topic" in run_git(repo, "branch", "--list", "topic")


async def test_commit_needs_a_message(call, repo: Path) -> None:
    (repo / "a.txt").write_text("a")
    await call("git", {"action": "add"})

    missing = await call("git", {"action": "commit"})
    in_args = await call("git", {"action": "commit", "args": ["-m", "via args"]})

    assert not missing.ok and "message" in missing.error
    assert in_args.ok, in_args.error


async def test_reset_is_mixed_unless_hard_is_asked_for(call, repo: Path, run_git) -> None:
    (repo / "README.md").write_text("changed\n")
    run_git(repo, "add", "README.md")

    mixed = await call("git", {"action": "reset"})

    assert mixed.ok, mixed.error
    assert (repo / "README.md").read_text() == "changed\n"
    assert run_git(repo, "status", "--porcelain").strip() == "M README.md"

    hard = await call("git", {"action": "reset", "args": ["--hard"]})

    assert hard.ok, hard.error
    assert (repo / "README.md").read_text() == "hello\n"


async def test_log_defaults_to_twenty_one_line_entries(call, repo: Path, run_git) -> None:
    for i in range(25):
        run_git(repo, "commit", "-q", "--allow-empty", "-m", f"c{i}")

    default = await call("git", {"action": "log"})
    limited = await call("git", {"action": "log", "args": ["-n", "3", "--format=%s"]})

    assert len(default.output["stdout"].splitlines()) == 20
    assert limited.output["stdout"].splitlines() == ["c24", "c23", "c22"]


@pytest.mark.parametrize(
    ("action", "args"),
    [
        ("log", ["-c", "core.pager=touch /tmp/pwned"]),
        ("status", ["-C", "/"]),
        ("status", ["--git-dir=/tmp"]),
        ("diff", ["--work-tree", "/"]),
        ("diff", ["--output=../leak.diff"]),
        ("diff", ["--out=../leak.diff"]),
        ("diff", ["--no-index", "/etc/hostname", "README.md"]),
        ("commit", ["-F", "/etc/hostname"]),
    ],
)
async def test_options_that_leave_the_workspace_are_refused(
    call, repo: Path, action: str, args: list[str]
) -> None:
    result = await call("git", {"action": action, "args": args})

    assert not result.ok
    assert "not allowed" in result.error or "message file" in result.error
    assert not (repo.parent / "leak.diff").exists()


async def test_arguments_after_double_dash_are_paths(call, repo: Path) -> None:
    result = await call("git", {"action": "diff", "args": ["--", "-c"]})

    assert result.ok, result.error


async def test_failing_git_command_is_an_error_with_gits_message(call, repo: Path) -> None:
    result = await call("git", {"action": "checkout", "branch": "no-such-branch"})

    assert not result.ok
    assert "git checkout failed" in result.error
    assert "no-such-branch" in result.error
    assert result.output["exit_code"] != 0


async def test_bad_input_names_the_field(call, repo: Path) -> None:
    action = await call("git", {"action": "push"})
    branch = await call("git", {"action": "checkout", "branch": "--orphan"})
    create = await call("git", {"action": "checkout", "create": True})

    assert not action.ok and "action" in action.error
    assert not branch.ok and "branch" in branch.error
    assert not create.ok and "branch" in create.error


async def test_hooks_run_without_keen_secrets(call, ctx: ToolContext, repo: Path, monkeypatch) -> None:
    hook = repo / ".git" / "hooks" / "post-commit"
    hook.write_text('#!/bin/sh\nenv > "$(git rev-parse --show-toplevel)/hook_env.txt"\n')
    hook.chmod(0o755)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-0123456789")
    monkeypatch.setenv("ALIAS_OF_SECRET", "held-by-keen-abcdef")
    ctx.secret_values = ("held-by-keen-abcdef",)

    result = await call("git", {"action": "commit", "message": "empty", "args": ["--allow-empty"]}, ctx)

    assert result.ok, result.error
    hook_env = (repo / "hook_env.txt").read_text()
    assert "PATH=" in hook_env
    assert "sk-ant-test-0123456789" not in hook_env
    assert "held-by-keen-abcdef" not in hook_env


async def test_git_never_waits_for_an_editor(call, repo: Path, run_git, monkeypatch) -> None:
    monkeypatch.setenv("EDITOR", "sleep 60")
    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.delenv("GIT_EDITOR", raising=False)

    # -e asks git to open the editor on the message; the tool's editor accepts it as it is.
    result = await call("git", {"action": "commit", "args": ["--amend", "-e", "-m", "renamed"]})

    assert result.ok, result.error
    assert result.duration_ms < 30_000
    assert run_git(repo, "log", "-1", "--format=%s").strip() == "renamed"
