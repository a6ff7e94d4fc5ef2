"""Dependencies every route may take: the settings, the database, a session in a transaction,
and who is calling.

The request handler owns the transaction (services never commit): `DbSession` begins one before
the handler runs, commits it when the handler returns and rolls it back when anything raises,
all before the response is sent, so a client never sees a success that was not committed. A
refusal marked `keep_writes` (a failed login's counter and audit entry) is committed first.

`CurrentUser` authenticates the request (`Authorization: Bearer <access token>`, `Bearer keen_…`
or `ApiKey keen_…`), makes the transaction act for that user (row-level security on PostgreSQL)
and tells the rate limiter whose request it is. `require_scope(scope)` refuses a credential
without the scope (403 naming it); `require_admin` refuses accounts that are not admins. Both
refusals are audited.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader
from sqlalchemy.ext.asyncio import AsyncSession

from keen.audit import AuditEntry, Origin, Risk, append
from keen.auth import AuthPolicy, Principal, authenticate
from keen.config import Settings
from keen.errors import PermissionDeniedError
from keen.server.ratelimit import client_ip, rate_limit_user
from keen.server.secret import server_secret
from keen.store.db import Database, keep_writes


def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_database(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


async def get_db(request: Request) -> AsyncIterator[AsyncSession]:
    async with get_database(request).transaction() as session:
        yield session


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
DatabaseDep = Annotated[Database, Depends(get_database)]
# scope="function": the commit happens when the handler returns, before the response goes out.
DbSession = Annotated[AsyncSession, Depends(get_db, scope="function")]


def get_auth_policy(request: Request) -> AuthPolicy:
    """The auth services' policy (secret, password cost, lockout), made once per app."""
    policy: AuthPolicy | None = getattr(request.app.state, "auth_policy", None)
    if policy is None:
        settings = get_settings_dep(request)
        policy = AuthPolicy.from_settings(settings, server_secret(settings))
        request.app.state.auth_policy = policy
    return policy


def origin_of(request: Request) -> Origin:
    """Where the request came from, as audit entries record it."""
    return Origin(ip=client_ip(request), request_id=getattr(request.state, "request_id", None))


AuthPolicyDep = Annotated[AuthPolicy, Depends(get_auth_policy)]
OriginDep = Annotated[Origin, Depends(origin_of)]
# `Authorization` as an API key header: OpenAPI then marks the routes that need credentials, and
# both schemes (`Bearer`, `ApiKey`) reach `authenticate` as sent.
credentials = APIKeyHeader(
    name="Authorization",
    scheme_name="credentials",
    description="`Bearer <access token>`, `Bearer keen_…` or `ApiKey keen_…`",
    auto_error=False,
)


async def _authenticated(
    request: Request, session: AsyncSession, policy: AuthPolicy, origin: Origin, authorization: str | None
) -> Principal:
    """The caller of `authorization`, told to the rate limiter."""
    principal = await authenticate(session, policy, authorization, origin)
    await rate_limit_user(request, principal.user_id)
    return principal


async def current_user(
    request: Request,
    session: DbSession,
    policy: AuthPolicyDep,
    origin: OriginDep,
    authorization: Annotated[str | None, Security(credentials)],
) -> Principal:
    return await _authenticated(request, session, policy, origin, authorization)


CurrentUser = Annotated[Principal, Depends(current_user)]


async def _deny(
    session: AsyncSession, principal: Principal, origin: Origin, message: str, **details: str
) -> None:
    entry = AuditEntry(
        "access.denied",
        Risk.MEDIUM,
        principal.actor,
        user_id=principal.user_id,
        details={"message": message, **details},
    )
    await append(session, entry, origin)
    raise keep_writes(PermissionDeniedError(message, details=details or None))


async def _with_scope(
    request: Request, session: AsyncSession, principal: Principal, origin: Origin, scope: str
) -> Principal:
    """`principal`, refused (403, audited) without `scope`."""
    if not principal.has(scope):
        path = request.url.path
        await _deny(
            session, principal, origin, f"this credential lacks the scope {scope}", scope=scope, path=path
        )
    return principal


def require_scope(scope: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency giving the caller, refused (403, the scope named) without `scope`."""

    async def dependency(
        request: Request, session: DbSession, principal: CurrentUser, origin: OriginDep
    ) -> Principal:
        return await _with_scope(request, session, principal, origin, scope)

    dependency.__name__ = f"require_scope_{scope.replace(':', '_')}"
    return dependency


def require_scope_briefly(scope: str) -> Callable[..., Awaitable[Principal]]:
    """`require_scope` in a transaction of its own, ended before the route runs: for a route
    that streams for as long as a run lasts, which must not hold a pooled connection (nor, on
    SQLite, the write lock) all that time."""

    async def dependency(
        request: Request,
        policy: AuthPolicyDep,
        origin: OriginDep,
        authorization: Annotated[str | None, Security(credentials)],
    ) -> Principal:
        async with get_database(request).transaction() as session:
            principal = await _authenticated(request, session, policy, origin, authorization)
            return await _with_scope(request, session, principal, origin, scope)

    dependency.__name__ = f"require_scope_briefly_{scope.replace(':', '_')}"
    return dependency


async def require_admin(
    request: Request, session: DbSession, principal: CurrentUser, origin: OriginDep
) -> Principal:
    """The caller, refused (403) unless an admin account acting with admin scopes."""
    if not principal.is_admin:
        await _deny(session, principal, origin, "admins only", path=request.url.path)
    return principal
