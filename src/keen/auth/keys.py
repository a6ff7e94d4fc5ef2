"""API keys of an account: create (the key is shown once), list, revoke; and the per-key
hourly limit, counted on the key's row as it is used."""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from keen.audit import AuditEntry, Origin, Risk, append
from keen.auth.accounts import get_user
from keen.auth.apikeys import display_prefix, new_api_key
from keen.auth.policy import AuthPolicy
from keen.auth.principal import Principal
from keen.auth.scopes import USER_SCOPES, key_scopes
from keen.auth.tokens import keyed_digest
from keen.errors import InputError, NotFoundError, PermissionDeniedError, RateLimitedError
from keen.store.models import AuthTokenRow

API_KEY = "api_key"
DEFAULT_EXPIRY_DAYS = 90
MAX_EXPIRY_DAYS = 3650
DEFAULT_HOURLY_LIMIT = 1000
MAX_HOURLY_LIMIT = 100_000
HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class KeyRequest:
    name: str
    scopes: tuple[str, ...] | None = None  # None: the user scopes
    expires_in_days: int | None = DEFAULT_EXPIRY_DAYS  # None: never expires
    rate_limit_per_hour: int = DEFAULT_HOURLY_LIMIT


@dataclass(frozen=True)
class CreatedKey:
    row: AuthTokenRow
    key: str  # shown once, never stored


class ApiKeys:
    def __init__(self, session: AsyncSession, policy: AuthPolicy) -> None:
        self.session = session
        self.policy = policy

    async def create(self, principal: Principal, request: KeyRequest, origin: Origin) -> CreatedKey:
        name = request.name.strip()
        if not name or len(name) > 100:
            raise InputError("a key's name has 1 to 100 characters", details={"field": "name"})
        user = await get_user(self.session, principal.user_id)
        allowed = key_scopes(user.role, user.privileges)
        scopes = tuple(dict.fromkeys(request.scopes)) if request.scopes is not None else USER_SCOPES
        refused = [s for s in scopes if s not in allowed]
        if refused:
            raise PermissionDeniedError(
                f"an API key of this account cannot have: {', '.join(refused)} (allowed: {', '.join(allowed)})",
                details={"field": "scopes", "scopes": refused},
            )
        if not scopes:
            raise InputError("an API key needs at least one scope", details={"field": "scopes"})
        days = request.expires_in_days
        if days is not None and not 1 <= days <= MAX_EXPIRY_DAYS:
            raise InputError(
                f"expires_in_days is from 1 to {MAX_EXPIRY_DAYS}", details={"field": "expires_in_days"}
            )
        if not 1 <= request.rate_limit_per_hour <= MAX_HOURLY_LIMIT:
            raise InputError(
                f"rate_limit_per_hour is from 1 to {MAX_HOURLY_LIMIT}",
                details={"field": "rate_limit_per_hour"},
            )
        key, now = new_api_key(), self.policy.now()
        row = AuthTokenRow(
            id=uuid.uuid4().hex,
            user_id=principal.user_id,
            kind=API_KEY,
            token_hash=keyed_digest(self.policy.secret, key),
            name=name,
            prefix=display_prefix(key),
            scopes=list(scopes),
            rate_limit_per_hour=request.rate_limit_per_hour,
            window_uses=0,
            created_at=now,
            expires_at=now + timedelta(days=days) if days is not None else None,
        )
        self.session.add(row)
        await self.session.flush()
        await self._audit(
            "auth.api_key.created", Risk.MEDIUM, principal, row, origin, {"scopes": list(scopes)}
        )
        return CreatedKey(row, key)

    async def all(self, principal: Principal) -> Sequence[AuthTokenRow]:
        query = (
            select(AuthTokenRow)
            .where(AuthTokenRow.user_id == principal.user_id, AuthTokenRow.kind == API_KEY)
            .order_by(AuthTokenRow.created_at, AuthTokenRow.id)
        )
        return (await self.session.execute(query)).scalars().all()

    async def revoke(self, principal: Principal, key_id: str, origin: Origin) -> AuthTokenRow:
        """Revoke one of the caller's keys; another account's key is not found (404), as if it
        did not exist."""
        query = select(AuthTokenRow).where(
            AuthTokenRow.id == key_id, AuthTokenRow.user_id == principal.user_id, AuthTokenRow.kind == API_KEY
        )
        row = (await self.session.execute(query)).scalar_one_or_none()
        if row is None:
            raise NotFoundError(f"no API key {key_id}")
        if row.revoked_at is None:
            row.revoked_at = self.policy.now()
            await self.session.flush()
            await self._audit("auth.api_key.revoked", Risk.MEDIUM, principal, row, origin, {})
        return row

    async def _audit(
        self,
        action: str,
        risk: Risk,
        principal: Principal,
        row: AuthTokenRow,
        origin: Origin,
        details: dict[str, object],
    ) -> None:
        entry = AuditEntry(
            action,
            risk,
            principal.actor,
            user_id=principal.user_id,
            target=f"api_key:{row.id}",
            details={"name": row.name, "prefix": row.prefix, **details},
        )
        await append(self.session, entry, origin, now=self.policy.now())


def count_use(row: AuthTokenRow, now: datetime) -> None:
    """Count one use of a key in its current hour, refusing it past the key's hourly limit."""
    if row.window_started_at is None or now - row.window_started_at >= HOUR:
        row.window_started_at, row.window_uses = now, 0
    limit = row.rate_limit_per_hour or DEFAULT_HOURLY_LIMIT
    if row.window_uses >= limit:
        wait = math.ceil((row.window_started_at + HOUR - now).total_seconds())
        raise RateLimitedError(
            f"this API key's limit of {limit} requests an hour is used up: try again in {wait} seconds",
            retry_after=wait,
            details={"limit": limit},
        )
    row.window_uses += 1
    row.last_used_at = now
