"""The ledger's rules, each on SQLite and on PostgreSQL (as the application role, under RLS)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select, text

from keen.audit import verify
from keen.billing import SpendingLimitReached, TestPaymentProvider
from keen.errors import ConflictError, InputError, InsufficientCredits, NotFoundError, PermissionDeniedError
from keen.store import Database
from keen.store.db import set_acting_user
from keen.store.models import AuditLogRow, CreditTransactionRow
from ledgerkit import Clock, add_user, as_admin, as_user, grant, invariant_problems

D = Decimal


async def _entries(db: Database, user_id: str) -> list[CreditTransactionRow]:
    async with db.transaction() as session:
        await set_acting_user(session, None, True)
        query = select(CreditTransactionRow).where(CreditTransactionRow.user_id == user_id)
        return list((await session.scalars(query.order_by(CreditTransactionRow.id))).all())


async def _audit_actions(db: Database, user_id: str) -> list[str]:
    async with db.transaction() as session:
        await set_acting_user(session, None, True)
        query = select(AuditLogRow.action).where(AuditLogRow.user_id == user_id).order_by(AuditLogRow.seq)
        return list((await session.scalars(query)).all())


async def test_a_charge_applies_the_markup_exactly_once_and_releases_the_rest(db: Database) -> None:
    user = await add_user(db)
    await grant(db, user, "20")
    async with as_user(db, user) as ledger:
        hold = await ledger.hold(user, D("0.1"), key="call-1", session_id="s" * 32, model="m")
        assert hold.amount == D("0.500000") and hold.status == "open"
        assert (await ledger.account(user)).available == D("19.500000")
    async with as_user(db, user) as ledger:
        charge = await ledger.charge(user, "call-1", D("0.012345"))
        account = await ledger.account(user)
    assert charge.entry.type == "usage"
    assert charge.entry.amount == D("-0.061725")  # 0.012345 × 5, once
    assert charge.entry.provider_cost == D("0.012345") and charge.entry.markup == D(5)
    assert charge.entry.unbilled is None and charge.entry.session_id == "s" * 32
    assert charge.entry.model == "m" and charge.entry.hold_id == hold.id
    assert (account.balance, account.held, account.available) == (D("19.938275"), D(0), D("19.938275"))
    assert account.lifetime_spent == D("0.061725") and account.used_today == D("0.061725")
    assert await invariant_problems(db, user) == []
    assert await _audit_actions(db, user) == ["credits.adjustment", "credits.usage"]


async def test_every_call_is_idempotent_on_the_hold_key(db: Database) -> None:
    user = await add_user(db)
    await grant(db, user, "10")
    async with as_user(db, user) as ledger:
        first = await ledger.hold(user, D("0.2"), key="k")
        again = await ledger.hold(user, D("0.2"), key="k")
        assert first == again and (await ledger.account(user)).held == D(1)
        charged = await ledger.charge(user, "k", D("0.1"))
        charged_again = await ledger.charge(user, "k", D("0.1"))
        assert charged.entry == charged_again.entry
        assert (await ledger.release(user, "k")).status == "captured"  # ended: left as it is
        assert (await ledger.hold(user, D("0.2"), key="k")).status == "captured"
    async with as_user(db, user) as ledger:
        await ledger.hold(user, D("0.2"), key="r")
        assert (await ledger.release(user, "r")).status == "released"
        assert (await ledger.release(user, "r")).status == "released"
        assert (await ledger.account(user)).held == D(0)
    assert [e.type for e in await _entries(db, user)] == ["adjustment", "usage"]
    assert await invariant_problems(db, user) == []


async def test_an_actual_above_the_hold_is_charged_up_to_the_hold_and_the_rest_recorded(db: Database) -> None:
    user = await add_user(db)
    await grant(db, user, "10")
    async with as_user(db, user) as ledger:
        await ledger.hold(user, D("0.1"), key="k")  # 0.5 credits
        charge = await ledger.charge(user, "k", D("0.3"))  # 1.5 credits due
        account = await ledger.account(user)
    assert charge.entry.amount == D("-0.5") and charge.entry.unbilled == D("1.0")
    assert charge.entry.provider_cost == D("0.3") and charge.hold.charged == D("0.5")
    assert account.balance == D("9.5") and account.held == D(0)
    assert await invariant_problems(db, user) == []


async def test_a_hold_the_balance_cannot_cover_is_refused_and_changes_nothing(db: Database) -> None:
    user = await add_user(db)
    await grant(db, user, "1")
    with pytest.raises(InsufficientCredits) as refused:
        async with as_user(db, user) as ledger:
            await ledger.hold(user, D("0.200001"), key="big")  # 1.000005 credits
    assert refused.value.http_status == 402 and refused.value.details["available"] == "1.000000"
    async with as_user(db, user) as ledger:
        assert (await ledger.hold(user, D("0.2"), key="exact")).amount == D(1)  # exactly all of it
        with pytest.raises(InsufficientCredits):
            await ledger.hold(user, D("0.000001"), key="one-more")
        assert (await ledger.account(user)).available == D(0)
    assert await invariant_problems(db, user) == []


async def test_a_user_without_credits_gets_an_account_with_the_defaults_and_is_refused(db: Database) -> None:
    user = await add_user(db)
    with pytest.raises(InsufficientCredits):
        async with as_user(db, user) as ledger:
            await ledger.hold(user, D("0.01"), key="k")
    async with as_user(db, user) as ledger:
        account = await ledger.account(user)
    assert (account.balance, account.daily_limit, account.monthly_limit) == (D(0), D(100), D(1000))
    assert account.auto_recharge.enabled is False and account.auto_recharge.threshold == D(10)


async def test_an_admin_is_never_charged_and_each_call_writes_one_bypass_record(db: Database) -> None:
    admin = await add_user(db, role="admin")
    async with as_user(db, admin) as ledger:
        assert (await ledger.account(admin)).unlimited
        hold = await ledger.hold(admin, D("400"), key="huge")  # far past any balance or limit
        assert hold.bypass and (await ledger.account(admin)).held == D(0)
        charge = await ledger.charge(admin, "huge", D("0.02"))
        await ledger.charge(admin, "huge", D("0.02"))
        account = await ledger.account(admin)
    entries = await _entries(db, admin)
    assert [(e.type, e.amount, e.unbilled) for e in entries] == [("admin_bypass", D(0), D("0.1"))]
    assert charge.entry.provider_cost == D("0.02") and charge.entry.markup == D(5)
    assert account.balance == D(0) and account.lifetime_spent == D(0)
    assert await invariant_problems(db, admin) == []


async def test_a_user_cannot_touch_another_users_account_through_the_ledger(db: Database) -> None:
    owner, other = await add_user(db), await add_user(db)
    await grant(db, owner, "5")
    async with as_user(db, owner) as ledger:
        await ledger.hold(owner, D("0.1"), key="k")
    async with as_user(db, other) as ledger:
        for attempt in (
            ledger.account(owner),
            ledger.hold(owner, D("0.1"), key="x"),
            ledger.charge(owner, "k", D("0.1")),
            ledger.release(owner, "k"),
        ):
            with pytest.raises(PermissionDeniedError):
                await attempt
        with pytest.raises(PermissionDeniedError):
            await ledger.adjust(other, D(5), reason="self-service")  # adjustments are admins'
        # Its own key of the same name is another hold altogether.
        with pytest.raises(NotFoundError):
            await ledger.charge(other, "k", D("0.1"))


async def test_a_negative_adjustment_may_not_leave_less_than_nothing_available(db: Database) -> None:
    user = await add_user(db)
    await grant(db, user, "3")
    async with as_user(db, user) as ledger:
        await ledger.hold(user, D("0.2"), key="k")  # 1 held, 2 available
    async with as_admin(db) as ledger:
        with pytest.raises(ConflictError):
            await ledger.adjust(user, D("-2.000001"), reason="correction")
        entry = await ledger.adjust(user, D("-2"), reason="correction")
        with pytest.raises(InputError):
            await ledger.adjust(user, D(1), reason="  ")
    assert entry.balance_after == D(1) and entry.reason == "correction" and entry.actor == "system"
    assert await invariant_problems(db, user) == []


async def test_refunds_give_back_at_most_what_a_usage_entry_took(db: Database) -> None:
    user = await add_user(db)
    await grant(db, user, "10")
    async with as_user(db, user) as ledger:
        await ledger.hold(user, D("1"), key="k")
        usage = (await ledger.charge(user, "k", D("0.4"))).entry  # 2 credits
    async with as_admin(db) as ledger:
        first = await ledger.refund(user, usage.id, D("0.5"), reason="bad answer")
        with pytest.raises(ConflictError):
            await ledger.refund(user, usage.id, D("1.500001"), reason="too much")
        rest = await ledger.refund(user, usage.id, reason="all of it")
        with pytest.raises(ConflictError):
            await ledger.refund(user, usage.id, reason="again")
        account = await ledger.account(user)
    assert (first.amount, rest.amount, rest.balance_after) == (D("0.5"), D("1.5"), D(10))
    assert account.lifetime_spent == D(0)
    assert await invariant_problems(db, user) == []


async def test_a_purchase_credits_once_and_a_failed_payment_credits_nothing_but_is_audited(
    db: Database,
) -> None:
    user = await add_user(db)
    provider = TestPaymentProvider()
    async with as_user(db, user) as ledger:
        bought = await ledger.purchase(user, D("25"), provider=provider, request_key="p1")
        again = await ledger.purchase(user, D("25"), provider=provider, request_key="p1")
    assert bought.payment.status == "succeeded" and bought.entry is not None
    assert again.payment.id == bought.payment.id and again.entry == bought.entry
    assert bought.payment.provider_ref is not None and bought.payment.provider_ref.startswith("test_")
    provider.fail = True
    async with as_user(db, user) as ledger:
        failed = await ledger.purchase(user, D("30"), provider=provider, request_key="p2")
        account = await ledger.account(user)
    assert failed.payment.status == "failed" and failed.entry is None and failed.payment.error
    assert account.balance == D(25) and account.lifetime_purchased == D(25)
    assert [e.type for e in await _entries(db, user)] == ["purchase"]
    assert await _audit_actions(db, user) == ["credits.purchase", "credits.payment_failed"]
    assert await invariant_problems(db, user) == []


async def test_a_movement_rolled_back_leaves_no_entry_and_no_audit(db: Database) -> None:
    user = await add_user(db)
    with pytest.raises(RuntimeError):
        async with as_admin(db) as ledger:
            await ledger.adjust(user, D(5), reason="grant")
            raise RuntimeError("the request failed after the grant")
    assert await _entries(db, user) == [] and await _audit_actions(db, user) == []
    async with db.transaction() as session:
        await set_acting_user(session, None, True)
        assert (await verify(session)).intact


async def test_a_charge_of_an_expired_hold_takes_at_most_what_is_available(
    db: Database, clock: Clock
) -> None:
    user = await add_user(db)
    await grant(db, user, "2")
    async with as_user(db, user, clock) as ledger:
        await ledger.hold(user, D("0.3"), key="slow")  # 1.5
    clock.advance(minutes=16)
    async with as_admin(db, clock) as ledger:
        assert [h.key for h in await ledger.expire_stale()] == ["slow"]
    async with as_user(db, user, clock) as ledger:
        await ledger.hold(user, D("0.2"), key="next")  # 1 of the 2 credits now held
        late = await ledger.charge(user, "slow", D("0.3"))
        account = await ledger.account(user)
    assert late.entry.amount == D(-1) and late.entry.unbilled == D("0.5")
    assert account.balance == D(1) and account.available == D(0)
    assert await invariant_problems(db, user) == []


async def test_sqlite_keeps_micro_credits_exact_where_floats_would_drift(sqlite_url: str) -> None:
    db = Database(sqlite_url)
    try:
        user = await add_user(db)
        await grant(db, user, "0.3")
        for i in range(10):
            async with as_user(db, user) as ledger:
                await ledger.hold(user, D("0.000002"), key=f"k{i}")  # 0.00001 credits each
                await ledger.charge(user, f"k{i}", D("0.000002"))
        async with db.transaction() as session:
            raw = (await session.execute(text("SELECT balance, typeof(balance) FROM credit_accounts"))).one()
        async with as_user(db, user) as ledger:
            balance = (await ledger.account(user)).balance
        assert balance == D("0.2999") and raw == (299900, "integer")
        assert await invariant_problems(db, user) == []
    finally:
        await db.dispose()


async def test_amounts_that_are_not_exact_decimals_are_refused(db: Database) -> None:
    user = await add_user(db)
    async with as_user(db, user) as ledger:
        with pytest.raises(InputError):
            await ledger.hold(user, 0.1, key="float")  # type: ignore[arg-type]
        with pytest.raises(InputError):
            await ledger.hold(user, D("-1"), key="negative")
        with pytest.raises(InputError):
            await ledger.hold(user, D("0.1"), key="")
    async with as_admin(db) as ledger:
        with pytest.raises(InputError, match="6 decimal places"):
            await ledger.adjust(user, D("0.0000001"), reason="too fine")


async def test_spending_limit_refusals_are_typed(db: Database) -> None:
    user = await add_user(db)
    await grant(db, user, "500")
    async with as_user(db, user) as ledger:
        with pytest.raises(SpendingLimitReached) as refused:
            await ledger.hold(user, D("20.000001"), key="k")  # 100.000005 > the daily 100
    assert refused.value.details["limit"] == "daily" and refused.value.http_status == 402


async def test_an_account_made_unlimited_is_charged_nothing_until_limited_again(db: Database) -> None:
    user = await add_user(db)
    await grant(db, user, "1")
    async with as_admin(db) as ledger:
        assert (await ledger.set_unlimited(user, True)).unlimited
    async with as_user(db, user) as ledger:
        with pytest.raises(PermissionDeniedError):
            await ledger.set_unlimited(user, False)  # not the owner's to change
    async with as_user(db, user) as ledger:
        await ledger.hold(user, D(10), key="free")
        assert (await ledger.charge(user, "free", D(10))).entry.type == "admin_bypass"
    async with as_admin(db) as ledger:
        await ledger.set_unlimited(user, False)
    with pytest.raises(InsufficientCredits):
        async with as_user(db, user) as ledger:
            await ledger.hold(user, D(10), key="paid")
    assert await invariant_problems(db, user) == []
