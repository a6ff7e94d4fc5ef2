"""`search_files`: a regex over the workspace's text files, honouring the tree's ignore rules."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pathspec
from pydantic import BaseModel, ConfigDict, Field, field_validator

from keen.errors import PathEscapeError
from keen.tools.context import ToolContext
from keen.tools.files import looks_binary, walk
from keen.tools.registry import Tool, ToolError, tool
from keen.tools.workspace import Workspace

MAX_FILE_BYTES = 2 * 1024 * 1024  # larger files are generated or data, not code worth grepping
MAX_LINE_CHARS = 300


class SearchFilesInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pattern: str = Field(min_length=1, description="Python regular expression searched in each line.")
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
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"invalid regular expression {value!r}: {exc}") from exc
        return value

    @field_validator("glob")
    @classmethod
    def _glob_parses(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                pathspec.GitIgnoreSpec.from_lines([value])
            except ValueError as exc:
                raise ValueError(f"invalid glob {value!r}: {exc}") from exc
        return value


@tool(
    "search_files",
    "Search text files for a regular expression (Python syntax; prefix (?i) to ignore case) and "
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
    start = ctx.workspace.resolve(args.path)
    if not start.exists():
        raise ToolError(f"{args.path!r} does not exist in the workspace")
    return await asyncio.to_thread(_search, ctx.workspace, start, args)


def _search(workspace: Workspace, start: Path, args: SearchFilesInput) -> dict[str, Any]:
    regex = re.compile(args.pattern)
    matches: list[dict[str, Any]] = []
    searched = skipped_binary = skipped_large = 0
    truncated = False
    for path in _candidates(workspace, start, args.glob):
        text, reason = _text_of(workspace, path)
        if reason == "binary":
            skipped_binary += 1
        elif reason == "large":
            skipped_large += 1
        if text is None:
            continue
        searched += 1
        for number, line in enumerate(_lines(text), start=1):
            found = regex.search(line)
            if found is None:
                continue
            if len(matches) >= args.max_results:
                truncated = True
                break
            text_shown = _shorten(line, found.start())
            matches.append({"path": workspace.relative(path), "line": number, "text": text_shown})
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


def _candidates(workspace: Workspace, start: Path, glob: str | None) -> Iterator[Path]:
    if start.is_file():  # a file asked for by name is searched whatever the ignore rules say
        yield start
        return
    spec = pathspec.GitIgnoreSpec.from_lines([glob]) if glob else None
    for entry in walk(workspace, start):
        if entry.is_dir or (spec is not None and not spec.match_file(entry.rel)):
            continue
        yield entry.path


def _text_of(workspace: Workspace, path: Path) -> tuple[str | None, str | None]:
    """The file's text, or None with the reason it is not searched."""
    try:
        target = workspace.resolve(workspace.relative(path))  # a symlink may point outside
        if not target.is_file():
            return None, "not a file"
        if target.stat().st_size > MAX_FILE_BYTES:
            return None, "large"
        data = target.read_bytes()
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


def _shorten(line: str, match_at: int) -> str:
    """At most MAX_LINE_CHARS of the line, keeping the match in view (minified files)."""
    line = line.rstrip()
    if len(line) <= MAX_LINE_CHARS:
        return line
    start = max(0, min(match_at - MAX_LINE_CHARS // 4, len(line) - MAX_LINE_CHARS))
    end = start + MAX_LINE_CHARS
    head = f"[... {start} characters] " if start else ""
    tail = f" [... {len(line) - end} characters]" if end < len(line) else ""
    return head + line[start:end] + tail


TOOLS: list[Tool] = [search_files]
