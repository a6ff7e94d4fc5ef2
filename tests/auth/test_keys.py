"""API keys: shown once, stored as a keyed hash, used with `ApiKey` or `Bearer`, limited to their
scopes and hourly limit, revoked by their owner only."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from authkit import HERE, Auth
from keen.auth import ApiKeys, KeyRequest
from keen.auth.apikeys import new_api_key
from keen.auth.keys import CreatedKey
from keen.errors import AuthenticationError, NotFoundError, PermissionDeniedError, RateLimitedError
from keen.store.db import set_acting_user
from keen.store.models import AuditLogRow, AuthTokenRow


async def _signed_in(auth: Auth, email: str) -> str:
    await auth.register(email)
    return f"Bearer {(await auth.login(email)).access_token}"


async def _create(auth: Auth, bearer: str, request: KeyRequest) -> CreatedKey:
    return await auth.acting(bearer, lambda s, me: ApiKeys(s, auth.policy).create(me, request, HERE))


async def test_a_key_works_with_both_headers_with_its_scopes_until_revoked(any_auth: Auth) -> None:
    bearer = await _signed_in(any_auth, "ada@example.org")
    created = await _create(any_auth, bearer, KeyRequest("ci", scopes=("profile:read",)))
    assert created.key.startswith("keen_") and created.row.prefix == created.key[:13]
    for header in (f"ApiKey {created.key}", f"Bearer {created.key}"):
        principal = await any_auth.who(header)
        assert (principal.via, principal.scopes, principal.credential_id) == (
            "api_key",
            frozenset({"profile:read"}),
            created.row.id,
        )
    listed = await any_auth.acting(bearer, lambda s, me: ApiKeys(s, any_auth.policy).all(me))
    assert [(k.id, k.name, k.last_used_at is not None) for k in listed] == [(created.row.id, "ci", True)]
    await any_auth.acting(bearer, lambda s, me: ApiKeys(s, any_auth.policy).revoke(me, created.row.id, HERE))
    with pytest.raises(AuthenticationError, match="this API key was revoked"):
        await any_auth.who(f"ApiKey {created.key}")

    async def stored(session: AsyncSession) -> tuple[list[str], list[str]]:
        await set_acting_user(session, None, True)
        hashes = list(
            (
                await session.execute(select(AuthTokenRow.token_hash).where(AuthTokenRow.kind == "api_key"))
            ).scalars()
        )
        actions = list(
            (await session.execute(select(AuditLogRow.action).order_by(AuditLogRow.seq))).scalars()
        )
        return hashes, actions

    hashes, actions = await any_auth.unit(stored)
    assert len(hashes) == 1 and created.key not in hashes[0] and created.key[5:45] not in hashes[0]
    assert actions[-3:] == ["auth.api_key.created", "auth.api_key.revoked", "auth.api_key.refused"]


async def test_another_account_cannot_see_or_revoke_a_key(any_auth: Auth) -> None:
    ada = await _signed_in(any_auth, "ada@example.org")
    bob = await _signed_in(any_auth, "bob@example.org")
    created = await _create(any_auth, ada, KeyRequest("mine"))
    assert await any_auth.acting(bob, lambda s, me: ApiKeys(s, any_auth.policy).all(me)) == []
    with pytest.raises(NotFoundError):
        await any_auth.acting(bob, lambda s, me: ApiKeys(s, any_auth.policy).revoke(me, created.row.id, HERE))
    await any_auth.who(f"ApiKey {created.key}")  # still works


async def test_a_user_key_cannot_have_admin_or_account_scopes(auth: Auth) -> None:
    bearer = await _signed_in(auth, "ada@example.org")
    for scope in ("admin:users:read", "account:manage", "made:up"):
        with pytest.raises(PermissionDeniedError, match=scope):
            await _create(auth, bearer, KeyRequest("k", scopes=(scope,)))


async def test_expired_unknown_and_malformed_keys_are_refused(auth: Auth) -> None:
    bearer = await _signed_in(auth, "ada@example.org")
    created = await _create(auth, bearer, KeyRequest("short", expires_in_days=1))
    auth.clock.advance(days=1)
    with pytest.raises(AuthenticationError, match="expired"):
        await auth.who(f"ApiKey {created.key}")
    with pytest.raises(AuthenticationError, match="not known"):
        await auth.who(f"ApiKey {new_api_key()}")
    with pytest.raises(AuthenticationError, match="not a valid API key"):
        await auth.who(f"ApiKey {created.key[:-1]}x")


async def test_a_key_past_its_hourly_limit_is_refused_until_the_hour_is_over(auth: Auth) -> None:
    bearer = await _signed_in(auth, "ada@example.org")
    created = await _create(auth, bearer, KeyRequest("small", rate_limit_per_hour=3))
    for _ in range(3):
        await auth.who(f"ApiKey {created.key}")
        auth.clock.advance(seconds=60)
    with pytest.raises(RateLimitedError, match="3 requests an hour") as caught:
        await auth.who(f"ApiKey {created.key}")
    assert caught.value.retry_after == 3600 - 180
    auth.clock.advance(seconds=3600 - 180)
    await auth.who(f"ApiKey {created.key}")
