"""Every error leaves the server in one envelope (SPEC 8.5):

    {"success": false, "error": {"type", "code", "message", "details"?}, "request_id"}

`type` is the kind of failure (from the HTTP status), `code` the stable machine-readable reason.
Unhandled exceptions become a generic 500 whose only clue is the request id: the traceback goes to
the log under that id, never to the client.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from keen.errors import KeenError, RateLimitedError
from keen.server.logs import request_id_var
from keen.server.schemas import ErrorEnvelope

logger = logging.getLogger("keen.server")

__all__ = ["ErrorEnvelope", "error_response", "install_error_handlers"]

ERROR_TYPES = {
    400: "bad_request",
    401: "authentication_error",
    402: "payment_required",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limit_error",
    500: "server_error",
    503: "unavailable",
}
# Codes of the errors Starlette and FastAPI raise as plain HTTPExceptions.
HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}
# A body of 10,000 wrong items gets the first problems, not a 10,000-item answer.
MAX_FIELD_ERRORS = 50
INTERNAL_MESSAGE = "internal server error; quote the request id when reporting it"


class BodyTooLargeError(HTTPException):
    """The request body is over the server's limit (raised while the body is being read)."""

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=f"the request body is larger than {limit} bytes")
        self.limit = limit


def error_type(status: int) -> str:
    return ERROR_TYPES.get(status, "server_error" if status >= 500 else "client_error")


def request_id_of(request: Request) -> str:
    """The id the request-context middleware gave this request (a fresh one if it did not run)."""
    found = getattr(request.state, "request_id", None) or request_id_var.get()
    return found if found != "-" else uuid.uuid4().hex


def error_response(
    request_id: str,
    status: int,
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    error: dict[str, Any] = {"type": error_type(status), "code": code, "message": message}
    if details:
        error["details"] = details
    body = {"success": False, "error": error, "request_id": request_id}
    return JSONResponse(body, status_code=status, headers=headers)


async def keen_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, KeenError)
    headers = None
    if isinstance(exc, RateLimitedError):
        headers = {"Retry-After": str(max(1, math.ceil(exc.retry_after)))}
    if exc.http_status >= 500:
        logger.error("%s: %s", type(exc).__name__, exc.message)
    return error_response(
        request_id_of(request), exc.http_status, exc.code, exc.message, exc.details or None, headers
    )


async def validation_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = exc.errors()
    if any(problem.get("type") == "json_invalid" for problem in problems):
        reason = next((p.get("ctx", {}).get("error") for p in problems if p.get("ctx")), None)
        message = (
            f"the request body is not valid JSON: {reason}"
            if reason
            else "the request body is not valid JSON"
        )
        return error_response(request_id_of(request), 400, "invalid_json", message)
    fields = [_field_error(problem) for problem in problems[:MAX_FIELD_ERRORS]]
    summary = "; ".join(f"{f['field']}: {f['message']}" for f in fields[:5])
    more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
    details: dict[str, Any] = {"errors": fields}
    if len(problems) > MAX_FIELD_ERRORS:
        details["omitted"] = len(problems) - MAX_FIELD_ERRORS
    return error_response(
        request_id_of(request), 422, "invalid_input", f"invalid request: {summary}{more}", details
    )


def _field_error(problem: dict[str, Any]) -> dict[str, str]:
    """One problem as `{field, location, message, type}`; the input itself is never echoed (it
    may be large, or a password)."""
    loc: Sequence[Any] = problem.get("loc") or ()
    location = str(loc[0]) if loc else "request"
    path = ".".join(str(part) for part in loc[1:])
    return {
        "field": path or location,
        "location": location,
        "message": str(problem.get("msg", "invalid")),
        "type": str(problem.get("type", "invalid")),
    }


async def http_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    status = exc.status_code
    code = HTTP_CODES.get(status, error_type(status))
    message = exc.detail if isinstance(exc.detail, str) and exc.detail else _phrase(status)
    details = {"limit": exc.limit} if isinstance(exc, BodyTooLargeError) else None
    if status == 404 and message == "Not Found":
        message = f"no route {request.url.path}"
    elif status == 405 and message == "Method Not Allowed":
        message = f"{request.method} is not allowed on {request.url.path}"
    return error_response(request_id_of(request), status, code, message, details, dict(exc.headers or {}))


def unhandled_error_response(request: Request, exc: BaseException) -> JSONResponse:
    """The 500 for an exception nobody handled; the traceback is logged under the request id."""
    request_id = request_id_of(request)
    logger.error(
        "unhandled %s in %s %s (request %s)",
        type(exc).__name__,
        request.method,
        request.url.path,
        request_id,
        exc_info=exc,
    )
    return error_response(request_id, 500, "internal_error", INTERNAL_MESSAGE)


async def unhandled_error_handler(request: Request, exc: Exception) -> JSONResponse:
    return unhandled_error_response(request, exc)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "error"


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(KeenError, keen_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(HTTPException, http_error_handler)
    # Outermost fallback; the request-context middleware renders the same 500 first, inside the
    # other middleware, so that response carries the usual headers too.
    app.add_exception_handler(Exception, unhandled_error_handler)
