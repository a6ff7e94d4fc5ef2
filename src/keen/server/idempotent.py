"""`Idempotency-Key` on the routes that move money (the rules are keen.billing.idempotency's).

A route hands its work to `respond_once`: without a key the work runs; with one, the first
request with that key runs it and its response (status and body) is kept in the same
transaction, a later request with the same key and body gets that response again (marked
`Idempotency-Replayed: true`), and one with another body is refused (409).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Header, Request
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession

from keen.billing import idempotency

REPLAYED = "Idempotency-Replayed"
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias=idempotency.HEADER,
        min_length=1,
        max_length=idempotency.MAX_KEY,
        description="Makes the request safe to retry: the same key and body give the first response "
        "again (kept 24 hours); the same key with another body is refused (409).",
    ),
]
Work = Callable[[], Awaitable[tuple[int, Any]]]


async def respond_once(
    session: AsyncSession, user_id: str, key: str | None, request: Request, body: Any, work: Work
) -> JSONResponse:
    """Run `work` (a status and a JSON-ready body) at most once per key, as the module says."""
    if key is None:
        status, payload = await work()
        return JSONResponse(payload, status_code=status)
    key = idempotency.checked_key(key)
    fingerprint = idempotency.request_hash(request.method, request.url.path, body)
    stored = await idempotency.claim(session, user_id, key, fingerprint, datetime.now(UTC))
    if stored is not None:
        return JSONResponse(stored.body, status_code=stored.status_code, headers={REPLAYED: "true"})
    status, payload = await work()
    await idempotency.store(session, user_id, key, idempotency.StoredResponse(status, payload))
    return JSONResponse(payload, status_code=status)
