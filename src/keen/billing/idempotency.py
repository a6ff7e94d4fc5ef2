"""`Idempotency-Key` for requests that move money: the same key and request replay the first
response (status and body), the same key with another request is refused (409), and two
concurrent requests with one key make one money movement.

The key is claimed by inserting its row in the request's own transaction, before the work: a
second request with the key waits on that row (PostgreSQL's unique index; SQLite's write lock)
until the first commits, then finds the stored response. Work that fails rolls the claim back
with it, so a retry runs again. Keys are per user and expire after 24 hours.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from keen.billing.tables import IDEMPOTENCY_KEYS
from keen.errors import ConflictError, InputError

KEY_TTL = timedelta(hours=24)
MAX_KEY = 200
HEADER = "Idempotency-Key"
K = IDEMPOTENCY_KEYS.c


@dataclass(frozen=True)
class StoredResponse:
    status_code: int
    body: Any


def checked_key(key: str) -> str:
    if not 1 <= len(key) <= MAX_KEY or not key.isascii() or not key.isprintable():
        raise InputError(f"{HEADER} must be 1 to {MAX_KEY} printable ASCII characters")
    return key


def request_hash(method: str, path: str, body: Any) -> str:
    """What the request asked, canonically (the parsed body, so spacing and key order do not matter)."""
    canonical = json.dumps([method.upper(), path, body], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


async def claim(
    session: AsyncSession, user_id: str, key: str, fingerprint: str, now: datetime
) -> StoredResponse | None:
    """Claim `key` for this request: None means go ahead (then `store` the response in the same
    transaction); otherwise the response the first request got."""
    await session.execute(
        delete(IDEMPOTENCY_KEYS).where(K.user_id == user_id, K.key == key, K.expires_at <= now)
    )
    dialect = session.get_bind().dialect.name
    insert = (pg_insert if dialect == "postgresql" else sqlite_insert)(IDEMPOTENCY_KEYS)
    claimed = await session.execute(
        insert.values(
            user_id=user_id, key=key, request_hash=fingerprint, created_at=now, expires_at=now + KEY_TTL
        )
        .on_conflict_do_nothing(index_elements=["user_id", "key"])
        .returning(K.key)
    )
    if claimed.first() is not None:
        return None
    row = (await session.execute(select(IDEMPOTENCY_KEYS).where(K.user_id == user_id, K.key == key))).one()
    if row.request_hash != fingerprint:
        raise ConflictError(
            f"this {HEADER} was used for a different request; use a new key for a new request",
            details={"idempotency_key": key},
        )
    if row.status_code is None:  # only within the claiming transaction itself
        raise ConflictError(f"a request with this {HEADER} is still being processed")
    return StoredResponse(row.status_code, row.response)


async def store(session: AsyncSession, user_id: str, key: str, response: StoredResponse) -> None:
    """Keep the response of the request that claimed `key` (committed with its work)."""
    await session.execute(
        update(IDEMPOTENCY_KEYS)
        .where(K.user_id == user_id, K.key == key)
        .values(status_code=response.status_code, response=response.body)
    )


async def delete_expired(session: AsyncSession, now: datetime) -> int:
    result = cast(
        CursorResult[Any], await session.execute(delete(IDEMPOTENCY_KEYS).where(K.expires_at <= now))
    )
    return int(result.rowcount or 0)
