"""Sign-ins: a refresh-token family per login, and the access tokens issued from it.

Every refresh replaces the presented token with a new one in the same family (`replaced_by`
links them). A token that already has a successor, presented again, means two parties hold the
family's tokens (one of them a thief): the whole family is revoked, which also ends every access
token issued from it (they name their family, and are refused once it has no live token).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from keen.auth.policy import AuthPolicy
from keen.auth.scopes import is_admin_role, sign_in_scopes
from keen.auth.tokens import (
    ACCESS_TTL_ADMIN,
    ACCESS_TTL_USER,
    REFRESH_TTL,
    issue_access_token,
    keyed_digest,
    new_refresh_token,
)
from keen.store.models import AuthTokenRow, UserRow

REFRESH = "refresh"


@dataclass(frozen=True)
class SignIn:
    """What a login or a refresh hands out (the refresh token only this once)."""

    user: UserRow
    access_token: str
    refresh_token: str
    expires_in: int
    refresh_expires_in: int
    family_id: str
    token_type: str = "bearer"


async def issue(
    session: AsyncSession, policy: AuthPolicy, user: UserRow, *, family_id: str | None = None
) -> tuple[SignIn, AuthTokenRow]:
    """A new refresh token (in `family_id`, or a new family) and an access token for `user`."""
    now = policy.now()
    family = family_id or uuid.uuid4().hex
    refresh = new_refresh_token()
    row = AuthTokenRow(
        id=uuid.uuid4().hex,
        user_id=user.id,
        kind=REFRESH,
        token_hash=keyed_digest(policy.secret, refresh),
        family_id=family,
        scopes=[],
        window_uses=0,
        created_at=now,
        expires_at=now + REFRESH_TTL,
    )
    session.add(row)
    await session.flush()
    ttl = policy.access_ttl or (ACCESS_TTL_ADMIN if is_admin_role(user.role) else ACCESS_TTL_USER)
    access, _claims = issue_access_token(
        policy.secret,
        user_id=user.id,
        role=user.role,
        scopes=sign_in_scopes(user.role, user.privileges),
        family_id=family,
        ttl=ttl,
        now=now,
    )
    sign_in = SignIn(
        user=user,
        access_token=access,
        refresh_token=refresh,
        expires_in=int(ttl.total_seconds()),
        refresh_expires_in=int(REFRESH_TTL.total_seconds()),
        family_id=family,
    )
    return sign_in, row


async def find_refresh(session: AsyncSession, policy: AuthPolicy, token: str) -> AuthTokenRow | None:
    query = (
        select(AuthTokenRow)
        .where(AuthTokenRow.token_hash == keyed_digest(policy.secret, token), AuthTokenRow.kind == REFRESH)
        .execution_options(populate_existing=True)
    )
    return (await session.execute(query)).scalar_one_or_none()


async def claim_for_rotation(session: AsyncSession, row: AuthTokenRow, successor_id: str) -> bool:
    """Mark `row` replaced by `successor_id`, only if nothing replaced or revoked it meanwhile
    (two refreshes racing with one token: one wins, the other is a reuse)."""
    result = await session.execute(
        update(AuthTokenRow)
        .where(
            AuthTokenRow.id == row.id, AuthTokenRow.replaced_by.is_(None), AuthTokenRow.revoked_at.is_(None)
        )
        .values(replaced_by=successor_id)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


async def revoke_family(session: AsyncSession, policy: AuthPolicy, family_id: str) -> int:
    result = await session.execute(
        update(AuthTokenRow)
        .where(AuthTokenRow.family_id == family_id, AuthTokenRow.revoked_at.is_(None))
        .values(revoked_at=policy.now())
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def revoke_all(session: AsyncSession, policy: AuthPolicy, user_id: str, *, keys_too: bool) -> None:
    """End every sign-in of an account (and, with `keys_too`, its API keys)."""
    kinds = [REFRESH, "api_key"] if keys_too else [REFRESH]
    await session.execute(
        update(AuthTokenRow)
        .where(
            AuthTokenRow.user_id == user_id, AuthTokenRow.kind.in_(kinds), AuthTokenRow.revoked_at.is_(None)
        )
        .values(revoked_at=policy.now())
        .execution_options(synchronize_session=False)
    )


async def family_is_live(session: AsyncSession, policy: AuthPolicy, user_id: str, family_id: str) -> bool:
    """Whether the sign-in still has a usable refresh token (not logged out, not revoked)."""
    query = select(
        exists().where(
            AuthTokenRow.family_id == family_id,
            AuthTokenRow.user_id == user_id,
            AuthTokenRow.kind == REFRESH,
            AuthTokenRow.revoked_at.is_(None),
            AuthTokenRow.replaced_by.is_(None),
            AuthTokenRow.expires_at > policy.now(),
        )
    )
    return bool((await session.execute(query)).scalar())
