"""The workspace pages of a session: its files, one file in a viewer, and the diff against the
session's start commit, read through the workspace's confinement as the API reads them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from starlette.responses import Response

from keen.auth import Principal
from keen.errors import KeenError, NotFoundError
from keen.runner import workspace_view
from keen.server.dashboard.render import error_page, not_found, page
from keen.server.dashboard.session import browser_principal
from keen.server.routes import agents
from keen.store.models import SessionRow

router = APIRouter(include_in_schema=False)
Browser = Annotated[Principal, Depends(browser_principal)]
FilePath = Annotated[str, Path(max_length=4096)]


@dataclass(frozen=True)
class DiffLine:
    text: str
    kind: str  # "add", "del", "hunk", "file" or ""


async def workspace(request: Request, me: Principal, session_id: str) -> tuple[SessionRow, Any]:
    async with agents.runs_of(request).service(agents.actor_of(me)) as service:
        root = await service.root(session_id)
    return root, workspace_view.workspace_of(root.workspace)


def diff_lines(patch: str) -> list[DiffLine]:
    lines = []
    for line in patch.splitlines():
        if line.startswith(("+++", "---", "diff --git")):
            kind = "file"
        elif line.startswith("@@"):
            kind = "hunk"
        elif line.startswith("+"):
            kind = "add"
        elif line.startswith("-"):
            kind = "del"
        else:
            kind = ""
        lines.append(DiffLine(line, kind))
    return lines


@router.get("/sessions/{session_id}/files")
async def files_page(request: Request, me: Browser, session_id: agents.SessionId) -> Response:
    try:
        root, space = await workspace(request, me, session_id)
        entries, truncated = workspace_view.list_files(space)
    except NotFoundError:
        return not_found(request, me)
    except KeenError as exc:
        return error_page(request, me, str(exc), exc.http_status)
    files = [e for e in entries if e.type != "dir"]
    return page(request, "files.html", me, root=root, files=files, truncated=truncated)


@router.get("/sessions/{session_id}/files/{path:path}")
async def file_page(request: Request, me: Browser, session_id: agents.SessionId, path: FilePath) -> Response:
    try:
        root, space = await workspace(request, me, session_id)
        data = workspace_view.read_file(space, path)
    except NotFoundError:
        return not_found(request, me)
    except KeenError as exc:
        return error_page(request, me, str(exc), exc.http_status)
    try:
        text: str | None = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    return page(request, "file.html", me, root=root, path=path, text=text, size=len(data))


@router.get("/sessions/{session_id}/changes")
async def diff_page(request: Request, me: Browser, session_id: agents.SessionId) -> Response:
    try:
        root, space = await workspace(request, me, session_id)
        patch = await workspace_view.diff(space, root.start_commit or "HEAD")
    except NotFoundError:
        return not_found(request, me)
    except KeenError as exc:
        return error_page(request, me, str(exc), exc.http_status)
    return page(request, "diff.html", me, root=root, lines=diff_lines(patch))
