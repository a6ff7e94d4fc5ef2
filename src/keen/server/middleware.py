"""Pure ASGI middleware (no BaseHTTPMiddleware: it breaks streaming and context variables).

From the outside in: security headers, the request context (id, catch-all 500), CORS, the body
size limit. Each one only adds headers or answers before the app does; none reads a body.
"""

from __future__ import annotations

import re
import uuid

from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from keen.server.errors import BodyTooLargeError, error_response, unhandled_error_response
from keen.server.logs import request_id_var

REQUEST_ID_HEADER = "X-Request-ID"
VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")

# The API and a future server-rendered dashboard with vendored scripts: everything from this
# origin only, nothing inline, never framed.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'none'"
)
# FastAPI's /docs and /redoc load Swagger UI / ReDoc from a CDN and start it with an inline script.
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
    "img-src 'self' data: https://fastapi.tiangolo.com https://cdn.redoc.ly; "
    "font-src 'self' https://fonts.gstatic.com; worker-src 'self' blob:; connect-src 'self'; "
    "object-src 'none'; base-uri 'self'; frame-ancestors 'none'"
)
DOCS_PATHS = ("/docs", "/redoc")
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}
HSTS = "max-age=31536000; includeSubDomains"


def incoming_request_id(scope: Scope) -> str | None:
    value = Headers(scope=scope).get(REQUEST_ID_HEADER)
    return value if value is not None and VALID_REQUEST_ID.fullmatch(value) else None


class RequestContextMiddleware:
    """Gives each request an id (the client's `X-Request-ID` when valid, else a new one): in
    `request.state.request_id`, in every log line written meanwhile, and on the response. An
    exception nobody handled becomes the enveloped 500 here, so it gets the usual headers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = incoming_request_id(scope) or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        token = request_id_var.set(request_id)
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            if started or scope["type"] != "http":
                raise
            response = unhandled_error_response(Request(scope), exc)
            await response(scope, receive, send_with_id)
        finally:
            request_id_var.reset(token)


class ResponseHeadersMiddleware:
    """Base of the middleware that only add headers to each HTTP response as it starts."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.add_headers(scope, MutableHeaders(scope=message))
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def add_headers(self, scope: Scope, headers: MutableHeaders) -> None:
        raise NotImplementedError


class SecurityHeadersMiddleware(ResponseHeadersMiddleware):
    """CSP, nosniff, frame denial and referrer policy on every response; HSTS only when the
    request came over TLS (uvicorn's proxy-headers support sets the scheme from a trusted proxy's
    `X-Forwarded-Proto`), since a browser ignores it over plain HTTP anyway."""

    def add_headers(self, scope: Scope, headers: MutableHeaders) -> None:
        path: str = scope.get("path", "")
        headers.setdefault("Content-Security-Policy", DOCS_CSP if path.startswith(DOCS_PATHS) else CSP)
        for name, value in SECURITY_HEADERS.items():
            headers.setdefault(name, value)
        if scope.get("scheme") == "https":
            headers.setdefault("Strict-Transport-Security", HSTS)


class BodyLimitMiddleware:
    """Refuses a body over `limit` bytes with the enveloped 413: at once when Content-Length says
    so, else as soon as the bytes read pass the limit (nothing more is read).

    FastAPI's own `max_body_size` answers in plain text from outside the other middleware (no
    envelope, no request id), hence this one."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            request_id = scope.get("state", {}).get("request_id") or request_id_var.get()
            error = BodyTooLargeError(self.limit)
            response = error_response(
                request_id, 413, "body_too_large", str(error.detail), {"limit": self.limit}
            )
            await response(scope, receive, send)
            return
        received = 0

        async def receive_limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise BodyTooLargeError(self.limit)
            return message

        await self.app(scope, receive_limited, send)
