"""Register, sign in, refresh (rotation and reuse detection), logout, and disabled accounts,
on SQLite and on PostgreSQL as the app role."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from authkit import HERE, PASSWORD, Auth, cheap_passwords
from keen.auth import AccountDisabledError, AuthService
from keen.auth.tokens import decode_access_token
from keen.errors import AuthenticationError, ConflictError, InputError
from keen.store.db import set_acting_user
from keen.store.models import AuditLogRow, AuthTokenRow, UserRow


async def _audit(auth: Auth) -> list[AuditLogRow]:
    async def read(session: AsyncSession) -> list[AuditLogRow]:
        await set_acting_user(session, None, True)
        return list((await session.execute(select(AuditLogRow).order_by(AuditLogRow.seq))).scalars())

    return await auth.unit(read)


async def _set_status(auth: Auth, user_id: str, status: str) -> None:
    async def work(session: AsyncSession) -> None:
        await set_acting_user(session, None, True)
        await session.execute(update(UserRow).where(UserRow.id == user_id).values(status=status))

    await auth.unit(work)


async def test_register_then_sign_in_gives_tokens_that_say_who_it_is(any_auth: Auth) -> None:
    user = await any_auth.register("Ada@Example.org")
    assert (user.email, user.username, user.role, user.status) == ("ada@example.org", "ada", "user", "active")
    assert user.password_hash.startswith("$argon2id$") and PASSWORD not in user.password_hash
    sign_in = await any_auth.login("ada@example.org")
    claims = decode_access_token(any_auth.policy.secret, sign_in.access_token, now=any_auth.clock.now)
    assert claims.sub == user.id and claims.exp - claims.iat == timedelta(minutes=15)
    assert sign_in.expires_in == 900 and sign_in.refresh_expires_in == 7 * 24 * 3600
    principal = await any_auth.who(f"Bearer {sign_in.access_token}")
    assert (principal.user_id, principal.via, principal.is_admin) == (user.id, "sign_in", False)
    assert {
        "profile:read",
        "credits:read",
        "agents:execute",
        "sessions:read",
        "account:manage",
    } == principal.scopes
    actions = [(e.action, e.risk, e.user_id, e.ip) for e in await _audit(any_auth)]
    assert actions == [
        ("account.created", "low", user.id, HERE.ip),
        ("auth.login.success", "low", user.id, HERE.ip),
    ]


async def test_registration_refuses_a_taken_email_and_a_weak_password(auth: Auth) -> None:
    await auth.register("ada@example.org")
    with pytest.raises(ConflictError, match="email"):
        await auth.register("ADA@example.org")
    with pytest.raises(InputError, match="an upper-case letter"):
        await auth.register("bob@example.org", "lowercase-only-1")
    with pytest.raises(InputError, match="not a valid email"):
        await auth.register("not-an-email")
    assert [e.action for e in await _audit(auth)] == ["account.created"]  # nothing else written


async def test_a_wrong_password_and_an_unknown_email_get_the_same_answer(auth: Auth) -> None:
    await auth.register("ada@example.org")
    answers = []
    for email, password in (("ada@example.org", "Wrong-pass-1"), ("nobody@example.org", PASSWORD)):
        with pytest.raises(AuthenticationError) as caught:
            await auth.login(email, password)
        answers.append((type(caught.value), caught.value.message))
    assert answers[0] == answers[1] == (AuthenticationError, "the email or the password is wrong")
    failures = [
        (e.action, e.risk, e.details["email"]) for e in await _audit(auth) if e.action != "account.created"
    ]
    assert failures == [
        ("auth.login.failure", "medium", "ada@example.org"),
        ("auth.login.failure", "medium", "nobody@example.org"),
    ]


async def test_refresh_rotates_and_a_reused_token_revokes_the_whole_family(any_auth: Auth) -> None:
    await any_auth.register("ada@example.org")
    first = await any_auth.login("ada@example.org")
    service = lambda s: AuthService(s, any_auth.policy)  # noqa: E731
    second = await any_auth.unit(lambda s: service(s).refresh(first.refresh_token, HERE))
    assert second.refresh_token != first.refresh_token and second.family_id == first.family_id
    third = await any_auth.unit(lambda s: service(s).refresh(second.refresh_token, HERE))
    await any_auth.who(f"Bearer {third.access_token}")
    # The first token again: someone else has the family's tokens. All of it ends.
    with pytest.raises(AuthenticationError, match="already used"):
        await any_auth.unit(lambda s: service(s).refresh(first.refresh_token, HERE))
    with pytest.raises(AuthenticationError, match="revoked"):
        await any_auth.unit(lambda s: service(s).refresh(third.refresh_token, HERE))
    for sign_in in (first, second, third):  # and the access tokens issued from it
        with pytest.raises(AuthenticationError, match="sign-in has ended"):
            await any_auth.who(f"Bearer {sign_in.access_token}")
    reuse = [e for e in await _audit(any_auth) if e.action == "auth.refresh.reuse"]
    assert (
        len(reuse) == 1 and reuse[0].risk == "critical" and reuse[0].details["revoked"] == 3
    )  # every token of the family
    assert reuse[0].details["sign_in"] == first.family_id
    # Another sign-in of the same account is untouched.
    other = await any_auth.login("ada@example.org")
    await any_auth.unit(lambda s: service(s).refresh(other.refresh_token, HERE))


async def test_an_expired_or_unknown_refresh_token_is_refused(auth: Auth) -> None:
    await auth.register("ada@example.org")
    sign_in = await auth.login("ada@example.org")
    with pytest.raises(AuthenticationError, match="not valid"):
        await auth.unit(lambda s: AuthService(s, auth.policy).refresh("krt_made-up", HERE))
    auth.clock.advance(days=7, seconds=1)
    with pytest.raises(AuthenticationError, match="expired"):
        await auth.unit(lambda s: AuthService(s, auth.policy).refresh(sign_in.refresh_token, HERE))


async def test_logout_ends_the_sign_in_and_only_it(any_auth: Auth) -> None:
    await any_auth.register("ada@example.org")
    one, two = await any_auth.login("ada@example.org"), await any_auth.login("ada@example.org")
    await any_auth.acting(
        f"Bearer {one.access_token}", lambda s, me: AuthService(s, any_auth.policy).logout(me, HERE)
    )
    with pytest.raises(AuthenticationError, match="sign-in has ended"):
        await any_auth.who(f"Bearer {one.access_token}")
    with pytest.raises(AuthenticationError, match="revoked"):
        await any_auth.unit(lambda s: AuthService(s, any_auth.policy).refresh(one.refresh_token, HERE))
    await any_auth.who(f"Bearer {two.access_token}")
    assert "auth.logout" in [e.action for e in await _audit(any_auth)]


@pytest.mark.parametrize("status", ["suspended", "banned"])
async def test_a_disabled_account_is_refused_everywhere_even_with_tokens_from_before(
    any_auth: Auth, status: str
) -> None:
    user = await any_auth.register("ada@example.org")
    sign_in = await any_auth.login("ada@example.org")
    await _set_status(any_auth, user.id, status)
    with pytest.raises(AuthenticationError, match=f"account is {status}") as caught:
        await any_auth.who(f"Bearer {sign_in.access_token}")
    assert caught.value.http_status == 401
    with pytest.raises(AuthenticationError, match=f"account is {status}"):
        await any_auth.unit(lambda s: AuthService(s, any_auth.policy).refresh(sign_in.refresh_token, HERE))
    with pytest.raises(AccountDisabledError, match=f"account is {status}"):
        await any_auth.login("ada@example.org")
    denied = [
        e
        for e in await _audit(any_auth)
        if e.action in {"auth.denied", "auth.refresh.refused", "auth.login.refused"}
    ]
    assert [e.action for e in denied] == ["auth.denied", "auth.refresh.refused", "auth.login.refused"]
    await _set_status(any_auth, user.id, "active")
    await any_auth.who(f"Bearer {sign_in.access_token}")  # suspension lifted: the sign-in holds


async def test_a_changed_password_cost_rehashes_at_the_next_login(auth: Auth) -> None:
    user = await auth.register("ada@example.org")
    assert "t=1," in user.password_hash
    dearer = type(auth.policy)(secret=auth.policy.secret, passwords=cheap_passwords(2), clock=auth.clock)
    await auth.unit(lambda s: AuthService(s, dearer).login("ada@example.org", PASSWORD, None, HERE))

    async def stored(session: AsyncSession) -> str:
        return (await session.execute(select(UserRow.password_hash))).scalar_one()

    rehashed = await auth.unit(stored)
    assert "t=2," in rehashed and dearer.passwords.verify(rehashed, PASSWORD)


async def test_refresh_tokens_are_stored_only_as_keyed_hashes(auth: Auth) -> None:
    await auth.register("ada@example.org")
    sign_in = await auth.login("ada@example.org")

    async def hashes(session: AsyncSession) -> list[str]:
        return list((await session.execute(select(AuthTokenRow.token_hash))).scalars())

    stored = await auth.unit(hashes)
    assert len(stored) == 1 and sign_in.refresh_token not in stored[0] and len(stored[0]) == 64
