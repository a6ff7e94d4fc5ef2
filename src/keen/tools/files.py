"""File tools: project tree, reading, writing (all or nothing), exact-text edits, deletion.

Every path goes through `Workspace.resolve`; results name files by workspace-relative paths.
The ignore rules and the walker here are shared with `search_files`.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pathspec
from pydantic import BaseModel, ConfigDict, Field, model_validator

from keen.errors import PathEscapeError
from keen.tools.context import ToolContext
from keen.tools.registry import Tool, ToolError, tool
from keen.tools.workspace import Workspace

MIB = 1024 * 1024
MAX_TREE_ENTRIES = 1000
BINARY_SNIFF_BYTES = 8192

# Dependency, cache and build folders: never worth showing or searching, ignored or not.
SKIPPED_DIRS = frozenset(
    {
        ".git",
        "node_modules",
        ".venv",
        "venv",
        "__pycache__",
        "dist",
        "build",
        "target",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".tox",
        ".nox",
        ".next",
    }
)


# --- ignore rules and walking (shared with search) ------------------------------------------


class IgnoreRules:
    """What git would ignore in a workspace, plus the folders in `SKIPPED_DIRS`.

    Reads the `.gitignore` of every directory on the way (nested files included, a deeper file
    taking precedence as in git) and `.git/info/exclude`. Files are parsed once and cached.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self._specs: dict[Path, pathspec.GitIgnoreSpec | None] = {}
        self._exclude = _load_spec(root / ".git" / "info" / "exclude")

    def ignored(self, path: Path, *, is_dir: bool) -> bool:
        if path.name == ".git" or (is_dir and path.name in SKIPPED_DIRS):  # .git is a file in worktrees
            return True
        suffix = "/" if is_dir else ""
        base = path.parent
        while True:  # the nearest .gitignore with a matching pattern decides
            spec = self._spec_for(base)
            if spec is not None:
                decision = spec.check_file(path.relative_to(base).as_posix() + suffix).include
                if decision is not None:
                    return decision
            if base == self.root or self.root not in base.parents:
                break
            base = base.parent
        if self._exclude is not None:
            return bool(self._exclude.check_file(path.relative_to(self.root).as_posix() + suffix).include)
        return False

    def _spec_for(self, directory: Path) -> pathspec.GitIgnoreSpec | None:
        if directory not in self._specs:
            self._specs[directory] = _load_spec(directory / ".gitignore")
        return self._specs[directory]


def _load_spec(path: Path) -> pathspec.GitIgnoreSpec | None:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    return pathspec.GitIgnoreSpec.from_lines(lines)


@dataclass(frozen=True)
class Entry:
    path: Path  # absolute
    rel: str  # workspace-relative
    depth: int  # 1 for the children of the walk's start
    is_dir: bool
    is_symlink: bool


@dataclass
class WalkStats:
    ignored: int = 0  # entries left out by .gitignore or SKIPPED_DIRS
    hidden: int = 0  # dot-entries left out because hidden ones were not asked for


def walk(
    workspace: Workspace,
    start: Path,
    *,
    max_depth: int | None = None,
    include_hidden: bool = True,
    stats: WalkStats | None = None,
) -> Iterator[Entry]:
    """Entries under `start` depth-first (directories before files, each by name).

    Symlinked directories are listed but not entered, so a walk never loops or leaves the
    workspace; unreadable directories are passed over.
    """
    rules = IgnoreRules(workspace.root)
    stats = stats if stats is not None else WalkStats()
    yield from _walk_dir(workspace, rules, start, 1, max_depth, include_hidden, stats)


def _walk_dir(
    workspace: Workspace,
    rules: IgnoreRules,
    directory: Path,
    depth: int,
    max_depth: int | None,
    include_hidden: bool,
    stats: WalkStats,
) -> Iterator[Entry]:
    try:
        with os.scandir(directory) as it:
            children = list(it)
    except OSError:
        return
    entries: list[Entry] = []
    for child in children:
        is_dir = child.is_dir(follow_symlinks=False)
        path = directory / child.name
        if not include_hidden and child.name.startswith("."):
            stats.hidden += 1
        elif rules.ignored(path, is_dir=is_dir):
            stats.ignored += 1
        else:
            rel = workspace.relative(path)
            entries.append(Entry(path, rel, depth, is_dir, child.is_symlink()))
    entries.sort(key=lambda e: (not e.is_dir, e.path.name))
    for entry in entries:
        yield entry
        if entry.is_dir and (max_depth is None or depth < max_depth):
            yield from _walk_dir(workspace, rules, entry.path, depth + 1, max_depth, include_hidden, stats)


def looks_binary(head: bytes) -> bool:
    """Git's heuristic: a NUL byte near the start means binary."""
    return b"\x00" in head[:BINARY_SNIFF_BYTES]


def _single_to_list(data: Any, key: str) -> Any:
    """Accept `"a.py"` where a list of paths is expected: models often send one path bare."""
    if isinstance(data, dict) and isinstance(data.get(key), str):
        return {**data, key: [data[key]]}
    return data


# --- get_project_tree -----------------------------------------------------------------------


class ProjectTreeInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(default=".", description="Directory to show, relative to the workspace root.")
    max_depth: int = Field(default=3, ge=1, le=20, description="How many levels below `path` to show.")
    include_hidden: bool = Field(default=False, description="Also show dot-files and dot-folders.")


@tool(
    "get_project_tree",
    "Show the directory tree of the workspace (or of `path` inside it) as indented text, "
    "directories first and marked with a trailing '/'. Honours .gitignore files (nested ones "
    "too) and always skips dependency and build folders (node_modules, .venv, __pycache__, dist, "
    "build, target, .git, caches). Dot-files are hidden unless include_hidden is true. Shows at "
    f"most {MAX_TREE_ENTRIES} entries; when capped it says so — then ask for a subdirectory or a "
    "smaller max_depth. Use it to get oriented before reading files.",
    ProjectTreeInput,
    read_only=True,
)
async def get_project_tree(ctx: ToolContext, args: ProjectTreeInput) -> dict[str, Any]:
    start = ctx.workspace.resolve(args.path)
    if not start.is_dir():
        raise ToolError(f"{args.path!r} is not a directory in the workspace")
    return await asyncio.to_thread(_build_tree, ctx.workspace, start, args)


def _build_tree(workspace: Workspace, start: Path, args: ProjectTreeInput) -> dict[str, Any]:
    stats = WalkStats()
    lines = [workspace.relative(start).rstrip("/") + "/"]
    directories = files = 0
    truncated = False
    for entry in walk(
        workspace, start, max_depth=args.max_depth, include_hidden=args.include_hidden, stats=stats
    ):
        if directories + files >= MAX_TREE_ENTRIES:
            truncated = True
            break
        if entry.is_dir:
            directories += 1
        else:
            files += 1
        lines.append("  " * entry.depth + _label(entry))
    result: dict[str, Any] = {
        "path": workspace.relative(start),
        "tree": "\n".join(lines),
        "directories": directories,
        "files": files,
        "ignored_entries": stats.ignored,
        "hidden_entries": stats.hidden,
        "truncated": truncated,
    }
    if truncated:
        result["note"] = (
            f"stopped after {MAX_TREE_ENTRIES} entries; ask for a subdirectory as path or a smaller max_depth"
        )
    return result


def _label(entry: Entry) -> str:
    name = entry.path.name
    if entry.is_symlink:
        try:
            return f"{name} -> {os.readlink(entry.path)}"
        except OSError:
            return f"{name} -> ?"
    return name + "/" if entry.is_dir else name


# --- read_files -----------------------------------------------------------------------------


class ReadFilesInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    paths: list[str] = Field(
        min_length=1, max_length=100, description="Files to read, relative to the workspace."
    )
    max_bytes: int = Field(
        default=MIB, ge=1, le=10 * MIB, description="Bytes to read at most from each file."
    )

    @model_validator(mode="before")
    @classmethod
    def _one_path(cls, data: Any) -> Any:
        return _single_to_list(data, "paths")


@tool(
    "read_files",
    "Read one or more text files. Returns, per file, its content and size in bytes; a file "
    "larger than max_bytes (default 1 MiB) is cut there and marked truncated. Binary files are "
    "reported as binary without content. A path that cannot be read gets its own error entry; "
    "the other files are still returned. Read several related files in one call.",
    ReadFilesInput,
    read_only=True,
)
async def read_files(ctx: ToolContext, args: ReadFilesInput) -> dict[str, Any]:
    return await asyncio.to_thread(_read_all, ctx.workspace, args)


def _read_all(workspace: Workspace, args: ReadFilesInput) -> dict[str, Any]:
    results = [_read_one(workspace, path, args.max_bytes) for path in args.paths]
    return {"files": results, "errors": sum(1 for r in results if "error" in r)}


def _read_one(workspace: Workspace, path: str, max_bytes: int) -> dict[str, Any]:
    try:
        target = workspace.resolve(path)
    except PathEscapeError as exc:
        return {"path": path, "error": exc.message}
    rel = workspace.relative(target)
    if target.is_dir():
        return {"path": rel, "error": "is a directory; use get_project_tree to list it"}
    if target.exists() and not target.is_file():  # a FIFO or device would block or never end
        return {"path": rel, "error": "is not a regular file"}
    try:
        size = target.stat().st_size
        with target.open("rb") as fh:
            data = fh.read(max_bytes)
    except FileNotFoundError:
        return {"path": rel, "error": "file not found"}
    except OSError as exc:
        return {"path": rel, "error": f"cannot read: {exc.strerror or exc}"}
    if looks_binary(data):
        return {"path": rel, "size": size, "binary": True}
    result: dict[str, Any] = {"path": rel, "size": size, "content": data.decode("utf-8", errors="replace")}
    if size > len(data):
        result["truncated"] = True
        result["note"] = f"only the first {len(data)} of {size} bytes; use search_files to find the rest"
    return result


# --- write_files ----------------------------------------------------------------------------


class FileContent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(description="File path relative to the workspace.")
    content: str = Field(description="The complete new content of the file.")


class WriteFilesInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    files: list[FileContent] = Field(min_length=1, description="Files to write, each with its full content.")

    @model_validator(mode="before")
    @classmethod
    def _bare_file(cls, data: Any) -> Any:
        """A bare `{path, content}` (or a plain list of them) means those files."""
        if isinstance(data, list):
            return {"files": data}
        if isinstance(data, dict) and "files" not in data and "path" in data:
            return {"files": [data]}
        return data


@dataclass
class _Planned:
    given: str
    target: Path
    data: bytes
    original: bytes | None  # None for a new file


@dataclass
class _Undo:
    restore: list[tuple[Path, bytes]] = field(default_factory=list)
    created_files: list[Path] = field(default_factory=list)
    created_dirs: list[Path] = field(default_factory=list)


@tool(
    "write_files",
    "Create or overwrite files with complete contents. All or nothing: every path is checked "
    "first and if any write fails the files already written are restored and new files and "
    "folders removed. Parent directories are created. Reports per file whether it was created "
    "or overwritten and its size. For a small change to an existing file prefer edit_file. "
    "Files inside .git cannot be written.",
    WriteFilesInput,
)
async def write_files(ctx: ToolContext, args: WriteFilesInput) -> dict[str, Any]:
    # Synchronous on purpose: a cancellation cannot land between a write and its rollback.
    plan = _plan_writes(ctx.workspace, args.files)
    undo = _Undo()
    current = plan[0]
    try:
        for current in plan:
            _write_one(current, undo)
    except BaseException as exc:
        leftovers = _rollback(undo)
        if not isinstance(exc, OSError):
            raise
        message = f"writing {current.given!r} failed: {exc.strerror or exc}; no file was changed"
        if leftovers:
            message += f" (but could not undo: {'; '.join(leftovers)})"
        raise ToolError(message) from exc
    written = [
        {
            "path": ctx.workspace.relative(item.target),
            "status": "created" if item.original is None else "overwritten",
            "bytes": len(item.data),
        }
        for item in plan
    ]
    return {"files": written, "total_bytes": sum(len(item.data) for item in plan)}


def _plan_writes(workspace: Workspace, files: list[FileContent]) -> list[_Planned]:
    """Check every file before touching any; collect all problems into one error."""
    problems: list[str] = []
    plan: list[_Planned] = []
    targets: set[Path] = set()
    for spec in files:
        try:
            target = workspace.resolve(spec.path, write=True)
        except PathEscapeError as exc:
            problems.append(exc.message)
            continue
        problem = _write_problem(workspace, target, targets)
        if problem is None:
            try:
                data = spec.content.encode("utf-8")
                original = target.read_bytes() if os.path.lexists(target) else None
            except UnicodeEncodeError:
                problem = "content is not valid Unicode text"
            except OSError as exc:
                problem = f"cannot read the current file: {exc.strerror or exc}"
        if problem is not None:
            problems.append(f"{spec.path!r}: {problem}")
            continue
        targets.add(target)
        plan.append(_Planned(spec.path, target, data, original))
    if problems:
        raise ToolError("no file was written: " + "; ".join(problems))
    return plan


def _write_problem(workspace: Workspace, target: Path, earlier: set[Path]) -> str | None:
    if target == workspace.root or os.path.isdir(target):
        return "is a directory"
    if os.path.exists(target) and not os.path.isfile(target):
        return "is not a regular file"
    if target in earlier:
        return "is listed more than once"
    if any(target in other.parents for other in earlier):
        return "is also a parent directory of another file being written"
    for parent in target.parents:
        if parent in earlier:
            return f"its parent {workspace.relative(parent)!r} is also being written as a file"
        if os.path.lexists(parent):
            return None if os.path.isdir(parent) else f"its parent {workspace.relative(parent)!r} is a file"
    return None


def _write_one(item: _Planned, undo: _Undo) -> None:
    missing = [p for p in reversed(item.target.parents) if not os.path.lexists(p)]
    for directory in missing:
        directory.mkdir()
        undo.created_dirs.append(directory)
    if item.original is None:
        undo.created_files.append(item.target)
    else:
        undo.restore.append((item.target, item.original))
    with item.target.open("xb" if item.original is None else "wb") as fh:
        fh.write(item.data)


def _rollback(undo: _Undo) -> list[str]:
    """Put everything back as it was; returns what could not be undone."""
    failures: list[str] = []
    for path, original in undo.restore:
        try:
            path.write_bytes(original)
        except OSError as exc:
            failures.append(f"restore {path.name}: {exc}")
    for path in undo.created_files:
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            failures.append(f"remove {path.name}: {exc}")
    for directory in reversed(undo.created_dirs):
        try:
            directory.rmdir()
        except OSError as exc:
            failures.append(f"remove {directory.name}/: {exc}")
    return failures


# --- edit_file ------------------------------------------------------------------------------


class EditFileInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(description="File to edit, relative to the workspace.")
    old_text: str = Field(min_length=1, description="Exact text to replace, whitespace included.")
    new_text: str = Field(description="Text to put in its place (may be empty to delete).")
    replace_all: bool = Field(default=False, description="Replace every occurrence instead of exactly one.")


@tool(
    "edit_file",
    "Replace an exact piece of text in one existing file. old_text must match the file exactly "
    "(indentation, whitespace and line breaks included) and, unless replace_all is true, occur "
    "exactly once — include a few surrounding lines to make it unique. Fails with the number of "
    "occurrences when the text is missing or ambiguous. Use write_files to create files or to "
    "rewrite most of one.",
    EditFileInput,
)
async def edit_file(ctx: ToolContext, args: EditFileInput) -> dict[str, Any]:
    target = ctx.workspace.resolve(args.path, write=True)
    rel = ctx.workspace.relative(target)
    if not target.is_file():
        raise ToolError(f"{rel!r} is not an existing file; use write_files to create it")
    raw = target.read_bytes()
    if looks_binary(raw):
        raise ToolError(f"{rel!r} is a binary file; edit_file only edits text")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ToolError(f"{rel!r} is not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    if args.old_text == args.new_text:
        raise ToolError("old_text and new_text are identical; nothing to change")
    old, new, count = _with_file_line_endings(text, args.old_text, args.new_text)
    if count == 0:
        raise ToolError(
            f"old_text was not found in {rel!r}; read the file again and copy the text exactly, "
            "whitespace and indentation included"
        )
    if count > 1 and not args.replace_all:
        raise ToolError(
            f"old_text appears {count} times in {rel!r}; include more surrounding lines to make it "
            "unique, or set replace_all to true"
        )
    first_line = text[: text.index(old)].count("\n") + 1
    updated = text.replace(old, new) if args.replace_all else text.replace(old, new, 1)
    data = updated.encode("utf-8")
    target.write_bytes(data)
    return {
        "path": rel,
        "replacements": count if args.replace_all else 1,
        "first_line": first_line,
        "bytes": len(data),
    }


def _with_file_line_endings(text: str, old: str, new: str) -> tuple[str, str, int]:
    """The texts to swap and how often `old` occurs.

    Models write `\n`; in a CRLF file a multi-line `old` then matches only with `\r\n`, and
    the replacement gets the file's line endings too.
    """
    count = text.count(old)
    if count == 0 and "\r\n" in text and "\n" in old and "\r\n" not in old:
        crlf_old = old.replace("\n", "\r\n")
        crlf_count = text.count(crlf_old)
        if crlf_count:
            return crlf_old, new.replace("\r\n", "\n").replace("\n", "\r\n"), crlf_count
    return old, new, count


# --- delete_files ---------------------------------------------------------------------------


class DeleteFilesInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    paths: list[str] = Field(
        min_length=1, max_length=200, description="Paths to delete, relative to the workspace."
    )
    recursive: bool = Field(default=False, description="Allow deleting directories with everything in them.")

    @model_validator(mode="before")
    @classmethod
    def _one_path(cls, data: Any) -> Any:
        return _single_to_list(data, "paths")


@tool(
    "delete_files",
    "Delete files inside the workspace. Every path is checked first; if any is missing, outside "
    "the workspace, inside .git, or a directory while recursive is false, nothing is deleted. "
    "Directories are deleted (with their contents) only when recursive is true; the workspace "
    "root itself never. A symlink is removed, not what it points to.",
    DeleteFilesInput,
)
async def delete_files(ctx: ToolContext, args: DeleteFilesInput) -> dict[str, Any]:
    targets = _plan_deletes(ctx.workspace, args)
    deleted = []
    for target in targets:
        kind = "directory" if target.is_dir() and not target.is_symlink() else "file"
        if kind == "directory":
            shutil.rmtree(target)
        else:
            target.unlink()
        deleted.append({"path": ctx.workspace.relative(target), "deleted": kind})
    return {"deleted": deleted}


def _plan_deletes(workspace: Workspace, args: DeleteFilesInput) -> list[Path]:
    problems: list[str] = []
    targets: list[Path] = []
    for path in args.paths:
        try:
            target = workspace.resolve(path, write=True)
        except PathEscapeError as exc:
            problems.append(exc.message)
            continue
        if target == workspace.root:
            problems.append(f"{path!r} is the workspace root")
        elif not os.path.lexists(target):
            problems.append(f"{path!r} does not exist")
        elif target.is_dir() and not target.is_symlink() and not args.recursive:
            problems.append(f"{path!r} is a directory; set recursive to true to delete it and its contents")
        elif target not in targets:
            targets.append(target)
    if problems:
        raise ToolError("nothing was deleted: " + "; ".join(problems))
    # A directory deleted first would make the files listed inside it vanish before their turn.
    return [t for t in targets if not any(p in targets for p in t.parents)]


TOOLS: list[Tool] = [get_project_tree, read_files, write_files, edit_file, delete_files]
