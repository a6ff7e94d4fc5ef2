"""search_files against a real workspace, through the registry."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from keen.tools import search
from keen.tools.workspace import Workspace


def _hits(result) -> list[tuple[str, int, str]]:
    assert result.ok, result.error
    return [(m["path"], m["line"], m["text"]) for m in result.output["matches"]]


async def test_matching_lines_with_path_and_line_number(call, root: Path) -> None:
    (root / "src").mkdir()
    (root / "src" / "app.py").write_text("import os\n\ndef handler():\n    return os.getcwd()\n")
    (root / "notes.md").write_text("no match here\n")

    result = await call("search_files", {"pattern": r"os\.\w+\("})

    assert _hits(result) == [("src/app.py", 4, "    return os.getcwd()")]
    assert result.output["truncated"] is False
    assert result.output["files_searched"] == 2


async def test_search_honours_gitignore_and_skips_dependency_folders(call, root: Path) -> None:
    (root / ".gitignore").write_text("generated/\n")
    for folder in ("generated", "node_modules/pkg", "lib"):
        (root / folder).mkdir(parents=True)
        (root / folder / "x.js").write_text("const TOKEN = 1;\n")

    result = await call("search_files", {"pattern": "TOKEN"})

    assert _hits(result) == [("lib/x.js", 1, "const TOKEN = 1;")]


async def test_glob_limits_the_files_searched(call, root: Path) -> None:
    (root / "pkg").mkdir()
    (root / "pkg" / "a.py").write_text("needle\n")
    (root / "pkg" / "a.txt").write_text("needle\n")

    result = await call("search_files", {"pattern": "needle", "glob": "*.py"})

    assert [h[0] for h in _hits(result)] == ["pkg/a.py"]


async def test_invalid_regex_is_an_error_naming_the_pattern(call) -> None:
    result = await call("search_files", {"pattern": "foo(("})

    assert not result.ok
    assert "pattern" in result.error
    assert "invalid regular expression 'foo(('" in result.error


async def test_binary_and_huge_files_are_skipped(call, root: Path) -> None:
    (root / "blob.bin").write_bytes(b"needle\x00\x01\x02")
    (root / "huge.txt").write_bytes(b"needle\n" + b"x" * search.MAX_FILE_BYTES)
    (root / "small.txt").write_text("needle\n")

    result = await call("search_files", {"pattern": "needle"})

    assert _hits(result) == [("small.txt", 1, "needle")]
    assert result.output["skipped_binary"] == 1
    assert result.output["skipped_large"] == 1


async def test_results_are_capped_and_say_so(call, root: Path) -> None:
    (root / "many.txt").write_text("hit\n" * 50)

    result = await call("search_files", {"pattern": "hit", "max_results": 10})

    assert len(_hits(result)) == 10
    assert result.output["truncated"] is True
    assert "stopped at 10" in result.output["note"]


async def test_line_numbers_count_only_newlines(call, root: Path) -> None:
    (root / "f.txt").write_text("page one\x0cstill line one\r\nsecond\n")

    assert _hits(await call("search_files", {"pattern": "second"})) == [("f.txt", 2, "second")]


async def test_search_a_single_file_by_path(call, root: Path) -> None:
    (root / "a.txt").write_text("one\ntwo\n")
    (root / "b.txt").write_text("two\n")

    result = await call("search_files", {"pattern": "two", "path": "a.txt"})

    assert _hits(result) == [("a.txt", 2, "two")]


async def test_long_lines_are_shortened_around_the_match(call, root: Path) -> None:
    (root / "min.js").write_text("a" * 5000 + "NEEDLE" + "b" * 5000 + "\n")

    [(_, _, text)] = _hits(await call("search_files", {"pattern": "NEEDLE"}))

    assert "NEEDLE" in text
    assert len(text) < 400
    assert text.startswith("[...") and text.endswith("characters]")


async def test_symlink_to_a_file_outside_is_not_searched(call, root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("SECRET-OUTSIDE\n")
    os.symlink(outside, root / "link.txt")

    result = await call("search_files", {"pattern": "SECRET"})

    assert _hits(result) == []


async def test_search_path_outside_the_workspace_is_refused(call) -> None:
    result = await call("search_files", {"pattern": "x", "path": "../"})

    assert not result.ok
    assert "outside the workspace" in result.error


def test_search_files_is_read_only() -> None:
    assert [t.read_only for t in search.TOOLS] == [True]


@pytest.mark.timeout(60)
async def test_a_pattern_that_backtracks_catastrophically_matches_in_linear_time(call, root: Path) -> None:
    (root / "a.txt").write_text("a" * 100_000 + "!\n" + "a" * 10 + "\n")

    result = await call("search_files", {"pattern": "(a+)+$"})

    assert _hits(result) == [("a.txt", 2, "a" * 10)]


async def test_lookaround_and_backreferences_are_refused_naming_the_syntax(call) -> None:
    for pattern in (r"(?<=x)y", r"(\w)\1"):
        result = await call("search_files", {"pattern": pattern})

        assert not result.ok and "RE2 syntax" in result.error, pattern


async def test_line_anchors_keep_their_per_line_meaning(call, root: Path) -> None:
    (root / "f.txt").write_text("x abc\nabc x\nzz abc\n")

    starts = await call("search_files", {"pattern": r"\Aabc"})
    ends = await call("search_files", {"pattern": r"abc\z"})
    no_multiline = await call("search_files", {"pattern": r"(?-m)^abc"})

    assert [h[1] for h in _hits(starts)] == [2]
    assert [h[1] for h in _hits(ends)] == [1, 3]
    assert [h[1] for h in _hits(no_multiline)] == [2]


def test_a_stopped_search_reads_no_further(root: Path) -> None:
    for i in range(5):
        (root / f"f{i}.txt").write_text("needle\n")
    args = search.SearchFilesInput(pattern="needle")
    stop = threading.Event()
    stop.set()

    result = search._search(Workspace(root), [f"f{i}.txt" for i in range(5)], args, stop)

    assert result["files_searched"] == 0 and result["matches"] == []
