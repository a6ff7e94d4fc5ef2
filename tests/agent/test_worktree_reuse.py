"""A child's worktree is reused for the next child (moved to its path, the new branch checked
out), which still sees exactly the project at its checkpoint; one in an odd state is removed
instead; the session's end leaves no worktree, branch lock or snapshot ref."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from helpers import call, complete, git, run_session, summon, turn, write_script
from keen.agent.worktrees import worktrees_root
from keen.config import get_settings, reset_settings_cache
from keen.gitrepo import GitRepo

PROBE = "git status --porcelain --ignored --untracked-files=all; ls -A; git symbolic-ref --short HEAD"


@pytest.fixture
def git_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """`subcommand [worktree subcommand]` of every git process keen's own git starts."""
    calls: list[str] = []
    original = GitRepo.run

    async def counted(self: GitRepo, *args: str, **kwargs: Any) -> Any:
        calls.append(" ".join(args[:2]) if args[0] == "worktree" else args[0])
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(GitRepo, "run", counted)
    return calls


def _probe_output(run: Any, branch: str) -> str:
    child = next(s.id for s in run.sessions if s.branch_name == branch)
    return next(
        e.data["output"]["stdout"]
        for e in run.of_type("tool.finished")
        if e.session_id == child and e.data["name"] == "run_command"
    )


def _nothing_left(repo: Path, run: Any) -> None:
    assert git(repo, "worktree", "list").count("\n") == 1
    assert git(repo, "for-each-ref", "refs/keen/") == ""
    assert not (worktrees_root(get_settings().keen_home) / run.sessions[0].short_id).exists()


async def test_the_next_child_reuses_the_worktree_and_sees_only_the_project(
    repo: Path, tmp_path: Path, git_calls: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEEN_COMMIT_MAX_FILE_BYTES", "1000")
    (repo / ".gitignore").write_text("build/\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "ignore build/")
    script = write_script(
        tmp_path / "s.json",
        {
            "main": [
                turn(summon("write a.txt and build something", "backend")),
                turn(summon("look at the project", "testing")),
                complete("both merged"),
            ],
            "summon-A": [
                turn(
                    call("write_files", path="a.txt", content="a\n"),
                    call(
                        "run_command",
                        command="mkdir build && echo out > build/out.o && head -c 5000 /dev/zero > big.bin",
                    ),
                ),
                complete("wrote a.txt"),
            ],
            "summon-B": [turn(call("run_command", command=PROBE)), complete("looked")],
        },
    )

    run = await run_session(repo, script)

    assert run.result.status == "completed", run.result.summary
    assert git_calls.count("worktree add") == 1 and git_calls.count("worktree move") == 1
    assert "worktree list" not in git_calls and "worktree prune" not in git_calls  # nothing left over
    lines = _probe_output(run, "summon-B").splitlines()
    short = run.sessions[0].short_id
    # Nothing untracked or ignored from A (build/, big.bin), A's merged a.txt, B's own branch.
    assert sorted(lines) == sorted([".git", ".gitignore", "README.md", "a.txt", f"keen/{short}/summon-B"])
    spawned = {e.data["branch"]: e.data["worktree"] for e in run.of_type("child.spawned")}
    assert Path(spawned["summon-B"]).name == "summon-B"
    assert sorted(run.result.files.created) == ["a.txt"]
    _nothing_left(repo, run)


async def test_a_worktree_left_sparse_is_removed_and_the_next_child_gets_a_whole_one(
    repo: Path, tmp_path: Path, git_calls: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A sparse checkout writes the repository's config, which keen's sandbox keeps read-only.
    monkeypatch.setenv("KEEN_SANDBOX", "none")
    reset_settings_cache()
    script = write_script(
        tmp_path / "s.json",
        {
            "main": [
                turn(summon("narrow your checkout", "general")),
                turn(summon("look at the project", "general")),
                complete("both done"),
            ],
            "summon-A": [
                turn(call("run_command", command="git sparse-checkout set --no-cone '/*.txt' && ls -A")),
                complete("narrowed"),
            ],
            "summon-B": [turn(call("run_command", command=PROBE)), complete("looked")],
        },
    )

    run = await run_session(repo, script)

    assert run.result.status == "completed", run.result.summary
    assert "README.md" not in _probe_output(run, "summon-A").split()  # A's checkout was sparse
    assert git_calls.count("worktree add") == 2 and "worktree move" not in git_calls
    short = run.sessions[0].short_id
    assert sorted(_probe_output(run, "summon-B").splitlines()) == [
        ".git",
        "README.md",
        f"keen/{short}/summon-B",
    ]
    _nothing_left(repo, run)


async def test_parallel_children_reuse_the_worktrees_of_the_reply_before(
    repo: Path, tmp_path: Path, git_calls: list[str]
) -> None:
    def writer(name: str) -> list[dict[str, Any]]:
        return [turn(call("write_files", path=f"{name}.txt", content=f"{name}\n")), complete(f"wrote {name}")]

    script = write_script(
        tmp_path / "s.json",
        {
            "main": [
                turn(summon("write the file A.txt", "general"), summon("write the file B.txt", "general")),
                turn(summon("write the file C.txt", "general"), summon("write the file D.txt", "general")),
                complete("four merged"),
            ],
            **{f"summon-{n}": writer(n) for n in "ABCD"},
        },
    )

    run = await run_session(repo, script)

    assert run.result.status == "completed", run.result.summary
    assert all((repo / f"{n}.txt").read_text() == f"{n}\n" for n in "ABCD")
    assert git_calls.count("worktree add") == 2 and git_calls.count("worktree move") == 2
    subjects = git(repo, "log", "--merges", "--reverse", "--format=%s").splitlines()
    assert [s.split()[2] for s in subjects] == ["summon-A", "summon-B", "summon-C", "summon-D"]
    _nothing_left(repo, run)


async def _calls_for(repo: Path, tmp_path: Path, calls: list[str], summons: int) -> int:
    main: list[dict[str, Any]] = []
    agents: dict[str, Any] = {"main": main}
    for i in range(summons):
        letter = chr(ord("A") + i)
        main.append(
            turn(
                call("write_files", path=f"pending{i}.txt", content=f"{i}\n"),
                summon(f"write the child file number {i}", "general"),
            )
        )
        agents[f"summon-{letter}"] = [
            turn(call("write_files", path=f"child/{letter}.txt", content=letter)),
            complete(f"wrote {letter}"),
        ]
    main.append(complete("all merged"))
    folder = tmp_path / f"{summons}"
    folder.mkdir()
    workspace = folder / "repo"
    git(repo.parent, "clone", "-q", str(repo), str(workspace))
    calls.clear()
    run = await run_session(workspace, write_script(folder / "s.json", agents))
    assert run.result.status == "completed", run.result.summary
    return len(calls)


async def test_a_summon_takes_at_most_twenty_two_git_processes(
    repo: Path, tmp_path: Path, git_calls: list[str]
) -> None:
    one = await _calls_for(repo, tmp_path, git_calls, 1)
    three = await _calls_for(repo, tmp_path, git_calls, 3)
    # A checkpoint commit, the worktree (reused), a snapshot, the child's commit and changed
    # files, the merge, and parking the worktree for the next child.
    assert (three - one) / 2 <= 22
