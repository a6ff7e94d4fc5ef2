"""Issue 9, item 9: the final report names files as they are, and big files stay out of commits."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import call, git, run_keen, turn
from keen.gitrepo import GitRepo
from security.attack import commands

ODD_NAMES = ["café.txt", "tab\there.txt", "日本語/メモ.md", 'quote"and\\slash.txt']


def test_non_ascii_and_tab_file_names_are_c_quoted_in_the_report(breathe) -> None:
    files = [{"path": name, "content": "x\n"} for name in ODD_NAMES]

    run = breathe(turn(call("write_files", files=files)))

    assert sorted(run.finished["files_created"]) == sorted(ODD_NAMES)


async def test_odd_names_are_c_quoted_in_keens_git_file_lists(repo: Path) -> None:
    start = git(repo, "rev-parse", "HEAD").strip()
    for name in ODD_NAMES:
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text("x\n")
    git_repo = GitRepo(repo)

    pending = [entry[3:] for entry in await git_repo.status_porcelain()]
    commit = await git_repo.commit_all("odd names")
    assert commit is not None

    assert sorted(pending) == sorted(ODD_NAMES)
    assert sorted(await git_repo.files_in_commit(commit)) == sorted(ODD_NAMES)
    assert sorted((await git_repo.changes_between(start)).created) == sorted(ODD_NAMES)


def test_file_over_the_size_limit_is_committed_by_keens_final_commit(breathe, tmp_path: Path) -> None:
    run = breathe(
        commands("head -c 5000 /dev/zero > big.bin && echo small > small.txt"),
        env={"KEEN_COMMIT_MAX_FILE_BYTES": "1000"},
    )

    workspace = tmp_path / "w"
    assert run.finished["files_created"] == ["small.txt"]
    skipped = run.finished["files_skipped"]
    assert [(f["path"], f["size_bytes"]) for f in skipped] == [("big.bin", 5000)]
    assert "1000 bytes limit" in skipped[0]["reason"] and "left uncommitted" in skipped[0]["reason"]
    assert git(workspace, "ls-tree", "-r", "--name-only", "HEAD").split() == ["small.txt"]
    assert (workspace / "big.bin").stat().st_size == 5000  # still in the work tree
    shown = json.loads(
        run_keen("sessions", "show", run.finished["session_id"], "--json", cwd=tmp_path).stdout
    )
    assert shown["events"][-1]["data"]["files_skipped"] == skipped


async def test_oversized_change_to_a_tracked_file_keeps_the_committed_version(repo: Path) -> None:
    (repo / "README.md").write_text("x" * 2000)
    (repo / "notes.txt").write_text("fine\n")
    git_repo = GitRepo(repo, max_file_bytes=1000)

    commit = await git_repo.commit_all("keen: final")
    changes = await git_repo.changes_between("HEAD~1")

    assert commit is not None and await git_repo.files_in_commit(commit) == ["notes.txt"]
    assert git(repo, "show", "HEAD:README.md") == "# demo\n"
    assert [f.path for f in changes.skipped] == ["README.md"]


async def test_files_changed_since_the_start_keep_spaces_tabs_and_non_ascii(repo: Path) -> None:
    start = GitRepo(repo)
    head = await start.head()
    (repo / "README.md").write_text("changed\n")
    (repo / "a file\twith tab.txt").write_text("x\n")
    (repo / "résumé notes.md").write_text("y\n")
    assert await start.changed_since(head) == ["README.md", "a file\twith tab.txt", "résumé notes.md"]
