"""Idempotency keys: claimed in the request's transaction, replayed for the same request,
refused for another, per user, forgotten after 24 hours; a claim rolled back frees the key."""

from __future__ import annotations

from datetime import timedelta

import pytest

from keen.billing import idempotency
from keen.billing.idempotency import StoredResponse, claim, delete_expired, request_hash, store
from keen.errors import ConflictError, InputError
from keen.store import Database
from keen.store.db import set_acting_user
from ledgerkit import Clock, add_user

BODY = request_hash("POST", "/api/v1/credits/purchase", {"amount": "5"})


async def _claim(db: Database, user: str, key: str, fingerprint: str, clock: Clock) -> StoredResponse | None:
    async with db.transaction() as session:
        await set_acting_user(session, user, False)
        found = await claim(session, user, key, fingerprint, clock())
        if found is None:
            await store(session, user, key, StoredResponse(201, {"ok": key}))
        return found


async def test_a_key_replays_its_response_refuses_another_request_and_expires(
    db: Database, clock: Clock
) -> None:
    user = await add_user(db)
    assert await _claim(db, user, "k", BODY, clock) is None
    assert await _claim(db, user, "k", BODY, clock) == StoredResponse(201, {"ok": "k"})
    other = request_hash("POST", "/api/v1/credits/purchase", {"amount": "6"})
    with pytest.raises(ConflictError):
        await _claim(db, user, "k", other, clock)
    clock.advance(hours=23, minutes=59)
    assert await _claim(db, user, "k", BODY, clock) is not None  # still within its 24 hours
    clock.advance(minutes=1)
    assert await _claim(db, user, "k", other, clock) is None  # expired: a new request may use it
    clock.advance(hours=25)
    async with db.transaction() as session:
        await set_acting_user(session, None, True)
        assert await delete_expired(session, clock()) == 1


async def test_keys_are_per_user_and_a_rolled_back_claim_frees_the_key(db: Database, clock: Clock) -> None:
    ada, bob = await add_user(db), await add_user(db)
    assert await _claim(db, ada, "same", BODY, clock) is None
    assert await _claim(db, bob, "same", BODY, clock) is None
    with pytest.raises(RuntimeError):
        async with db.transaction() as session:
            await set_acting_user(session, ada, False)
            assert await claim(session, ada, "failing", BODY, clock()) is None
            raise RuntimeError("the work failed")
    assert await _claim(db, ada, "failing", BODY, clock) is None


def test_a_request_hash_ignores_key_order_and_keys_are_checked() -> None:
    assert request_hash("post", "/p", {"a": 1, "b": "2"}) == request_hash("POST", "/p", {"b": "2", "a": 1})
    assert request_hash("POST", "/p", {"a": 1}) != request_hash("POST", "/q", {"a": 1})
    for bad in ("", "x" * 201, "tab\there", "é"):
        with pytest.raises(InputError):
            idempotency.checked_key(bad)
    assert timedelta(hours=24) == idempotency.KEY_TTL
