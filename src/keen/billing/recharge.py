"""Auto-recharge: when a charge takes the balance under the threshold, one purchase of the
configured amount, once per crossing, within a monthly cap.

The charge that crosses the threshold (exactly one does: charges of an account queue on its
row) reserves the amount against the month's cap and records a `pending` payment, in its own
transaction. The payment is made after that commits (`complete_recharge`, by the caller or by
the sweeper for one left pending by a crash): the provider is asked with the payment's own key,
so asking twice is one payment, and the conditional update from `pending` credits it once. A
failed payment credits nothing, gives its amount back to the month's cap and is audited; the
balance stays under the threshold, so nothing retries it until a purchase lifts it again.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import case, select, update

from keen.billing import audit, limits
from keen.billing.limits import credits
from keen.billing.payments import PaymentProvider
from keen.billing.tables import ACCOUNTS, PAYMENTS

if TYPE_CHECKING:
    from keen.billing.ledger import Ledger
    from keen.billing.records import Purchase

A = ACCOUNTS.c
P = PAYMENTS.c
KIND = "auto_recharge"


def _month_total(month: str) -> object:
    return limits.used_in(A.recharge_month_key, A.recharge_month_total, month)


async def start_recharge(ledger: Ledger, user_id: str, now: datetime) -> str | None:
    """Record the pending auto-recharge of a crossing (None when the month's cap is reached)."""
    month = limits.month_key(now)
    session = ledger.session
    amount = (
        await session.execute(
            update(ACCOUNTS)
            .where(
                A.user_id == user_id,
                A.auto_recharge_enabled.is_(True),
                _month_total(month) + A.auto_recharge_amount <= A.auto_recharge_monthly_cap,
            )
            .values(
                recharge_month_key=month, recharge_month_total=_month_total(month) + A.auto_recharge_amount
            )
            .returning(A.auto_recharge_amount)
        )
    ).scalar_one_or_none()
    if amount is None:
        await ledger.audit("credits.auto_recharge_capped", user_id, now, audit.Risk.LOW, {"month": month})
        return None
    payment_id = uuid.uuid4().hex
    await session.execute(
        PAYMENTS.insert().values(
            id=payment_id,
            user_id=user_id,
            provider="",
            kind=KIND,
            status="pending",
            amount=amount,
            request_key=f"{KIND}:{payment_id}",
            created_at=now,
        )
    )
    return payment_id


async def complete_recharge(ledger: Ledger, payment_id: str, provider: PaymentProvider) -> Purchase | None:
    """Make a pending auto-recharge payment and credit it (None when it is not pending: done)."""
    from keen.billing.records import Payment, Purchase

    session = ledger.session
    row = (await session.execute(select(PAYMENTS).where(P.id == payment_id, P.status == "pending"))).first()
    if row is None:
        return None
    ledger.require_access(row.user_id)
    result = await provider.charge(
        row.user_id,
        row.amount,
        idempotency_key=row.request_key,
        description=f"auto-recharge of {row.amount} credits",
    )
    now = ledger.clock()
    succeeded = result.ok and bool(result.provider_ref)
    if succeeded:
        known = (await session.execute(select(P.id).where(P.provider_ref == result.provider_ref))).first()
        succeeded = known is None  # a provider payment id credited already is not credited again
    ended = (
        await session.execute(
            update(PAYMENTS)
            .where(P.id == payment_id, P.status == "pending")
            .values(
                provider=provider.name,
                provider_ref=result.provider_ref if succeeded else None,
                status="succeeded" if succeeded else "failed",
                error=None if succeeded else (result.error or "the payment failed"),
                completed_at=now,
            )
            .returning(*PAYMENTS.c)
        )
    ).first()
    if ended is None:  # another process completed it meanwhile
        return None
    payment = Payment.of(ended)
    if succeeded:
        return Purchase(payment, await ledger.credit_payment(payment, reason=KIND))
    month = limits.month_key(row.created_at)
    await session.execute(
        update(ACCOUNTS)
        .where(A.user_id == row.user_id)
        .values(
            recharge_month_total=case(
                (A.recharge_month_key == month, A.recharge_month_total - credits(row.amount)),
                else_=A.recharge_month_total,
            )
        )
    )
    details = {"amount": row.amount, "payment_id": payment_id, "kind": KIND, "error": payment.error}
    await ledger.audit("credits.payment_failed", row.user_id, now, audit.Risk.MEDIUM, details)
    return Purchase(payment, None)


async def pending_recharges(ledger: Ledger, older_than: datetime) -> list[str]:
    """Auto-recharges left pending since before `older_than` (their charger crashed)."""
    ledger.require_admin()
    rows = await ledger.session.execute(
        select(P.id).where(P.kind == KIND, P.status == "pending", P.created_at < older_than).order_by(P.id)
    )
    return list(rows.scalars())
