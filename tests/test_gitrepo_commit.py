"""`GitRepo.commit`: one commit of everything but oversized files, telling its files, its branch
and what was left out, with as few git processes as that takes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from helpers import git
from keen.gitrepo import GitRepo


@pytest.fixture
def git_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The subcommand of every git process `GitRepo.run` starts."""
    calls: list[str] = []
    original = GitRepo.run

    async def counted(self: GitRepo, *args: str, **kwargs: Any) -> Any:
        calls.append(args[0])
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(GitRepo, "run", counted)
    return calls


async def test_a_commit_tells_its_files_branch_and_what_was_too_big(repo: Path, git_calls: list[str]) -> None:
    (repo / "README.md").write_text("changed\n")
    (repo / "new.txt").write_text("new\n")
    (repo / "big.bin").write_bytes(b"x" * 2000)

    made = await GitRepo(repo, max_file_bytes=1000).commit("keen: work")

    assert made.commit == git(repo, "rev-parse", "HEAD").strip()
    assert sorted(made.files) == ["README.md", "new.txt"]
    assert made.files == git(repo, "show", "-z", "--name-only", "--pretty=format:", "HEAD").strip("\0").split(
        "\0"
    )
    assert made.branch == git(repo, "symbolic-ref", "--short", "HEAD").strip()
    assert [(f.path, f.size_bytes) for f in made.skipped] == [("big.bin", 2000)]
    assert git_calls == ["status", "add", "diff", "commit", "rev-parse"]


async def test_nothing_changed_is_found_by_one_status(repo: Path, git_calls: list[str]) -> None:
    head = git(repo, "rev-parse", "HEAD")

    made = await GitRepo(repo).commit("keen: nothing")

    assert made.commit is None and made.files == [] and made.skipped == []
    assert git_calls == ["status"]
    assert git(repo, "rev-parse", "HEAD") == head


async def test_only_oversized_changes_make_no_commit_but_are_reported(repo: Path) -> None:
    (repo / "big.bin").write_bytes(b"x" * 2000)
    head = git(repo, "rev-parse", "HEAD")

    made = await GitRepo(repo, max_file_bytes=1000).commit("keen: nothing small")

    assert made.commit is None
    assert [f.path for f in made.skipped] == ["big.bin"]
    assert git(repo, "rev-parse", "HEAD") == head


async def test_a_commit_on_a_detached_head_has_no_branch(repo: Path) -> None:
    git(repo, "checkout", "-q", "--detach")
    (repo / "README.md").write_text("detached\n")

    made = await GitRepo(repo).commit("keen: detached")

    assert made.commit is not None and made.branch is None
    assert await GitRepo(repo).head_and_branch() == (made.commit, None)


async def test_an_oversized_file_staged_by_hand_is_committed_and_not_reported_as_skipped(repo: Path) -> None:
    (repo / "big.bin").write_bytes(b"x" * 2000)
    git(repo, "add", "big.bin")

    made = await GitRepo(repo, max_file_bytes=1000).commit("keen: staged by hand")

    assert made.files == ["big.bin"] and made.skipped == []
    assert made.skipped == (await GitRepo(repo, max_file_bytes=1000).changes_between("HEAD~1")).skipped
