"""Path confinement: nothing outside the workspace is read or written, .git is not writable."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from keen.errors import PathEscapeError
from keen.tools.workspace import Workspace


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory next to the workspace with a file the agent must never see or change."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.txt").write_text("OUTSIDE-SECRET")
    return folder


@pytest.mark.parametrize(
    "path", ["..", "../outside/secret.txt", "a/../../outside", "/etc/passwd", "", "a\x00b"]
)
def test_resolve_refuses_paths_outside(root: Path, path: str) -> None:
    with pytest.raises(PathEscapeError):
        Workspace(root).resolve(path)


def test_resolve_accepts_absolute_and_dotted_paths_inside(root: Path) -> None:
    ws = Workspace(root)

    assert ws.resolve(str(root / "src" / "a.py")) == root / "src" / "a.py"
    assert ws.resolve("src/../b.txt") == root / "b.txt"
    assert ws.relative(ws.resolve(".")) == "."


async def test_dotdot_escape_is_refused_by_every_file_tool(call, root: Path, outside: Path) -> None:
    escape = "../outside/secret.txt"

    results = {
        "read": await call("read_files", {"paths": [escape]}),
        "write": await call("write_files", {"path": escape, "content": "pwned"}),
        "edit": await call("edit_file", {"path": escape, "old_text": "OUTSIDE", "new_text": "pwned"}),
        "delete": await call("delete_files", {"paths": [escape]}),
        "tree": await call("get_project_tree", {"path": "../outside"}),
        "search": await call("search_files", {"pattern": "SECRET", "path": "../outside"}),
    }

    assert "outside the workspace" in results["read"].output["files"][0]["error"]
    for name in ("write", "edit", "delete", "tree", "search"):
        assert not results[name].ok, name
        assert "outside the workspace" in results[name].error, name
    assert (outside / "secret.txt").read_text() == "OUTSIDE-SECRET"


async def test_absolute_path_outside_is_refused(call, outside: Path) -> None:
    target = str(outside / "secret.txt")

    read = await call("read_files", {"paths": [target]})
    write = await call("write_files", {"path": target, "content": "pwned"})

    assert "error" in read.output["files"][0]
    assert not write.ok
    assert (outside / "secret.txt").read_text() == "OUTSIDE-SECRET"


async def test_absolute_path_inside_is_accepted_and_reported_relative(call, root: Path) -> None:
    result = await call("write_files", {"path": str(root / "sub" / "a.txt"), "content": "in"})

    assert result.ok, result.error
    assert result.output["files"][0]["path"] == "sub/a.txt"
    assert (root / "sub" / "a.txt").read_text() == "in"


async def test_file_symlink_pointing_outside_is_refused(call, root: Path, outside: Path) -> None:
    os.symlink(outside / "secret.txt", root / "innocent.txt")

    read = await call("read_files", {"paths": ["innocent.txt"]})
    write = await call("write_files", {"path": "innocent.txt", "content": "pwned"})
    edit = await call("edit_file", {"path": "innocent.txt", "old_text": "OUTSIDE", "new_text": "x"})

    assert "symlink" in read.output["files"][0]["error"]
    assert "content" not in read.output["files"][0]
    assert not write.ok and "symlink" in write.error
    assert not edit.ok and "symlink" in edit.error
    assert (outside / "secret.txt").read_text() == "OUTSIDE-SECRET"


async def test_directory_symlink_pointing_outside_is_refused(call, root: Path, outside: Path) -> None:
    os.symlink(outside, root / "linked")

    read = await call("read_files", {"paths": ["linked/secret.txt"]})
    write = await call("write_files", {"path": "linked/new.txt", "content": "pwned"})
    tree = await call("get_project_tree", {"path": "linked"})
    delete = await call("delete_files", {"paths": ["linked/secret.txt"]})

    assert "symlink" in read.output["files"][0]["error"]
    assert not write.ok and not tree.ok and not delete.ok
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    assert (outside / "secret.txt").read_text() == "OUTSIDE-SECRET"


async def test_tree_lists_a_directory_symlink_without_entering_it(call, root: Path, outside: Path) -> None:
    os.symlink(outside, root / "linked")

    result = await call("get_project_tree", {})

    assert result.ok, result.error
    assert f"  linked -> {outside}" in result.output["tree"].splitlines()
    assert "secret.txt" not in result.output["tree"]


async def test_symlink_inside_the_workspace_is_followed(call, root: Path) -> None:
    (root / "real.txt").write_text("real")
    os.symlink("real.txt", root / "alias.txt")

    result = await call("read_files", {"paths": ["alias.txt"]})

    assert result.output["files"][0]["content"] == "real"


@pytest.mark.parametrize("path", [".git/config", ".git/hooks/pre-commit", "sub/../.git/HEAD"])
async def test_writes_into_git_are_refused(call, repo: Path, path: str) -> None:
    before = (repo / ".git" / "config").read_text()

    write = await call("write_files", {"path": path, "content": "[core]\n\tfsmonitor = evil\n"})
    edit = await call("edit_file", {"path": ".git/config", "old_text": "[core]", "new_text": "[x]"})

    assert not write.ok and ".git" in write.error
    assert not edit.ok and ".git" in edit.error
    assert (repo / ".git" / "config").read_text() == before
    assert not (repo / ".git" / "hooks" / "pre-commit").exists()
