"""`/api/v1/agents`: start a run, read sessions, their trees, events, live stream, workspace
files, diff and archive, and cancel them (SPEC 8.5).

Routes only translate HTTP to the runner: `ServerRuns` starts and cancels runs, the session
service reads sessions as the caller (another user's session is not found; admins see all),
`runner.workspace_view` reads workspaces.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response, status
from fastapi.responses import StreamingResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent

from keen.auth import Principal
from keen.auth.scopes import AGENTS_EXECUTE, SESSIONS_READ
from keen.errors import InputError
from keen.events.bus import LiveDelta
from keen.events.types import Event
from keen.runner import workspace_view
from keen.runner.server_runs import ServerRuns
from keen.runner.session_view import STATUSES
from keen.runner.sessions import SessionService
from keen.server.agent_schemas import (
    EventOut,
    EventPage,
    ExecuteBody,
    FileList,
    FileOut,
    SessionOut,
    SessionPage,
    TreeOut,
)
from keen.server.deps import DbSession, OriginDep, require_scope, require_scope_briefly
from keen.server.ratelimit import limiter_of
from keen.server.schemas import ErrorEnvelope
from keen.server.streams import HEARTBEAT, encoded_event, live_stream
from keen.store.actor import Actor
from keen.store.models import SessionRow

router = APIRouter(prefix="/api/v1/agents", tags=["agents"])
Executor = Annotated[Principal, Depends(require_scope(AGENTS_EXECUTE))]
Reader = Annotated[Principal, Depends(require_scope(SESSIONS_READ))]
# Streams last as long as their run: their caller is checked in a transaction that ends first.
StreamReader = Annotated[Principal, Depends(require_scope_briefly(SESSIONS_READ))]
SessionId = Annotated[
    str, Path(min_length=1, max_length=64, description="A session id (or an unambiguous prefix)")
]
MAX_PAGE = 100
MAX_EVENTS = 1000


def _errors(**described: str) -> dict[int | str, dict[str, Any]]:
    return {int(code[1:]): {"model": ErrorEnvelope, "description": text} for code, text in described.items()}


def runs_of(request: Request) -> ServerRuns:
    runs: ServerRuns = request.app.state.runs
    return runs


def actor_of(principal: Principal) -> Actor:
    return Actor(principal.user_id, principal.is_admin)


async def execute_rate_limit(request: Request, principal: Executor) -> Principal:
    """Executions per user (`KEEN_RATE_LIMIT_EXECUTE`), counted once the user is known."""
    limiter = limiter_of(request)
    item = limiter.resolve(lambda s: s.keen_rate_limit_execute)
    await limiter.hit(request, "execute", item, f"user:{principal.user_id}")
    return principal


def session_out(service: SessionService, row: SessionRow) -> SessionOut:
    return SessionOut.model_validate(service.summary(row))


@router.post(
    "/execute",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=SessionOut,
    summary="Start an agent run on a vision (in a new workspace, or a clone of repo_url)",
    responses=_errors(
        _402="Credits cannot cover the first model call",
        _409="Too many of your sessions are running",
        _503="Agent runs are off (no sandbox)",
    ),
)
async def execute(
    body: ExecuteBody,
    request: Request,
    session: DbSession,
    principal: Annotated[Principal, Depends(execute_rate_limit)],
    origin: OriginDep,
) -> SessionOut:
    runs = runs_of(request)
    actor = actor_of(principal)
    row = await runs.execute(session, actor, body.execution(), origin)
    return session_out(runs.service(actor), row)


@router.get("/sessions", response_model=SessionPage, summary="Your sessions (an admin's: everyone's)")
async def list_sessions(
    request: Request,
    principal: Reader,
    status: Annotated[str | None, Query(max_length=32, description=f"One of: {', '.join(STATUSES)}")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 20,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> SessionPage:
    async with runs_of(request).service(actor_of(principal)) as service:
        rows = await service.recent(limit=limit, status=status, offset=offset)
        total = await service.count(status=status)
        items = [session_out(service, row) for row in rows]
    return SessionPage(items=items, total=total, limit=limit, offset=offset)


@router.get("/sessions/{session_id}", response_model=SessionOut, summary="One session")
async def get_session(request: Request, principal: Reader, session_id: SessionId) -> SessionOut:
    async with runs_of(request).service(actor_of(principal)) as service:
        return session_out(service, await service.get(session_id))


@router.get("/sessions/{session_id}/tree", response_model=TreeOut, summary="The session's agent tree")
async def get_tree(request: Request, principal: Reader, session_id: SessionId) -> TreeOut:
    async with runs_of(request).service(actor_of(principal)) as service:
        root = await service.root(session_id)
        projection = await service.tree(root.id)
    return TreeOut.model_validate({"root": projection.to_dict(), "last_seq": projection.last_seq})


@router.get(
    "/sessions/{session_id}/events",
    response_model=EventPage,
    summary="The events of the session's tree after a seq, in order",
)
async def get_events(
    request: Request,
    principal: Reader,
    session_id: SessionId,
    after_seq: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_EVENTS)] = 500,
) -> EventPage:
    async with runs_of(request).service(actor_of(principal)) as service:
        root = await service.root(session_id)
        events = await service.events_store.events(root.id, after_seq=after_seq, limit=limit)
    items = [EventOut.model_validate(e.to_dict()) for e in events]
    return EventPage(items=items, after_seq=events[-1].seq if events else after_seq)


async def streamed_root(
    request: Request, principal: StreamReader, session_id: SessionId
) -> tuple[Actor, str]:
    """The caller and the root to stream (resolved before the stream starts, so a refusal is
    an ordinary error response)."""
    actor = actor_of(principal)
    async with runs_of(request).service(actor) as service:
        root = await service.root(session_id)
    return actor, root.id


def resume_from(
    after_seq: Annotated[int, Query(ge=0)] = 0,
    last_event_id: Annotated[str | None, Header(max_length=40)] = None,
) -> int:
    """The seq to stream after: `Last-Event-ID` (a reconnecting EventSource sends it), else
    `after_seq` (checked before the stream starts, so a bad one is an ordinary 422)."""
    if last_event_id is None or not last_event_id.strip():
        return after_seq
    try:
        value = int(last_event_id.strip())
    except ValueError:
        raise InputError("Last-Event-ID must be the seq of an event") from None
    if value < 0:
        raise InputError("Last-Event-ID must be the seq of an event")
    return value


@router.get(
    "/sessions/{session_id}/stream",
    response_class=EventSourceResponse,
    summary="Server-Sent Events: every event of the tree (`id` = seq), live text deltas and heartbeats",
    description="Resumes after `Last-Event-ID` (or `after_seq`); ends after the root's `session.finished`.",
)
async def stream(
    request: Request,
    target: Annotated[tuple[Actor, str], Depends(streamed_root)],
    start: Annotated[int, Depends(resume_from)],
) -> AsyncIterator[ServerSentEvent]:
    actor, root_id = target
    runs = runs_of(request)
    async with runs.service(actor) as service:
        items = live_stream(
            runs.bus, service.events_store, root_id, start, runs.settings.keen_stream_heartbeat_seconds
        )
        async for item in items:
            if item is HEARTBEAT:
                yield ServerSentEvent(comment="heartbeat")
            elif isinstance(item, Event):
                yield ServerSentEvent(id=str(item.seq), event=item.type, raw_data=encoded_event(item))
            elif isinstance(item, LiveDelta):
                data = {"session_id": item.session_id, "kind": item.kind, "text": item.text}
                yield ServerSentEvent(event="delta", data=data)


@router.post(
    "/sessions/{session_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=SessionOut,
    summary="Cancel the session's tree (running commands are killed, holds released)",
    responses=_errors(_409="The session has already finished"),
)
async def cancel(
    request: Request, session: DbSession, principal: Executor, session_id: SessionId, origin: OriginDep
) -> SessionOut:
    runs = runs_of(request)
    actor = actor_of(principal)
    row = await runs.cancel(session, actor, session_id, origin)
    return session_out(runs.service(actor), row)


async def _workspace(request: Request, principal: Principal, session_id: str) -> tuple[SessionRow, Any]:
    async with runs_of(request).service(actor_of(principal)) as service:
        root = await service.root(session_id)
    return root, workspace_view.workspace_of(root.workspace)


@router.get("/sessions/{session_id}/files", response_model=FileList, summary="The workspace's files")
async def list_files(request: Request, principal: Reader, session_id: SessionId) -> FileList:
    _root, workspace = await _workspace(request, principal, session_id)
    entries, truncated = workspace_view.list_files(workspace)
    return FileList(items=[FileOut(**vars(e)) for e in entries], truncated=truncated)


@router.get(
    "/sessions/{session_id}/files/{path:path}",
    response_class=Response,
    summary="One file of the workspace",
    responses={200: {"content": {"application/octet-stream": {}}, "description": "The file's bytes"}},
)
async def read_file(
    request: Request, principal: Reader, session_id: SessionId, path: Annotated[str, Path(max_length=4096)]
) -> Response:
    _root, workspace = await _workspace(request, principal, session_id)
    data = workspace_view.read_file(workspace, path)
    return Response(content=data, media_type="application/octet-stream")


@router.get(
    "/sessions/{session_id}/diff",
    response_class=Response,
    summary="The workspace's changes since the session started, as a patch",
    responses={200: {"content": {"text/x-diff": {}}, "description": "A git patch"}},
)
async def diff(request: Request, principal: Reader, session_id: SessionId) -> Response:
    root, workspace = await _workspace(request, principal, session_id)
    patch = await workspace_view.diff(workspace, root.start_commit or "HEAD")
    return Response(content=patch, media_type="text/x-diff; charset=utf-8")


@router.get(
    "/sessions/{session_id}/archive",
    response_class=StreamingResponse,
    summary="The workspace as a gzipped tarball (streamed)",
    responses={200: {"content": {"application/gzip": {}}, "description": "A .tar.gz of the workspace"}},
)
async def archive(request: Request, principal: Reader, session_id: SessionId) -> StreamingResponse:
    root, workspace = await _workspace(request, principal, session_id)
    name = f"keen-{root.short_id}.tar.gz"
    return StreamingResponse(
        workspace_view.archive(workspace),
        media_type="application/gzip",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
