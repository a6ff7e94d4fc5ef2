"""File tools against a real temporary workspace, run through the registry."""

from __future__ import annotations

import os
from pathlib import Path

from keen.tools import files
from keen.tools.files import tree

# --- get_project_tree -----------------------------------------------------------------------


def _tree_lines(result) -> list[str]:
    assert result.ok, result.error
    return result.output["tree"].splitlines()


async def test_tree_lists_directories_first_with_indentation(call, root: Path) -> None:
    (root / "src" / "pkg").mkdir(parents=True)
    (root / "src" / "pkg" / "mod.py").write_text("x = 1\n")
    (root / "README.md").write_text("hi\n")

    result = await call("get_project_tree", {})

    assert _tree_lines(result) == ["./", "  src/", "    pkg/", "      mod.py", "  README.md"]
    assert result.output["directories"] == 2
    assert result.output["files"] == 2
    assert result.output["truncated"] is False


async def test_tree_honours_root_and_nested_gitignore(call, root: Path) -> None:
    (root / ".gitignore").write_text("*.log\nsecret/\n!keep.log\n")
    (root / "app.log").write_text("")
    (root / "keep.log").write_text("")
    (root / "secret").mkdir()
    (root / "secret" / "a.txt").write_text("")
    (root / "web").mkdir()
    (root / "web" / ".gitignore").write_text("/generated.js\n")
    (root / "web" / "generated.js").write_text("")
    (root / "web" / "index.js").write_text("")

    lines = _tree_lines(await call("get_project_tree", {}))

    assert "  keep.log" in lines
    assert "    index.js" in lines
    for hidden in ("app.log", "secret/", "generated.js"):
        assert not any(line.strip() == hidden for line in lines), hidden


async def test_tree_skips_dependency_folders_even_when_not_ignored(call, root: Path) -> None:
    for folder in ("node_modules/left-pad", ".venv/lib", "__pycache__", "build", "src"):
        (root / folder).mkdir(parents=True)
    (root / "node_modules" / "left-pad" / "index.js").write_text("")
    (root / "src" / "main.py").write_text("")

    result = await call("get_project_tree", {"include_hidden": True})

    assert _tree_lines(result) == ["./", "  src/", "    main.py"]
    assert result.output["ignored_entries"] == 4


async def test_tree_hides_dot_files_unless_asked(call, root: Path) -> None:
    (root / ".env.example").write_text("")
    (root / "a.txt").write_text("")

    hidden = _tree_lines(await call("get_project_tree", {}))
    shown = _tree_lines(await call("get_project_tree", {"include_hidden": True}))

    assert hidden == ["./", "  a.txt"]
    assert "  .env.example" in shown


async def test_tree_honours_git_info_exclude(call, root: Path) -> None:
    (root / ".git" / "info").mkdir(parents=True)
    (root / ".git" / "info" / "exclude").write_text("local-notes.md\n")
    (root / "local-notes.md").write_text("")
    (root / "b.txt").write_text("")

    assert _tree_lines(await call("get_project_tree", {})) == ["./", "  b.txt"]


async def test_tree_stops_at_max_depth_and_starts_at_path(call, root: Path) -> None:
    (root / "a" / "b" / "c").mkdir(parents=True)
    (root / "a" / "b" / "c" / "deep.txt").write_text("")

    shallow = _tree_lines(await call("get_project_tree", {"max_depth": 1}))
    sub = _tree_lines(await call("get_project_tree", {"path": "a/b"}))

    assert shallow == ["./", "  a/"]
    assert sub == ["a/b/", "  c/", "    deep.txt"]


async def test_tree_says_when_capped(call, root: Path) -> None:
    for i in range(tree.MAX_TREE_ENTRIES + 5):
        (root / f"f{i:05d}.txt").write_text("")

    result = await call("get_project_tree", {})

    assert result.ok
    assert result.output["truncated"] is True
    assert result.output["files"] == tree.MAX_TREE_ENTRIES
    assert "stopped after" in result.output["note"]


async def test_tree_rejects_bad_input_naming_the_field(call) -> None:
    result = await call("get_project_tree", {"max_depth": 0})

    assert not result.ok
    assert "max_depth" in result.error


async def test_tree_of_a_file_is_an_error(call, root: Path) -> None:
    (root / "a.txt").write_text("")

    result = await call("get_project_tree", {"path": "a.txt"})

    assert not result.ok
    assert "not a directory" in result.error


# --- read_files -----------------------------------------------------------------------------


async def test_read_files_returns_content_and_size(call, root: Path) -> None:
    (root / "src").mkdir()
    (root / "src" / "a.py").write_text("print('é')\n")

    result = await call("read_files", {"paths": ["src/a.py"]})

    assert result.ok
    [entry] = result.output["files"]
    assert entry == {"path": "src/a.py", "size": len("print('é')\n".encode()), "content": "print('é')\n"}


async def test_one_bad_path_does_not_fail_the_others(call, root: Path) -> None:
    (root / "good.txt").write_text("fine")
    (root / "adir").mkdir()

    result = await call("read_files", {"paths": ["missing.txt", "good.txt", "../outside.txt", "adir"]})

    assert result.ok
    by_path = {e["path"]: e for e in result.output["files"]}
    assert by_path["good.txt"]["content"] == "fine"
    assert "not found" in by_path["missing.txt"]["error"]
    assert "outside the workspace" in by_path["../outside.txt"]["error"]
    assert "directory" in by_path["adir"]["error"]
    assert result.output["errors"] == 3


async def test_special_files_are_refused_without_blocking(call, root: Path) -> None:
    os.mkfifo(root / "pipe")

    read = await call("read_files", {"paths": ["pipe"]})
    write = await call("write_files", {"path": "pipe", "content": "x"})

    assert read.output["files"][0]["error"] == "is not a regular file"
    assert not write.ok and "not a regular file" in write.error


async def test_binary_files_are_reported_not_dumped(call, root: Path) -> None:
    (root / "img.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(100))

    result = await call("read_files", {"paths": ["img.png"]})

    [entry] = result.output["files"]
    assert entry["binary"] is True
    assert entry["size"] == 116
    assert "content" not in entry


async def test_read_files_cuts_at_max_bytes(call, root: Path) -> None:
    (root / "big.txt").write_text("x" * 5000)

    result = await call("read_files", {"paths": ["big.txt"], "max_bytes": 100})

    [entry] = result.output["files"]
    assert entry["content"] == "x" * 100
    assert entry["size"] == 5000
    assert entry["truncated"] is True


async def test_read_files_accepts_a_single_path_string(call, root: Path) -> None:
    (root / "one.txt").write_text("1")

    result = await call("read_files", {"paths": "one.txt"})

    assert result.output["files"][0]["content"] == "1"


async def test_read_files_bad_input_names_the_field(call) -> None:
    missing = await call("read_files", {})
    zero = await call("read_files", {"paths": ["a"], "max_bytes": 0})
    unknown = await call("read_files", {"paths": ["a"], "max_byte": 10})

    assert not missing.ok and "paths" in missing.error
    assert not zero.ok and "max_bytes" in zero.error
    assert not unknown.ok and "max_byte" in unknown.error


# --- write_files ----------------------------------------------------------------------------


async def test_write_files_creates_parents_and_reports_each_file(call, root: Path) -> None:
    (root / "old.txt").write_text("before")

    result = await call(
        "write_files",
        {
            "files": [
                {"path": "deep/er/new.py", "content": "x = 'é'\n"},
                {"path": "old.txt", "content": "after"},
            ]
        },
    )

    assert result.ok, result.error
    assert result.output["files"] == [
        {"path": "deep/er/new.py", "status": "created", "bytes": len("x = 'é'\n".encode())},
        {"path": "old.txt", "status": "overwritten", "bytes": 5},
    ]
    assert (root / "deep" / "er" / "new.py").read_text() == "x = 'é'\n"
    assert (root / "old.txt").read_text() == "after"


async def test_write_files_accepts_a_bare_file(call, root: Path) -> None:
    result = await call("write_files", {"path": "solo.txt", "content": "alone"})

    assert result.ok, result.error
    assert (root / "solo.txt").read_text() == "alone"


async def test_refused_second_path_leaves_first_file_untouched(call, root: Path) -> None:
    (root / "a.txt").write_text("original")

    result = await call(
        "write_files",
        {"files": [{"path": "a.txt", "content": "changed"}, {"path": "../escape.txt", "content": "x"}]},
    )

    assert not result.ok
    assert "no file was written" in result.error and "../escape.txt" in result.error
    assert (root / "a.txt").read_text() == "original"
    assert not (root.parent / "escape.txt").exists()


async def test_parent_that_is_a_file_refuses_the_whole_batch(call, root: Path) -> None:
    (root / "notadir").write_text("i am a file")

    result = await call(
        "write_files",
        {"files": [{"path": "fresh/one.txt", "content": "1"}, {"path": "notadir/two.txt", "content": "2"}]},
    )

    assert not result.ok
    assert "is a file" in result.error
    assert not (root / "fresh").exists()
    assert (root / "notadir").read_text() == "i am a file"


async def test_failure_while_writing_restores_originals_and_removes_new_files(call, root: Path) -> None:
    (root / "a.txt").write_text("original")
    too_long = "n" * 300 + ".txt"  # passes every check, then the file system refuses the name

    result = await call(
        "write_files",
        {
            "files": [
                {"path": "a.txt", "content": "changed"},
                {"path": "newdir/sub/b.txt", "content": "new"},
                {"path": too_long, "content": "boom"},
            ]
        },
    )

    assert not result.ok
    assert "no file was changed" in result.error
    assert (root / "a.txt").read_text() == "original"
    assert not (root / "newdir").exists()
    assert sorted(p.name for p in root.iterdir()) == ["a.txt"]


async def test_write_files_refuses_bad_targets(call, root: Path) -> None:
    (root / "adir").mkdir()
    dup = await call(
        "write_files", {"files": [{"path": "x", "content": "1"}, {"path": "./x", "content": "2"}]}
    )
    git = await call("write_files", {"path": ".git/config", "content": "[core]"})

    directory = await call("write_files", {"path": "adir", "content": "x"})
    surrogate = await call("write_files", {"path": "s.txt", "content": "\ud800"})

    assert not dup.ok and "more than once" in dup.error
    assert not directory.ok and "is a directory" in directory.error
    assert not surrogate.ok and "not valid Unicode" in surrogate.error
    assert not git.ok and ".git" in git.error
    assert not (root / "x").exists() and not (root / "s.txt").exists()
    assert not (root / ".git").exists()


async def test_write_files_bad_input_names_the_field(call) -> None:
    result = await call("write_files", {"files": [{"path": "a.txt"}]})

    assert not result.ok
    assert "files.0.content" in result.error


# --- edit_file ------------------------------------------------------------------------------


async def test_edit_file_replaces_one_exact_occurrence(call, root: Path) -> None:
    (root / "m.py").write_text("def f():\n    return 1\n\ndef g():\n    return 2\n")

    result = await call("edit_file", {"path": "m.py", "old_text": "return 2", "new_text": "return 3"})

    assert result.ok, result.error
    assert result.output["replacements"] == 1
    assert result.output["first_line"] == 5
    assert (root / "m.py").read_text() == "def f():\n    return 1\n\ndef g():\n    return 3\n"


async def test_edit_file_missing_text_is_a_clear_error(call, root: Path) -> None:
    (root / "m.py").write_text("a = 1\n")

    result = await call("edit_file", {"path": "m.py", "old_text": "a = 2", "new_text": "a = 3"})

    assert not result.ok
    assert "not found" in result.error
    assert (root / "m.py").read_text() == "a = 1\n"


async def test_edit_file_ambiguous_text_says_how_many_times(call, root: Path) -> None:
    (root / "m.py").write_text("x = 0\nx = 0\nx = 0\n")

    result = await call("edit_file", {"path": "m.py", "old_text": "x = 0", "new_text": "x = 1"})

    assert not result.ok
    assert "3 times" in result.error
    assert (root / "m.py").read_text() == "x = 0\nx = 0\nx = 0\n"


async def test_edit_file_replace_all(call, root: Path) -> None:
    (root / "m.py").write_text("x = 0\nx = 0\n")

    result = await call(
        "edit_file", {"path": "m.py", "old_text": "x = 0", "new_text": "y", "replace_all": True}
    )

    assert result.output["replacements"] == 2
    assert (root / "m.py").read_text() == "y\ny\n"


async def test_edit_file_keeps_windows_line_endings(call, root: Path) -> None:
    (root / "w.txt").write_bytes(b"one\r\ntwo\r\n")

    await call("edit_file", {"path": "w.txt", "old_text": "two", "new_text": "2"})

    assert (root / "w.txt").read_bytes() == b"one\r\n2\r\n"


async def test_edit_file_matches_multiline_text_in_a_crlf_file(call, root: Path) -> None:
    (root / "w.txt").write_bytes(b"a\r\nb\r\nc\r\n")

    result = await call("edit_file", {"path": "w.txt", "old_text": "a\nb\n", "new_text": "x\ny\nz\n"})

    assert result.ok, result.error
    assert (root / "w.txt").read_bytes() == b"x\r\ny\r\nz\r\nc\r\n"


async def test_edit_file_needs_an_existing_file_and_a_real_change(call, root: Path) -> None:
    (root / "m.py").write_text("a\n")

    missing = await call("edit_file", {"path": "nope.py", "old_text": "a", "new_text": "b"})
    same = await call("edit_file", {"path": "m.py", "old_text": "a", "new_text": "a"})
    empty = await call("edit_file", {"path": "m.py", "old_text": "", "new_text": "b"})

    assert not missing.ok and "write_files" in missing.error
    assert not same.ok and "identical" in same.error
    assert not empty.ok and "old_text" in empty.error


# --- delete_files ---------------------------------------------------------------------------


async def test_delete_files_deletes_files(call, root: Path) -> None:
    (root / "a.txt").write_text("")
    (root / "b.txt").write_text("")

    result = await call("delete_files", {"paths": ["a.txt", "b.txt"]})

    assert result.ok, result.error
    assert result.output["deleted"] == [
        {"path": "a.txt", "deleted": "file"},
        {"path": "b.txt", "deleted": "file"},
    ]
    assert list(root.iterdir()) == []


async def test_delete_files_refuses_directories_without_recursive_and_deletes_nothing(
    call, root: Path
) -> None:
    (root / "a.txt").write_text("")
    (root / "d").mkdir()
    (root / "d" / "inner.txt").write_text("")

    refused = await call("delete_files", {"paths": ["a.txt", "d"]})

    assert not refused.ok
    assert "recursive" in refused.error
    assert (root / "a.txt").exists() and (root / "d" / "inner.txt").exists()

    done = await call("delete_files", {"paths": ["d", "d/inner.txt"], "recursive": True})

    assert done.ok, done.error
    assert done.output["deleted"] == [{"path": "d", "deleted": "directory"}]
    assert not (root / "d").exists()


async def test_delete_files_refuses_missing_root_and_git(call, root: Path) -> None:
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main\n")

    for path, reason in [("ghost.txt", "does not exist"), (".", "workspace root"), (".git/HEAD", ".git")]:
        result = await call("delete_files", {"paths": [path], "recursive": True})
        assert not result.ok, path
        assert reason in result.error
    assert (root / ".git" / "HEAD").exists()


async def test_delete_files_removes_a_symlink_not_its_target(call, root: Path) -> None:
    (root / "target.txt").write_text("keep me")
    os.symlink("target.txt", root / "link.txt")

    result = await call("delete_files", {"paths": ["link.txt"]})

    assert result.ok, result.error
    assert not os.path.lexists(root / "link.txt")
    assert (root / "target.txt").read_text() == "keep me"


def test_read_only_flags() -> None:
    flags = {t.name: t.read_only for t in files.TOOLS}

    assert flags == {
        "get_project_tree": True,
        "read_files": True,
        "write_files": False,
        "edit_file": False,
        "delete_files": False,
    }
