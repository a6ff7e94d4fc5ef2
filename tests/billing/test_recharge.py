"""Auto-recharge: one purchase per crossing of the threshold (never two for one crossing, however
many charges race), idempotent on the provider's payment id, within the monthly cap; a failing
provider credits nothing and is audited."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import select

from keen.billing import SettingsChange, TestPaymentProvider
from keen.billing.recharge import complete_recharge
from keen.billing.sweeper import sweep
from keen.store import Database
from keen.store.db import set_acting_user
from keen.store.models import AuditLogRow, PaymentRow
from ledgerkit import CONFIG, Clock, add_user, as_admin, as_user, grant, invariant_problems

D = Decimal


async def _recharging_user(db: Database, balance: str, cap: str = "500") -> str:
    user = await add_user(db)
    await grant(db, user, balance)
    change = SettingsChange(
        auto_recharge_enabled=True,
        auto_recharge_threshold=D(10),
        auto_recharge_amount=D(50),
        auto_recharge_monthly_cap=D(cap),
        daily_limit=D(1000),
    )
    async with as_user(db, user) as ledger:
        await ledger.update_settings(user, change)
    return user


async def _spend(db: Database, user: str, key: str, credits: str) -> str | None:
    """Hold and charge a call of `credits` (markup 5); the recharge it started, if any."""
    cost = D(credits) / 5
    async with as_user(db, user) as ledger:
        await ledger.hold(user, cost, key=key)
        return (await ledger.charge(user, key, cost)).recharge


async def _complete(db: Database, payment_id: str, provider: TestPaymentProvider) -> bool:
    async with as_admin(db) as ledger:
        return await complete_recharge(ledger, payment_id, provider) is not None


async def _payments(db: Database, user: str) -> list[tuple[str, str, Decimal]]:
    async with db.transaction() as session:
        await set_acting_user(session, None, True)
        rows = await session.execute(
            select(PaymentRow.kind, PaymentRow.status, PaymentRow.amount)
            .where(PaymentRow.user_id == user)
            .order_by(PaymentRow.created_at)
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]


async def _balance(db: Database, user: str) -> Decimal:
    async with as_user(db, user) as ledger:
        return (await ledger.account(user)).balance


async def test_a_charge_crossing_the_threshold_buys_the_amount_once(db: Database) -> None:
    user = await _recharging_user(db, "12")
    provider = TestPaymentProvider()
    assert await _spend(db, user, "a", "1") is None  # 11: still above
    payment = await _spend(db, user, "b", "2")  # 9: crossed
    assert payment is not None
    assert await _complete(db, payment, provider) and not await _complete(db, payment, provider)
    assert provider.calls == 1 and await _balance(db, user) == D(59)
    assert await _spend(db, user, "c", "1") is None  # 58: no crossing
    assert await _payments(db, user) == [("auto_recharge", "succeeded", D(50))]
    assert await invariant_problems(db, user) == []


async def test_concurrent_charges_make_one_recharge_for_one_crossing(db: Database) -> None:
    user = await _recharging_user(db, "12")
    async with as_user(db, user) as ledger:
        for i in range(10):
            await ledger.hold(user, D("0.1"), key=f"k{i}")  # 0.5 credits each

    async def charge(i: int) -> str | None:
        async with as_user(db, user) as ledger:
            return (await ledger.charge(user, f"k{i}", D("0.1"))).recharge

    started = [p for p in await asyncio.gather(*(charge(i) for i in range(10))) if p]
    assert len(started) == 1  # 12 → 7 crosses 10 once, whichever charge does it
    provider = TestPaymentProvider()
    completions = await asyncio.gather(*(_complete(db, started[0], provider) for _ in range(3)))
    assert completions.count(True) == 1 and await _balance(db, user) == D(57)
    assert await _payments(db, user) == [("auto_recharge", "succeeded", D(50))]
    assert await invariant_problems(db, user) == []


async def test_recharges_stop_at_the_monthly_cap(db: Database) -> None:
    user = await _recharging_user(db, "12", cap="100")
    provider = TestPaymentProvider()
    for key, spend in (("first", "3"), ("second", "50")):  # 12 → 9 (+50), 59 → 9 (+50)
        payment = await _spend(db, user, key, spend)
        assert payment is not None and await _complete(db, payment, provider)
    assert await _spend(db, user, "third", "50") is None  # 59 → 9 again: a third 50 passes the cap
    assert await _balance(db, user) == D(9)
    assert [p[1] for p in await _payments(db, user)] == ["succeeded", "succeeded"]
    async with as_user(db, user) as ledger:
        assert (await ledger.account(user)).auto_recharge.used_this_month == D(100)
    assert await invariant_problems(db, user) == []


async def test_a_failing_provider_credits_nothing_audits_and_gives_the_cap_back(db: Database) -> None:
    user = await _recharging_user(db, "12")
    payment = await _spend(db, user, "a", "3")
    assert payment is not None
    assert await _complete(db, payment, TestPaymentProvider(fail=True))
    assert await _balance(db, user) == D(9)
    assert await _payments(db, user) == [("auto_recharge", "failed", D(50))]
    async with as_user(db, user) as ledger:
        assert (await ledger.account(user)).auto_recharge.used_this_month == D(0)
    async with db.transaction() as session:
        await set_acting_user(session, None, True)
        actions = (await session.scalars(select(AuditLogRow.action).where(AuditLogRow.user_id == user))).all()
    assert "credits.payment_failed" in actions and "credits.purchase" not in actions
    assert await _spend(db, user, "b", "1") is None  # still under: no new crossing, no retry
    assert await invariant_problems(db, user) == []


async def test_a_recharge_left_pending_by_a_crash_is_completed_by_the_sweeper(db: Database) -> None:
    user = await _recharging_user(db, "12")
    payment = await _spend(db, user, "a", "3")  # the charger "dies" before completing it
    assert payment is not None
    provider = TestPaymentProvider()
    soon = await sweep(db, CONFIG, provider)
    assert soon.recharges_completed == 0  # within the grace a live charger is still at it
    later = Clock(datetime.now(UTC) + timedelta(minutes=3))  # past the grace
    report = await sweep(db, CONFIG, provider, clock=later)
    assert report.recharges_completed == 1 and await _balance(db, user) == D(59)
    assert (await sweep(db, CONFIG, provider, clock=later)).recharges_completed == 0
    assert await invariant_problems(db, user) == []
