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


# --- race-free operations ---------------------------------------------------------------------


def test_symlinks_inside_are_followed_by_hand_relative_absolute_and_chained(root: Path) -> None:
    (root / "src" / "pkg").mkdir(parents=True)
    (root / "src" / "pkg" / "mod.py").write_text("x = 1\n")
    os.symlink("src/pkg", root / "rel")
    os.symlink(root / "src", root / "abs")
    os.symlink("rel", root / "chain")
    os.symlink("../src/pkg/mod.py", root / "src" / "up.py")
    ws = Workspace(root)

    for path in ("rel/mod.py", "abs/pkg/mod.py", "chain/mod.py", "src/up.py"):
        assert ws.read(path) == (6, b"x = 1\n"), path
        assert ws.real(path) == "src/pkg/mod.py"


@pytest.mark.parametrize(
    ("target", "reason"), [("../../outside", "symlink"), ("/etc", "symlink"), ("loop", "too many levels")]
)
def test_symlinks_out_or_in_a_loop_are_refused(root: Path, outside: Path, target: str, reason: str) -> None:
    (root / "sub").mkdir()
    os.symlink(target, root / "sub" / "link")
    os.symlink("link", root / "sub" / "loop")
    ws = Workspace(root)

    for operation in (lambda: ws.read("sub/link/x"), lambda: ws.write("sub/link/x", b"x")):
        with pytest.raises(PathEscapeError, match=reason):
            operation()


def test_write_replaces_the_file_keeping_its_mode_and_leaves_no_temp_file(root: Path) -> None:
    script = root / "run.sh"
    script.write_text("old")
    script.chmod(0o755)
    os.symlink("run.sh", root / "alias.sh")
    ws = Workspace(root)

    ws.write("alias.sh", b"new")

    assert script.read_text() == "new" and (script.stat().st_mode & 0o777) == 0o755
    assert os.path.islink(root / "alias.sh")  # written through the link inside, not replaced
    assert sorted(p.name for p in root.iterdir()) == ["alias.sh", "run.sh"]


def test_a_failed_write_removes_its_temp_file(root: Path) -> None:
    (root / "adir").mkdir()
    ws = Workspace(root)

    with pytest.raises(IsADirectoryError):
        ws.write("adir", b"x")
    with pytest.raises(OSError):
        ws.write("n" * 300, b"x")

    assert sorted(p.name for p in root.iterdir()) == ["adir"]


def test_directories_are_never_created_inside_git_through_a_symlink(repo: Path) -> None:
    os.symlink(".git", repo / "g")
    ws = Workspace(repo)

    with pytest.raises(PathEscapeError, match=r"\.git"):
        ws.make_parents("g/newdir/deeper/file")
    with pytest.raises(PathEscapeError, match=r"\.git"):
        ws.remove("g/HEAD")

    assert not (repo / ".git" / "newdir").exists() and (repo / ".git" / "HEAD").exists()
    assert ws.remove("g") == "file" and (repo / ".git").is_dir()  # the link itself may go


def test_remove_deletes_a_symlink_not_its_target_and_a_tree_only_when_asked(
    root: Path, outside: Path
) -> None:
    (root / "d" / "e").mkdir(parents=True)
    (root / "d" / "e" / "f.txt").write_text("f")
    os.symlink(outside, root / "d" / "out")
    ws = Workspace(root)

    with pytest.raises(IsADirectoryError):
        ws.remove("d")
    assert ws.remove("d", recursive=True) == "directory"

    assert not (root / "d").exists()
    assert (outside / "secret.txt").read_text() == "OUTSIDE-SECRET"


def test_reading_a_fifo_does_not_block(root: Path) -> None:
    os.mkfifo(root / "pipe")

    with pytest.raises(OSError, match="not a regular file"):
        Workspace(root).read("pipe")
