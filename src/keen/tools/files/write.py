"""`write_files`: complete contents for several files, all or nothing."""

from __future__ import annotations

import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from keen.errors import PathEscapeError
from keen.tools.context import ToolContext
from keen.tools.registry import ToolError, tool
from keen.tools.workspace import Workspace


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
    target: Path  # the lexical absolute path, for reporting and overlap checks
    data: bytes
    original: bytes | None  # None for a new file


@dataclass
class _Undo:
    restore: list[tuple[str, bytes]] = field(default_factory=list)
    created_files: list[str] = field(default_factory=list)
    created_dirs: list[str] = field(default_factory=list)


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
    workspace = ctx.workspace
    plan = _plan_writes(workspace, args.files)
    undo = _Undo()
    current = plan[0]
    try:
        for current in plan:
            _write_one(workspace, current, undo)
    except BaseException as exc:
        leftovers = _rollback(workspace, undo)
        if not isinstance(exc, OSError | PathEscapeError):
            raise
        reason = exc.message if isinstance(exc, PathEscapeError) else exc.strerror or str(exc)
        message = f"writing {current.given!r} failed: {reason}; no file was changed"
        if leftovers:
            message += f" (but could not undo: {'; '.join(leftovers)})"
        raise ToolError(message) from exc
    written = [
        {
            "path": workspace.relative(item.target),
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
            problem = _write_problem(workspace, spec.path, target, targets)
            original = None
            if problem is None:
                data = spec.content.encode("utf-8")
                found = workspace.stat(spec.path)
                original = workspace.read(spec.path)[1] if found is not None else None
        except PathEscapeError as exc:
            problems.append(exc.message)
            continue
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


def _write_problem(workspace: Workspace, given: str, target: Path, earlier: set[Path]) -> str | None:
    found = workspace.stat(given)
    if target == workspace.root or (found is not None and stat.S_ISDIR(found.st_mode)):
        return "is a directory"
    if found is not None and not stat.S_ISREG(found.st_mode):
        return "is not a regular file"
    if target in earlier:
        return "is listed more than once"
    if any(target in other.parents for other in earlier):
        return "is also a parent directory of another file being written"
    for parent in target.parents:
        rel = workspace.relative(parent)
        if parent in earlier:
            return f"its parent {rel!r} is also being written as a file"
        kind = workspace.stat(rel)
        if kind is not None:
            return None if stat.S_ISDIR(kind.st_mode) else f"its parent {rel!r} is a file"
    return None


def _write_one(workspace: Workspace, item: _Planned, undo: _Undo) -> None:
    undo.created_dirs.extend(workspace.make_parents(item.given))
    if item.original is None:
        undo.created_files.append(item.given)
    else:
        undo.restore.append((item.given, item.original))
    workspace.write(item.given, item.data)


def _rollback(workspace: Workspace, undo: _Undo) -> list[str]:
    """Put everything back as it was; returns what could not be undone."""
    failures: list[str] = []
    for path, original in undo.restore:
        try:
            workspace.write(path, original)
        except (OSError, PathEscapeError) as exc:
            failures.append(f"restore {path}: {exc}")
    for path in undo.created_files:
        try:
            workspace.remove(path)
        except FileNotFoundError:
            pass
        except (OSError, PathEscapeError) as exc:
            failures.append(f"remove {path}: {exc}")
    for directory in reversed(undo.created_dirs):
        try:
            workspace.remove_empty_dir(directory)
        except (OSError, PathEscapeError) as exc:
            failures.append(f"remove {directory}/: {exc}")
    return failures
