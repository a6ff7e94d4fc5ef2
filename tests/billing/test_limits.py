"""Daily and monthly limits count charged and held credits, per UTC day and month, exactly at
their boundaries (the clock is injected)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from keen.billing import SettingsChange, SpendingLimitReached
from keen.store import Database
from ledgerkit import Clock, add_user, as_user, grant, invariant_problems

D = Decimal


def at(text: str) -> Clock:
    return Clock(datetime.fromisoformat(text).replace(tzinfo=UTC))


async def _user_with_limits(db: Database, daily: str, monthly: str) -> str:
    user = await add_user(db)
    await grant(db, user, "5000")
    async with as_user(db, user) as ledger:
        await ledger.update_settings(user, SettingsChange(daily_limit=D(daily), monthly_limit=D(monthly)))
    return user


async def test_the_daily_limit_counts_charged_and_held_credits_until_the_last_second_of_the_day(
    db: Database,
) -> None:
    user = await _user_with_limits(db, "100", "1000")
    clock = at("2026-12-10T23:59:59")
    async with as_user(db, user, clock) as ledger:
        await ledger.hold(user, D(12), key="charged")  # 60 credits
        await ledger.charge(user, "charged", D(12))
        await ledger.hold(user, D(8), key="held")  # 40 more: exactly the limit
        with pytest.raises(SpendingLimitReached) as refused:
            await ledger.hold(user, D("0.000001"), key="one-more")
        assert (await ledger.account(user)).used_today == D(100)
    assert refused.value.details == {
        "needed": "0.000005",
        "limit": "daily",
        "limit_amount": "100.000000",
        "used": "100.000000",
    }
    clock.now = at("2026-12-11T00:00:00").now
    async with as_user(db, user, clock) as ledger:
        assert (await ledger.account(user)).used_today == D(0)
        await ledger.hold(user, D(20), key="new-day")  # 100 credits of the new day
        with pytest.raises(SpendingLimitReached):
            await ledger.hold(user, D("0.000001"), key="over")
    assert await invariant_problems(db, user) == []


async def test_a_hold_counts_in_the_day_it_was_placed_even_when_charged_the_next(db: Database) -> None:
    user = await _user_with_limits(db, "100", "1000")
    clock = at("2026-12-10T23:59:59")
    async with as_user(db, user, clock) as ledger:
        await ledger.hold(user, D(10), key="across-midnight")  # 50 credits
    clock.now = at("2026-12-11T00:00:00").now
    async with as_user(db, user, clock) as ledger:
        await ledger.hold(user, D(20), key="today")  # today's 100: yesterday's hold is not in it
        await ledger.charge(user, "across-midnight", D(2))  # 10 of its 50: frees nothing of today
        account = await ledger.account(user)
        with pytest.raises(SpendingLimitReached):
            await ledger.hold(user, D("0.000001"), key="over")
    assert account.used_today == D(100) and account.used_this_month == D(110)
    assert await invariant_problems(db, user) == []


async def test_the_monthly_limit_spans_days_and_resets_after_the_last_second_of_the_month(
    db: Database,
) -> None:
    user = await _user_with_limits(db, "100", "150")
    clock = at("2026-12-30T12:00:00")
    async with as_user(db, user, clock) as ledger:
        await ledger.hold(user, D(18), key="d30")  # 90
        await ledger.charge(user, "d30", D(18))
    clock.now = at("2026-12-31T23:59:59").now
    async with as_user(db, user, clock) as ledger:
        with pytest.raises(SpendingLimitReached) as refused:
            await ledger.hold(user, D("12.000001"), key="too-much")  # 90 + 60.000005 > 150
        await ledger.hold(user, D(12), key="last-second")  # exactly 150 this month
        account = await ledger.account(user)
    assert refused.value.details["limit"] == "monthly"
    assert (account.used_today, account.used_this_month) == (D(60), D(150))
    clock.now = at("2027-01-01T00:00:00").now
    async with as_user(db, user, clock) as ledger:
        await ledger.release(user, "last-second")  # December's: January's count is untouched
        await ledger.hold(user, D(20), key="new-month")  # 100 credits: the daily limit, not the month's
        account = await ledger.account(user)
    assert (account.used_today, account.used_this_month) == (D(100), D(100))
    assert await invariant_problems(db, user) == []


async def test_released_credits_are_given_back_to_the_limits_of_their_day(db: Database) -> None:
    user = await _user_with_limits(db, "100", "1000")
    clock = at("2026-12-10T10:00:00")
    async with as_user(db, user, clock) as ledger:
        await ledger.hold(user, D(20), key="a")
        with pytest.raises(SpendingLimitReached):
            await ledger.hold(user, D(1), key="b")
        await ledger.release(user, "a")
        await ledger.hold(user, D(20), key="b")
        assert (await ledger.account(user)).used_today == D(100)
