"""Rendering the dashboard's pages: Jinja2 templates (autoescaped) and forms read without a
multipart parser (the dashboard's forms are all URL-encoded)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from fastapi import Request
from fastapi.templating import Jinja2Templates
from starlette.responses import RedirectResponse, Response

from keen import __version__
from keen.auth import Principal
from keen.server.dashboard.session import CSRF_FIELD, check_csrf, csrf_token, ensure_csrf

HERE = Path(__file__).parent
STATIC = HERE / "static"
templates = Jinja2Templates(directory=HERE / "templates")


def amount(value: Decimal) -> str:
    """An amount of credits without trailing zeros (25, 0.2, 1.000001)."""
    return f"{Decimal(value).normalize():f}"


templates.env.filters["amount"] = amount
MAX_FORM_BYTES = 200_000
STATUS_CLASS = {
    "created": "pending",
    "running": "running",
    "completed": "ok",
    "failed": "bad",
    "cancelled": "muted",
    "suspended": "pending",
}


def page(
    request: Request, name: str, principal: Principal | None = None, status_code: int = 200, **context: Any
) -> Response:
    """The page `name` with the usual context (who is signed in, the CSRF token)."""
    values = {
        "me": principal,
        "csrf": csrf_token(request),
        "version": __version__,
        "status_class": STATUS_CLASS,
    }
    response: Response = templates.TemplateResponse(
        request, name, {**values, **context}, status_code=status_code
    )
    response.headers["Cache-Control"] = "no-store"
    ensure_csrf(request, response)
    return response


def not_found(request: Request, principal: Principal | None) -> Response:
    return page(request, "not_found.html", principal, status_code=404)


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


async def form(request: Request) -> dict[str, str]:
    """The URL-encoded form posted, its CSRF token checked (403 when wrong)."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        body = b""
    fields = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}
    check_csrf(request, fields.get(CSRF_FIELD))
    return fields


def error_page(request: Request, principal: Principal | None, message: str, status_code: int) -> Response:
    return page(request, "error.html", principal, status_code=status_code, message=message)
