"""`get_project_tree`: the workspace as indented text, the way git sees it."""

from __future__ import annotations

import asyncio
import stat
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from keen.tools.context import ToolContext
from keen.tools.registry import ToolError, tool
from keen.tools.workspace import Workspace
from keen.walk import Entry, WalkStats, walk

MAX_TREE_ENTRIES = 1000


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
    shown = ctx.workspace.relative(ctx.workspace.resolve(args.path))
    found = ctx.workspace.stat(args.path)
    if found is None or not stat.S_ISDIR(found.st_mode):
        raise ToolError(f"{args.path!r} is not a directory in the workspace")
    start = ctx.workspace.real(args.path)
    return await asyncio.to_thread(_build_tree, ctx.workspace, shown, start, args)


def _build_tree(workspace: Workspace, shown: str, start: str, args: ProjectTreeInput) -> dict[str, Any]:
    stats = WalkStats()
    lines = [shown.rstrip("/") + "/"]
    directories = files = 0
    truncated = False
    entries = walk(
        workspace.root, start, max_depth=args.max_depth, include_hidden=args.include_hidden, stats=stats
    )
    for entry in entries:
        if directories + files >= MAX_TREE_ENTRIES:
            truncated = True
            break
        if entry.is_dir:
            directories += 1
        else:
            files += 1
        lines.append("  " * entry.depth + _label(entry))
    result: dict[str, Any] = {
        "path": shown,
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
    if entry.link is not None:
        return f"{entry.name} -> {entry.link}"
    return entry.name + "/" if entry.is_dir else entry.name
