"""Lockout: repeated failed logins lock the account, and separately the address they come from;
the answer says when to try again, and the count survives the refusals' rollback."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from authkit import PASSWORD, Auth
from keen.audit import Origin
from keen.errors import AuthenticationError, RateLimitedError
from keen.store.models import AuditLogRow, LoginThrottleRow

ATTACKER = Origin(ip="203.0.113.66", request_id="r")
ELSEWHERE = Origin(ip="198.51.100.7", request_id="r")


async def _fail(auth: Auth, email: str, times: int, origin: Origin) -> None:
    for _ in range(times):
        with pytest.raises(AuthenticationError):
            await auth.login(email, "Wrong-pass-1", origin=origin)


async def test_an_account_locks_after_repeated_failures_and_says_when_to_retry(any_auth: Auth) -> None:
    await any_auth.register("ada@example.org")
    await _fail(any_auth, "ada@example.org", any_auth.policy.max_failures, ATTACKER)
    for origin in (ATTACKER, ELSEWHERE):  # the account is locked from everywhere, right password or not
        with pytest.raises(RateLimitedError, match="this account: try again in 900 seconds") as caught:
            await any_auth.login("ada@example.org", PASSWORD, origin=origin)
        assert caught.value.retry_after == 900 and caught.value.details["locked"] == "account"
    any_auth.clock.advance(seconds=600)
    with pytest.raises(RateLimitedError) as caught:
        await any_auth.login("ada@example.org", PASSWORD, origin=ELSEWHERE)
    assert caught.value.retry_after == 300
    any_auth.clock.advance(seconds=300)
    await any_auth.login("ada@example.org", PASSWORD, origin=ELSEWHERE)


async def test_failures_spread_over_time_do_not_lock(auth: Auth) -> None:
    await auth.register("ada@example.org")
    for _ in range(3):
        await _fail(auth, "ada@example.org", auth.policy.max_failures - 1, ATTACKER)
        auth.clock.advance(seconds=901)
    await auth.login("ada@example.org", PASSWORD, origin=ATTACKER)


async def test_a_successful_login_clears_the_account_count(auth: Auth) -> None:
    await auth.register("ada@example.org")
    await _fail(auth, "ada@example.org", auth.policy.max_failures - 1, ATTACKER)
    await auth.login("ada@example.org", PASSWORD, origin=ATTACKER)
    await _fail(auth, "ada@example.org", auth.policy.max_failures - 1, ATTACKER)
    await auth.login("ada@example.org", PASSWORD, origin=ATTACKER)


async def test_an_address_guessing_many_accounts_is_locked_but_not_the_accounts(any_auth: Auth) -> None:
    emails = [f"user{n}@example.org" for n in range(5)]
    for email in emails:
        await any_auth.register(email)
    per_ip = any_auth.policy.max_failures_per_ip
    for n in range(per_ip):  # under each account's limit, over the address's
        await _fail(any_auth, emails[n % len(emails)], 1, ATTACKER)
    with pytest.raises(RateLimitedError, match="this address") as caught:
        await any_auth.login(emails[0], PASSWORD, origin=ATTACKER)
    assert caught.value.details["locked"] == "ip"
    await any_auth.login(emails[0], PASSWORD, origin=ELSEWHERE)  # the account itself is fine


async def test_lockouts_are_audited(auth: Auth) -> None:
    await auth.register("ada@example.org")
    await _fail(auth, "ada@example.org", auth.policy.max_failures, ATTACKER)
    with pytest.raises(RateLimitedError):
        await auth.login("ada@example.org", PASSWORD, origin=ATTACKER)

    async def entries(session: AsyncSession) -> list[AuditLogRow]:
        return list((await session.execute(select(AuditLogRow).order_by(AuditLogRow.seq))).scalars())

    rows = [(e.action, e.risk, e.ip) for e in await auth.unit(entries)]
    assert rows[-2:] == [
        ("auth.login.failure", "high", ATTACKER.ip),
        ("auth.login.locked", "medium", ATTACKER.ip),
    ]
    assert rows[1:-2] == [("auth.login.failure", "medium", ATTACKER.ip)] * (auth.policy.max_failures - 1)


async def test_counters_of_old_failures_are_dropped(auth: Auth) -> None:
    for n in range(3):
        await _fail(auth, f"nobody{n}@example.org", 1, ATTACKER)
    auth.clock.advance(seconds=901)
    await _fail(auth, "someone@example.org", 1, ELSEWHERE)

    async def subjects(session: AsyncSession) -> list[tuple[str, str]]:
        rows = await session.execute(
            select(LoginThrottleRow.scope, LoginThrottleRow.subject).order_by(LoginThrottleRow.scope)
        )
        return [(scope, subject) for scope, subject in rows]

    assert await auth.unit(subjects) == [("account", "someone@example.org"), ("ip", ELSEWHERE.ip)]
