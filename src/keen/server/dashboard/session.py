"""The browser's sign-in for the dashboard: the access token in an HttpOnly cookie (Secure over
TLS, SameSite=Lax), a CSRF token every state-changing form sends back, and the MFA step of a
login held in this process's memory (never in the page) for a few minutes."""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass

from fastapi import Request
from starlette.responses import Response

from keen.auth import Principal, authenticate
from keen.errors import AuthenticationError, PermissionDeniedError
from keen.server.deps import get_auth_policy, get_database, origin_of

SESSION_COOKIE = "keen_session"
CSRF_COOKIE = "keen_csrf"
PENDING_COOKIE = "keen_mfa"
PENDING_SECONDS = 300
CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"


class SignInRequired(Exception):
    """The page needs a signed-in browser: the handler answers with a redirect to the login."""


class CsrfError(PermissionDeniedError):
    """A form came back without the token its page was given."""

    code = "csrf_failed"


def secure(request: Request) -> bool:
    return request.url.scheme == "https"


def set_cookie(response: Response, request: Request, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name, value, max_age=max_age, httponly=True, secure=secure(request), samesite="lax", path="/"
    )


def csrf_token(request: Request) -> str:
    """The browser's CSRF token (a new one is set on the response by `ensure_csrf`)."""
    token: str | None = getattr(request.state, "csrf", None) or request.cookies.get(CSRF_COOKIE)
    if not token:
        token = secrets.token_urlsafe(32)
    request.state.csrf = token
    return token


def ensure_csrf(request: Request, response: Response) -> None:
    token = csrf_token(request)
    if request.cookies.get(CSRF_COOKIE) != token:
        set_cookie(response, request, CSRF_COOKIE, token, 60 * 60 * 24)


def check_csrf(request: Request, sent: str | None) -> None:
    """Refuses (403) a state change whose token is not the browser's own (double submit: a page
    of another site can make the browser send the cookie, but cannot read it to send it back)."""
    cookie = request.cookies.get(CSRF_COOKIE)
    if not cookie or not sent or not hmac.compare_digest(cookie, sent):
        raise CsrfError("the form's CSRF token is missing or wrong: reload the page")


async def browser_principal(request: Request) -> Principal:
    """Who the browser is signed in as (its cookie's access token checked as the API checks a
    Bearer token: a suspended account or a revoked sign-in is refused at once)."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise SignInRequired
    async with get_database(request).transaction() as session:
        try:
            return await authenticate(
                session, get_auth_policy(request), f"Bearer {token}", origin_of(request)
            )
        except (AuthenticationError, PermissionDeniedError):
            raise SignInRequired from None


@dataclass
class PendingLogin:
    email: str
    password: str
    expires: float


class PendingLogins:
    """Logins waiting for their MFA code, by a random id the browser holds in a cookie."""

    def __init__(self) -> None:
        self.items: dict[str, PendingLogin] = {}

    def add(self, email: str, password: str) -> str:
        self.prune()
        key = secrets.token_urlsafe(32)
        self.items[key] = PendingLogin(email, password, time.monotonic() + PENDING_SECONDS)
        return key

    def get(self, key: str | None) -> PendingLogin | None:
        self.prune()
        return self.items.get(key) if key else None

    def drop(self, key: str | None) -> None:
        if key:
            self.items.pop(key, None)

    def prune(self) -> None:
        now = time.monotonic()
        for key in [k for k, v in self.items.items() if v.expires < now]:
            del self.items[key]


def pending_logins(request: Request) -> PendingLogins:
    pending: PendingLogins | None = getattr(request.app.state, "pending_logins", None)
    if pending is None:
        pending = request.app.state.pending_logins = PendingLogins()
    return pending
