"""`delete_files`: files and (when asked) directories, all checked before any is deleted."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from keen.errors import PathEscapeError
from keen.tools.context import ToolContext
from keen.tools.files.inputs import PathList
from keen.tools.registry import ToolError, tool
from keen.tools.workspace import Workspace


class DeleteFilesInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    paths: PathList = Field(
        min_length=1, max_length=200, description="Paths to delete, relative to the workspace."
    )
    recursive: bool = Field(default=False, description="Allow deleting directories with everything in them.")


@tool(
    "delete_files",
    "Delete files inside the workspace. Every path is checked first; if any is missing, outside "
    "the workspace, inside .git, or a directory while recursive is false, nothing is deleted. "
    "Directories are deleted (with their contents) only when recursive is true; the workspace "
    "root itself never. A symlink is removed, not what it points to.",
    DeleteFilesInput,
)
async def delete_files(ctx: ToolContext, args: DeleteFilesInput) -> dict[str, Any]:
    workspace = ctx.workspace
    deleted = []
    for given, target in _plan_deletes(workspace, args):
        kind = workspace.remove(given, recursive=args.recursive)
        deleted.append({"path": workspace.relative(target), "deleted": kind})
    return {"deleted": deleted}


def _plan_deletes(workspace: Workspace, args: DeleteFilesInput) -> list[tuple[str, Path]]:
    problems: list[str] = []
    targets: dict[Path, str] = {}
    for path in args.paths:
        try:
            target = workspace.resolve(path, write=True)
            found = workspace.lstat(path) if target != workspace.root else None
        except PathEscapeError as exc:
            problems.append(exc.message)
            continue
        if target == workspace.root:
            problems.append(f"{path!r} is the workspace root")
        elif found is None:
            problems.append(f"{path!r} does not exist")
        elif stat.S_ISDIR(found.st_mode) and not args.recursive:
            problems.append(f"{path!r} is a directory; set recursive to true to delete it and its contents")
        else:
            targets.setdefault(target, path)
    if problems:
        raise ToolError("nothing was deleted: " + "; ".join(problems))
    # A directory deleted first would make the files listed inside it vanish before their turn.
    return [(given, t) for t, given in targets.items() if not any(p in targets for p in t.parents)]
