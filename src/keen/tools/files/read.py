"""`read_files`: contents with sizes, per-file errors, a bound on the bytes of one call."""

from __future__ import annotations

import asyncio
import errno
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from keen.errors import PathEscapeError
from keen.text import looks_binary
from keen.tools.context import ToolContext
from keen.tools.files.inputs import PathList
from keen.tools.registry import tool
from keen.tools.workspace import Workspace

MIB = 1024 * 1024
MAX_FILE_BYTES = 10 * MIB
# What one call reads at most, all files together: a hundred large files must not take gigabytes.
MAX_CALL_BYTES = 10 * MIB


class ReadFilesInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    paths: PathList = Field(
        min_length=1, max_length=100, description="Files to read, relative to the workspace."
    )
    max_bytes: int = Field(
        default=MIB, ge=1, le=MAX_FILE_BYTES, description="Bytes to read at most from each file."
    )


@tool(
    "read_files",
    "Read one or more text files. Returns, per file, its content and size in bytes; a file "
    "larger than max_bytes (default 1 MiB) is cut there and marked truncated. Binary files are "
    "reported as binary without content. A path that cannot be read gets its own error entry; "
    f"the other files are still returned. One call reads at most {MAX_CALL_BYTES // MIB} MiB in "
    "all. Read several related files in one call.",
    ReadFilesInput,
    read_only=True,
)
async def read_files(ctx: ToolContext, args: ReadFilesInput) -> dict[str, Any]:
    return await asyncio.to_thread(_read_all, ctx.workspace, args)


def _read_all(workspace: Workspace, args: ReadFilesInput) -> dict[str, Any]:
    left = MAX_CALL_BYTES
    results = []
    for path in args.paths:
        result, used = _read_one(workspace, path, min(args.max_bytes, left))
        left -= used
        results.append(result)
    return {"files": results, "errors": sum(1 for r in results if "error" in r)}


def _read_one(workspace: Workspace, path: str, max_bytes: int) -> tuple[dict[str, Any], int]:
    """The file's entry and how many bytes were read for it."""
    try:
        rel = workspace.relative(workspace.resolve(path))
    except PathEscapeError as exc:
        return {"path": path, "error": exc.message}, 0
    if max_bytes <= 0:
        error = f"not read: this call already read {MAX_CALL_BYTES // MIB} MiB; read it in another call"
        return {"path": rel, "error": error}, 0
    try:
        size, data = workspace.read(path, max_bytes)
    except PathEscapeError as exc:
        return {"path": rel, "error": exc.message}, 0
    except IsADirectoryError:
        return {"path": rel, "error": "is a directory; use get_project_tree to list it"}, 0
    except FileNotFoundError:
        return {"path": rel, "error": "file not found"}, 0
    except OSError as exc:
        if exc.errno == errno.EINVAL:  # a FIFO or device would block or never end
            return {"path": rel, "error": "is not a regular file"}, 0
        return {"path": rel, "error": f"cannot read: {exc.strerror or exc}"}, 0
    if looks_binary(data):
        return {"path": rel, "size": size, "binary": True}, len(data)
    result: dict[str, Any] = {"path": rel, "size": size, "content": data.decode("utf-8", errors="replace")}
    if size > len(data):
        result["truncated"] = True
        result["note"] = f"only the first {len(data)} of {size} bytes; use search_files to find the rest"
    return result, len(data)
