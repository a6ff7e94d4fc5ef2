"""Reading the ledger: filtered, paged entries, spending by day and by model, the platform's
revenue, spend and markup, and estimates, all from stored data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from keen.billing import TestPaymentProvider
from keen.billing.estimate import estimate
from keen.billing.reports import Period, entries, platform_analytics, user_analytics
from keen.errors import PermissionDeniedError
from keen.store import Database
from ledgerkit import Clock, add_user, as_admin, as_user, grant

D = Decimal
DAY1 = datetime(2026, 12, 9, 23, 59, 59, tzinfo=UTC)


async def _history(db: Database) -> tuple[str, str]:
    """A user who bought 100, made two calls on day 1 and one on day 2 (two models), and an
    admin whose call was bypassed."""
    user, admin = await add_user(db), await add_user(db, role="admin")
    clock = Clock(DAY1)
    async with as_user(db, user, clock) as ledger:
        await ledger.purchase(user, D(100), provider=TestPaymentProvider(), request_key="buy")
        for key, cost, model in (("a", "0.1", "m1"), ("b", "0.2", "m2")):
            await ledger.hold(user, D(cost), key=key, model=model)
            await ledger.charge(user, key, D(cost))
    clock.advance(seconds=1)  # 00:00:00 of day 2
    async with as_user(db, user, clock) as ledger:
        await ledger.hold(user, D("0.3"), key="c", model="m1")
        await ledger.charge(user, "c", D("0.3"))
    async with as_user(db, admin, clock) as ledger:
        await ledger.hold(admin, D(1), key="x", model="m1")
        await ledger.charge(admin, "x", D("0.5"))
    return user, admin


async def test_entries_are_filtered_by_type_and_dates_and_paged_newest_first(db: Database) -> None:
    user, _ = await _history(db)
    async with as_user(db, user) as ledger:
        session = ledger.session
        everything = await entries(session, user)
        usage = await entries(session, user, types=["usage"], limit=2)
        second_page = await entries(session, user, types=["usage"], limit=2, offset=2)
        day1 = await entries(session, user, period=Period(DAY1.replace(hour=0), DAY1 + timedelta(seconds=1)))
    assert [e.type for e in everything.entries] == ["usage", "usage", "usage", "purchase"]
    assert (usage.total, [e.amount for e in usage.entries]) == (3, [D("-1.5"), D("-1")])
    assert [e.amount for e in second_page.entries] == [D("-0.5")]
    assert day1.total == 3 and {e.type for e in day1.entries} == {"purchase", "usage"}


async def test_user_analytics_sum_spending_by_day_and_by_model(db: Database) -> None:
    user, _ = await _history(db)
    async with as_user(db, user) as ledger:
        report = await user_analytics(ledger.session, user, Period())
    assert (report.spent, report.purchased, report.calls) == (D(3), D(100), 3)
    assert [(s.key, s.spent, s.calls) for s in report.by_day] == [
        ("2026-12-09", D("1.5"), 2),
        ("2026-12-10", D("1.5"), 1),
    ]
    assert [(s.key, s.spent, s.provider_cost) for s in report.by_model] == [
        ("m1", D(2), D("0.4")),
        ("m2", D(1), D("0.2")),
    ]


async def test_platform_analytics_give_revenue_spend_and_markup_and_are_for_admins(db: Database) -> None:
    user, _ = await _history(db)
    async with as_admin(db) as ledger:
        report = await platform_analytics(ledger.session, Period())
    assert (report.revenue, report.spend, report.provider_cost, report.markup_earned) == (
        D(100),
        D(3),
        D("0.6"),
        D("2.4"),
    )
    assert (report.admin_bypass, report.admin_provider_cost) == (D("2.5"), D("0.5"))
    assert (report.payments_succeeded, report.accounts, report.outstanding_balance) == (1, 2, D(97))
    assert report.revenue_by_day == {"2026-12-09": D(100)}
    with pytest.raises(PermissionDeniedError):
        async with as_user(db, user) as ledger:
            await platform_analytics(ledger.session, Period())


async def test_a_user_cannot_read_another_users_entries(db: Database) -> None:
    user, _ = await _history(db)
    other = await add_user(db)
    await grant(db, other, "1")
    async with as_user(db, other) as ledger:
        with pytest.raises(PermissionDeniedError):
            await entries(ledger.session, user)
        with pytest.raises(PermissionDeniedError):
            await user_analytics(ledger.session, user, Period())


def test_an_estimate_is_a_range_growing_with_the_iteration_limit_and_the_markup() -> None:
    small = estimate("make a CLI", "anthropic:claude-sonnet-5-5", 10, D(5))
    large = estimate("make a CLI", "anthropic:claude-sonnet-5-5", 100, D(5))
    at_cost = estimate("make a CLI", "anthropic:claude-sonnet-5-5", 10, D(1))
    assert D(0) < small.low < small.high < large.high
    assert small.low == large.low  # both would finish early the same way
    assert abs(small.high - 5 * at_cost.high) <= D("0.000005")  # the markup, once
    assert "estimate" in small.basis
