"""`edit_file`: exact-text replacement in one existing file."""

from __future__ import annotations

import stat
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from keen.text import looks_binary
from keen.tools.context import ToolContext
from keen.tools.registry import ToolError, tool


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
    workspace = ctx.workspace
    rel = workspace.relative(workspace.resolve(args.path, write=True))
    found = workspace.stat(args.path)
    if found is None or not stat.S_ISREG(found.st_mode):
        raise ToolError(f"{rel!r} is not an existing file; use write_files to create it")
    raw = workspace.read(args.path)[1]
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
    workspace.write(args.path, data)  # a new file renamed over the old: a hard link is not written through
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
