"""`search_files`: a regex over the workspace's text files, honouring the tree's ignore rules.

Patterns run on RE2, whose matching time grows linearly with the text: a pattern such as
`(a+)+$`, which makes a backtracking engine (Python's `re`) run for ages, cannot stall keen. The
search runs in a worker thread that stops between files and lines once the call is cancelled.
"""

from __future__ import annotations

import asyncio
import os
import re
import stat
import threading
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import re2
from pydantic import BaseModel, ConfigDict, Field, field_validator

from keen.errors import PathEscapeError
from keen.text import excerpt, looks_binary
from keen.tools.context import ToolContext
from keen.tools.registry import Tool, ToolError, tool
from keen.tools.workspace import Workspace
from keen.walk import walk

if TYPE_CHECKING:
    import pathspec

MAX_FILE_BYTES = 2 * 1024 * 1024  # larger files are generated or data, not code worth grepping
MAX_LINE_CHARS = 300
# Anchors and flags that mean something else in the whole text than in one line: with them the
# quick whole-file test could miss a line that matches, so every line is tried.
_LINE_ONLY = re.compile(r"\\[Az]|\(\?[a-zA-Z]*-")
_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # a bad pattern is the model's error, reported in the tool result


class SearchFilesInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pattern: str = Field(
        min_length=1,
        description="Regular expression searched in each line (RE2: Python's syntax without "
        "backreferences or lookaround).",
    )
    path: str = Field(
        default=".", description="Directory (or single file) to search, relative to the workspace."
    )
    glob: str | None = Field(
        default=None,
        description="Only files matching this gitignore-style pattern, e.g. '*.py' or 'src/**/*.ts'.",
    )
    max_results: int = Field(default=200, ge=1, le=2000, description="Stop after this many matching lines.")

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re2.compile(value, _OPTIONS)
        except re2.error as exc:
            reason = exc.args[0].decode(errors="replace") if exc.args else str(exc)
            raise ValueError(
                f"invalid regular expression {value!r}: {reason} (RE2 syntax: no backreferences "
                "or lookaround)"
            ) from exc
        return value

    @field_validator("glob")
    @classmethod
    def _glob_parses(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                _glob_spec(value)
            except ValueError as exc:
                raise ValueError(f"invalid glob {value!r}: {exc}") from exc
        return value


@tool(
    "search_files",
    "Search text files for a regular expression (RE2 syntax: Python's without backreferences or "
    "lookaround; prefix (?i) to ignore case) and "
    "return the matching lines with file path and line number. Searches `path` (default the "
    "whole workspace), optionally only files matching `glob` (matched against the "
    "workspace-relative path; '*.py' matches at any depth). Honours .gitignore and skips "
    "dependency/build folders like get_project_tree, but includes dot-files; skips binary files "
    f"and files over {MAX_FILE_BYTES // (1024 * 1024)} MiB. Long lines are shortened. Stops after "
    "max_results matches and says so — then narrow the pattern, path or glob.",
    SearchFilesInput,
    read_only=True,
)
async def search_files(ctx: ToolContext, args: SearchFilesInput) -> dict[str, Any]:
    workspace = ctx.workspace
    shown = workspace.relative(workspace.resolve(args.path))
    found = workspace.stat(args.path)
    if found is None:
        raise ToolError(f"{args.path!r} does not exist in the workspace")
    if stat.S_ISREG(found.st_mode):  # a file asked for by name is searched whatever the ignore rules say
        candidates: Iterable[str] = [shown]
    else:
        candidates = _candidates(workspace, workspace.real(args.path), args.glob)
    stop = threading.Event()
    try:
        return await asyncio.to_thread(_search, workspace, candidates, args, stop)
    finally:
        stop.set()  # a cancelled call leaves its worker thread: this ends it


def _search(
    workspace: Workspace, candidates: Iterable[str], args: SearchFilesInput, stop: threading.Event
) -> dict[str, Any]:
    regex = re2.compile(args.pattern, _OPTIONS)
    whole = None if _LINE_ONLY.search(args.pattern) else re2.compile("(?m)" + args.pattern, _OPTIONS)
    matches: list[dict[str, Any]] = []
    searched = skipped_binary = skipped_large = 0
    truncated = False
    for path in candidates:
        if stop.is_set():
            break
        text, reason = _text_of(workspace, path)
        if reason == "binary":
            skipped_binary += 1
        elif reason == "large":
            skipped_large += 1
        if text is None:
            continue
        searched += 1
        if whole is not None and whole.search(text) is None:
            continue  # one linear pass over the file rules out every line of it
        for number, line in enumerate(_lines(text), start=1):
            if stop.is_set():
                break
            found = regex.search(line)
            if found is None:
                continue
            if len(matches) >= args.max_results:
                truncated = True
                break
            text_shown = excerpt(line.rstrip(), found.start(), MAX_LINE_CHARS)
            matches.append({"path": path, "line": number, "text": text_shown})
        if truncated:
            break
    result: dict[str, Any] = {
        "matches": matches,
        "count": len(matches),
        "files_searched": searched,
        "skipped_binary": skipped_binary,
        "skipped_large": skipped_large,
        "truncated": truncated,
    }
    if truncated:
        result["note"] = f"stopped at {args.max_results} matches; narrow the pattern, path or glob"
    return result


def _glob_spec(glob: str) -> pathspec.GitIgnoreSpec:
    import pathspec  # loaded by the first search with a glob, not with every agent's tools

    return pathspec.GitIgnoreSpec.from_lines([glob])


def _candidates(workspace: Workspace, start: str, glob: str | None) -> Iterator[str]:
    """Workspace-relative paths of the files under the directory `start`."""
    spec = _glob_spec(glob) if glob else None
    for entry in walk(workspace.root, start):
        if entry.is_dir or (spec is not None and not spec.match_file(entry.rel)):
            continue
        yield entry.rel


def _text_of(workspace: Workspace, path: str) -> tuple[str | None, str | None]:
    """The file's text, or None with the reason it is not searched."""
    try:
        with workspace.open(path) as handle:  # a symlink may point outside: refused there
            if os.fstat(handle.fileno()).st_size > MAX_FILE_BYTES:
                return None, "large"
            data = handle.read(MAX_FILE_BYTES)
    except (PathEscapeError, OSError):
        return None, "unreadable"
    if looks_binary(data):
        return None, "binary"
    return data.decode("utf-8", errors="replace"), None


def _lines(text: str) -> list[str]:
    """Lines as editors and git number them (only \\n ends a line, unlike str.splitlines)."""
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return lines


TOOLS: list[Tool] = [search_files]
