"""Turning a presented credential (an `Authorization` header value) into a Principal.

`Bearer <access token>`, `Bearer keen_…` or `ApiKey keen_…`. Every request re-reads the account,
so a suspended or banned account is refused with tokens and keys issued before, and the scopes a
credential carries are cut down to what the account holds now. The look-up runs as keen itself
(the key's owner is not known yet); the transaction then acts as the account found.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from keen.audit import AuditEntry, Origin, Risk, append
from keen.auth.apikeys import display_prefix, is_api_key
from keen.auth.keys import API_KEY, count_use
from keen.auth.policy import AuthPolicy
from keen.auth.principal import Principal, Via
from keen.auth.scopes import key_scopes, sign_in_scopes
from keen.auth.signins import family_is_live
from keen.auth.tokens import decode_access_token, keyed_digest
from keen.errors import AuthenticationError
from keen.store.db import keep_writes, set_acting_user
from keen.store.models import AuthTokenRow, UserRow

SCHEMES = ("bearer", "apikey")


async def authenticate(
    session: AsyncSession, policy: AuthPolicy, authorization: str | None, origin: Origin
) -> Principal:
    scheme, _, value = (authorization or "").strip().partition(" ")
    value = value.strip()
    if not value or scheme.lower() not in SCHEMES:
        raise AuthenticationError("sign in: send `Authorization: Bearer <token>` or `ApiKey <key>`")
    await set_acting_user(session, None, True)
    try:
        if value.startswith("keen_") or scheme.lower() == "apikey":
            principal = await _from_api_key(session, policy, value, origin)
        else:
            principal = await _from_access_token(session, policy, value)
    except DisabledAccountCredential as exc:
        entry = AuditEntry(
            "auth.denied",
            Risk.MEDIUM,
            f"user:{exc.user_id}",
            user_id=exc.user_id,
            target=f"user:{exc.user_id}",
            details={"reason": exc.message},
        )
        await append(session, entry, origin, now=policy.now())
        raise keep_writes(exc) from None
    await set_acting_user(session, principal.user_id, principal.is_admin)
    return principal


async def _from_access_token(session: AsyncSession, policy: AuthPolicy, token: str) -> Principal:
    claims = decode_access_token(policy.secret, token, now=policy.now())
    user = await session.get(UserRow, claims.sub, populate_existing=True)
    if user is None:
        raise AuthenticationError("the access token is not valid")
    _check_active(user)
    if not await family_is_live(session, policy, user.id, claims.fam):
        raise AuthenticationError("this sign-in has ended (logged out or revoked): sign in again")
    return _principal(user, claims.scopes, sign_in_scopes(user.role, user.privileges), "sign_in", claims.fam)


async def _from_api_key(session: AsyncSession, policy: AuthPolicy, key: str, origin: Origin) -> Principal:
    if not is_api_key(key):
        raise AuthenticationError("not a valid API key")
    query = (
        select(AuthTokenRow)
        .where(AuthTokenRow.token_hash == keyed_digest(policy.secret, key), AuthTokenRow.kind == API_KEY)
        .execution_options(populate_existing=True)
    )
    row = (await session.execute(query)).scalar_one_or_none()
    now = policy.now()
    problem = (
        "is not known"
        if row is None
        else "was revoked"
        if row.revoked_at is not None
        else "has expired"
        if row.expires_at is not None and row.expires_at <= now
        else None
    )
    if problem is not None:
        owner = row.user_id if row is not None else None
        entry = AuditEntry(
            "auth.api_key.refused",
            Risk.MEDIUM,
            "anonymous",
            user_id=owner,
            target=f"api_key:{row.id}" if row is not None else None,
            details={"prefix": display_prefix(key), "reason": problem},
        )
        await append(session, entry, origin, now=now)
        raise keep_writes(AuthenticationError(f"this API key {problem}"))
    assert row is not None
    user = await session.get(UserRow, row.user_id, populate_existing=True)
    if user is None:
        raise AuthenticationError("this API key is not known")
    _check_active(user)
    count_use(row, now)
    await session.flush()
    return _principal(user, row.scopes, key_scopes(user.role, user.privileges), "api_key", row.id)


def _principal(
    user: UserRow, carried: Iterable[str], allowed: Iterable[str], via: Via, credential_id: str
) -> Principal:
    """The caller, holding the scopes its credential carries that the account still has."""
    held = set(allowed)
    return Principal(
        user_id=user.id,
        email=user.email,
        role=user.role,
        scopes=frozenset(s for s in carried if s in held),
        via=via,
        credential_id=credential_id,
    )


class DisabledAccountCredential(AuthenticationError):
    """A credential of a suspended or banned account (401: it no longer signs anyone in)."""

    code = "account_disabled"

    def __init__(self, user: UserRow) -> None:
        super().__init__(f"the account is {user.status}", details={"status": user.status})
        self.user_id = user.id


def _check_active(user: UserRow) -> None:
    if user.status != "active":
        raise DisabledAccountCredential(user)
