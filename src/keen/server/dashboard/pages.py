"""The dashboard's pages at `/`: login (with the MFA step), sessions, starting a session and the
live view of one (SPEC 8.6). Pages are server-rendered; the live view's script reads the tree
and the event stream through the cookie-authenticated routes here, which call the same runner
services as the API (another user's session is not found: the 404 page)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal, InvalidOperation
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import ValidationError
from starlette.responses import Response

from keen.auth import AuthService, Principal
from keen.auth.service import MfaRequiredError
from keen.errors import KeenError, NotFoundError
from keen.server.agent_schemas import ExecuteBody
from keen.server.dashboard.render import error_page, form, not_found, page, redirect
from keen.server.dashboard.session import (
    PENDING_COOKIE,
    PENDING_SECONDS,
    SESSION_COOKIE,
    browser_principal,
    pending_logins,
    set_cookie,
)
from keen.server.dashboard.units import acting
from keen.server.deps import get_auth_policy, get_database, origin_of
from keen.server.routes import agents
from keen.store.actor import Actor

router = APIRouter(include_in_schema=False)
Browser = Annotated[Principal, Depends(browser_principal)]
PAGE_SIZE = 50


@router.get("/")
async def home() -> Response:
    return redirect("/sessions")


@router.get("/login")
async def login_page(request: Request) -> Response:
    return page(request, "login.html", email="", error=None)


@router.post("/login")
async def login(request: Request) -> Response:
    fields = await form(request)
    email, password = fields.get("email", ""), fields.get("password", "")
    return await sign_in(request, email, password, None, step="login.html")


@router.get("/login/mfa")
async def mfa_page(request: Request) -> Response:
    if pending_logins(request).get(request.cookies.get(PENDING_COOKIE)) is None:
        return redirect("/login")
    return page(request, "mfa.html", error=None)


@router.post("/login/mfa")
async def mfa(request: Request) -> Response:
    fields = await form(request)
    key = request.cookies.get(PENDING_COOKIE)
    pending = pending_logins(request).get(key)
    if pending is None:
        return redirect("/login")
    response = await sign_in(
        request, pending.email, pending.password, fields.get("code", ""), step="mfa.html"
    )
    if response.status_code == 303:
        pending_logins(request).drop(key)
        response.delete_cookie(PENDING_COOKIE, path="/")
    return response


async def sign_in(request: Request, email: str, password: str, code: str | None, step: str) -> Response:
    """Log in as the API does; the access token goes into the session cookie."""
    policy = get_auth_policy(request)
    try:
        async with get_database(request).transaction() as session:
            signed = await AuthService(session, policy).login(email, password, code, origin_of(request))
    except KeenError as exc:
        if isinstance(exc, MfaRequiredError) and code is None:
            response = redirect("/login/mfa")
            set_cookie(
                response,
                request,
                PENDING_COOKIE,
                pending_logins(request).add(email, password),
                PENDING_SECONDS,
            )
            return response
        return page(request, step, email=email, error=str(exc), status_code=exc.http_status)
    response = redirect("/sessions")
    set_cookie(response, request, SESSION_COOKIE, signed.access_token, signed.expires_in)
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    await form(request)
    response = redirect("/login")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/sessions")
async def sessions_page(request: Request, me: Browser) -> Response:
    runs = agents.runs_of(request)
    async with runs.service(agents.actor_of(me)) as service:
        rows = await service.recent(limit=PAGE_SIZE)
        items = [agents.session_out(service, row) for row in rows]
    return page(request, "sessions.html", me, sessions=items)


@router.get("/sessions.json")
async def session_statuses(request: Request, me: Browser) -> Response:
    """The status of each of the sessions the list shows (its badges update from it)."""
    async with agents.runs_of(request).service(agents.actor_of(me)) as service:
        rows = await service.recent(limit=PAGE_SIZE)
    return JSONResponse({row.id: row.status for row in rows}, headers={"Cache-Control": "no-store"})


@router.get("/sessions/new")
async def new_session_page(request: Request, me: Browser) -> Response:
    markup = agents.runs_of(request).settings.keen_credit_markup
    return page(request, "new_session.html", me, markup=markup, error=None, values={})


@router.post("/sessions/new")
async def start_session(request: Request, me: Browser) -> Response:
    fields = await form(request)
    runs = agents.runs_of(request)
    try:
        body = ExecuteBody.model_validate(
            {
                "vision": fields.get("vision", ""),
                "options": {
                    "model": fields.get("model") or None,
                    "budget": fields.get("budget") or "50",
                    "max_iterations": int(fields.get("max_iterations") or 100),
                    "max_depth": int(fields.get("max_depth") or 10),
                    "gates": fields.get("gates") or "standard",
                    "web_search": fields.get("web_search") == "on",
                },
            }
        )
        actor = agents.actor_of(me)
        async with acting(request, me) as session:
            row = await runs.execute(session, actor, body.execution(), origin_of(request))
    except (ValueError, ValidationError, KeenError) as exc:
        message = str(exc) if isinstance(exc, KeenError) else "check the form: " + _first_error(exc)
        markup = runs.settings.keen_credit_markup
        return page(
            request, "new_session.html", me, markup=markup, error=message, values=fields, status_code=400
        )
    return redirect(f"/sessions/{row.id}")


def _first_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        return f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
    return str(exc)


@router.get("/sessions/{session_id}")
async def session_page(request: Request, me: Browser, session_id: agents.SessionId) -> Response:
    runs = agents.runs_of(request)
    try:
        async with runs.service(agents.actor_of(me)) as service:
            row = await service.root(session_id)
            summary = agents.session_out(service, row)
    except NotFoundError:
        return not_found(request, me)
    budget = _budget_of(row.options)
    return page(request, "session.html", me, session=summary, budget=budget)


def _budget_of(options: object) -> Decimal | None:
    value = options.get("budget") if isinstance(options, dict) else None
    try:
        return Decimal(str(value)) if value is not None else None
    except InvalidOperation:
        return None


@router.get("/sessions/{session_id}/tree.json")
async def tree_json(request: Request, me: Browser, session_id: agents.SessionId) -> Response:
    runs = agents.runs_of(request)
    try:
        async with runs.service(agents.actor_of(me)) as service:
            root = await service.root(session_id)
            projection = await service.tree(root.id)
            summary = agents.session_out(service, root)
    except NotFoundError:
        return JSONResponse({"error": "not found"}, status_code=404)
    body = {"root": projection.to_dict(), "last_seq": projection.last_seq, "session": summary.model_dump()}
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


async def live_target(request: Request, me: Browser, session_id: agents.SessionId) -> tuple[Actor, str]:
    return await agents.streamed_root(request, me, session_id)


@router.get("/sessions/{session_id}/live", response_class=EventSourceResponse)
async def live(
    request: Request,
    target: Annotated[tuple[Actor, str], Depends(live_target)],
    start: Annotated[int, Depends(agents.resume_from)],
) -> AsyncIterator[ServerSentEvent]:
    """The API's event stream (resumed after `Last-Event-ID`), for the signed-in browser."""
    async for item in agents.stream(request, target, start):
        yield item


@router.post("/sessions/{session_id}/cancel")
async def cancel(request: Request, me: Browser, session_id: agents.SessionId) -> Response:
    await form(request)
    runs = agents.runs_of(request)
    try:
        async with acting(request, me) as session:
            await runs.cancel(session, agents.actor_of(me), session_id, origin_of(request))
    except NotFoundError:
        return not_found(request, me)
    except KeenError as exc:
        return error_page(request, me, str(exc), exc.http_status)
    return redirect(f"/sessions/{session_id}")
