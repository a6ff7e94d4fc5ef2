"""Where keen works and whose commits it makes: never a repository nested in the user's, never on
a detached HEAD, and commits authored by the user with keen as the committer."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

from helpers import KEEN_BIN, call, complete, git, run_keen, turn, write_script

USER_NAME, USER_EMAIL = "Ada Lovelace", "ada@example.org"


def _log(repo: Path, fmt: str) -> list[str]:
    out = subprocess.run(
        ["git", "log", f"--format={fmt}%x00"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout
    return [entry.strip("\n") for entry in out.split("\x00") if entry.strip("\n")]


def _sessions(keen_home: Path) -> list[tuple[str, ...]]:
    db = keen_home / "keen.db"
    return sqlite3.connect(db).execute("select id from sessions").fetchall() if db.exists() else []


@pytest.fixture
def script(tmp_path: Path) -> Path:
    return write_script(tmp_path / "s.json", [complete()])


def test_a_folder_inside_a_repository_is_refused_and_nothing_is_created(
    repo: Path, script: Path, keen_home: Path
) -> None:
    result = run_keen(
        "breathe", "work in a sub folder", "--model", f"scripted:{script}", "--dir", "sub", cwd=repo
    )
    assert result.returncode == 2
    assert f"is inside the git repository {repo}" in result.stderr and f"--dir {repo}" in result.stderr
    assert not (repo / "sub").exists()
    assert _sessions(keen_home) == []
    from_inside = repo / "src"
    from_inside.mkdir()
    (from_inside / "app.py").write_text("print('hi')\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "src")
    default_dir = run_keen("breathe", "work where I stand", "--model", f"scripted:{script}", cwd=from_inside)
    assert default_dir.returncode == 2 and "is inside the git repository" in default_dir.stderr
    assert not (from_inside / ".git").exists()


def test_a_folder_the_repository_ignores_becomes_a_repository_of_its_own_and_says_so(
    repo: Path, script: Path
) -> None:
    (repo / ".gitignore").write_text("demo/\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "ignore demo")
    result = run_keen(
        "breathe", "a demo beside the project", "--model", f"scripted:{script}", "--dir", "demo", cwd=repo
    )
    assert result.returncode == 0, result.stderr
    assert f"{repo / 'demo'} is ignored by the git repository {repo}" in result.stdout
    assert (repo / "demo" / ".git").is_dir()
    assert (
        subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True).stdout
        == ""
    )


def test_a_detached_head_is_refused_before_the_run(repo: Path, script: Path, keen_home: Path) -> None:
    git(repo, "checkout", "-q", "--detach")
    result = run_keen("breathe", "work on no branch", "--model", f"scripted:{script}", cwd=repo)
    assert result.returncode == 2
    assert "HEAD is detached" in result.stderr and "git switch -c" in result.stderr
    assert _sessions(keen_home) == []
    assert len(_log(repo, "%H")) == 1


def test_dry_run_warns_that_the_real_run_would_refuse_a_dirty_tree(repo: Path, script: Path) -> None:
    (repo / "wip.txt").write_text("mine\n")
    args = ["breathe", "finish the work", "--model", f"scripted:{script}", "--dry-run"]
    shown = run_keen(*args, cwd=repo)
    assert shown.returncode == 0
    assert (
        "warning: the real run would refuse: the work tree" in shown.stderr
        and "--allow-dirty" in shown.stderr
    )
    assert "refuse" in shown.stdout  # the plan's workspace action
    plan = run_keen(*args, "--json", cwd=repo)
    assert plan.returncode == 0
    assert '"workspace_action": "refuse"' in plan.stdout and "uncommitted change" in plan.stdout
    allowed = run_keen(*args, "--allow-dirty", "--json", cwd=repo)
    assert '"workspace_action": "snapshot"' in allowed.stdout


def test_commits_are_authored_by_the_user_with_keen_as_committer(repo: Path, tmp_path: Path) -> None:
    git(repo, "config", "user.name", USER_NAME)
    git(repo, "config", "user.email", USER_EMAIL)
    (repo / "wip.txt").write_text("my own change\n")
    summary = (
        "Rewrote the configuration loader so that every setting is validated up front and reported "
        "with the variable that set it"
    )
    script = write_script(
        tmp_path / "s.json",
        [turn(call("write_files", path="loader.py", content="x = 1\n")), complete(summary)],
    )
    result = run_keen(
        "breathe",
        "validate the configuration",
        "--model",
        f"scripted:{script}",
        "--allow-dirty",
        "--gates",
        "off",
        cwd=repo,
    )
    assert result.returncode == 0, result.stderr
    final, snapshot, _initial = _log(repo, "%an <%ae>|%cn <%ce>|%s|%b")
    author, committer, subject, body = final.split("|", 3)
    assert author == f"{USER_NAME} <{USER_EMAIL}>" and committer == "keen <keen@localhost>"
    assert len(subject) <= 72 and subject.endswith(" …")
    cut = subject.removeprefix("keen: ").removesuffix(" …")
    assert summary.startswith(cut) and summary[len(cut)] == " "  # cut between two words
    assert summary in body  # the whole summary is in the body
    snapshot_author, snapshot_committer, snapshot_subject, _ = snapshot.split("|", 3)
    assert snapshot_subject == "keen: snapshot of uncommitted changes before the session"
    assert snapshot_author == f"{USER_NAME} <{USER_EMAIL}>" and snapshot_committer == "keen <keen@localhost>"


def test_keen_is_the_author_only_when_git_knows_no_user(tmp_path: Path, script: Path) -> None:
    home = tmp_path / "empty-home"
    home.mkdir()
    unknown = ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL", "EMAIL")
    env = {k: v for k, v in os.environ.items() if k not in unknown}
    env |= {"HOME": str(home), "XDG_CONFIG_HOME": str(home), "GIT_CONFIG_NOSYSTEM": "1", "NO_COLOR": "1"}
    work = tmp_path / "fresh"
    args = ["breathe", "start a fresh project", "--model", f"scripted:{script}", "--dir", str(work)]
    result = subprocess.run(
        [str(KEEN_BIN), *args, "--gates", "off"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert set(_log(work, "%an <%ae>|%cn <%ce>")) == {"keen <keen@localhost>|keen <keen@localhost>"}
