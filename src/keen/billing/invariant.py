"""The ledger's invariant, checked from the stored rows: an account's balance is the sum of its
entries and each entry's `balance_after` the running sum up to it; `held` is the sum of its
open (not bypass) holds; available (balance − held) is not negative; the lifetime totals are
what the purchases, usage and refunds add up to."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from keen.billing.tables import ACCOUNTS, ENTRIES, HOLDS

A, H, T = ACCOUNTS.c, HOLDS.c, ENTRIES.c
ZERO = Decimal(0)


async def problems(session: AsyncSession, user_id: str) -> list[str]:
    """What does not hold for the account of `user_id` (empty: all of it holds)."""
    account = (await session.execute(select(ACCOUNTS).where(A.user_id == user_id))).first()
    if account is None:
        return []
    found: list[str] = []
    entries = (
        await session.execute(
            select(T.id, T.type, T.amount, T.balance_after).where(T.user_id == user_id).order_by(T.id)
        )
    ).all()
    running = ZERO
    totals = {"purchase": ZERO, "usage": ZERO, "refund": ZERO}
    for entry in entries:
        running += entry.amount
        if entry.type in totals:
            totals[entry.type] += entry.amount
        if entry.balance_after != running:
            found.append(f"entry {entry.id} says balance {entry.balance_after}, the entries sum to {running}")
    summed = (await session.execute(select(func.sum(T.amount)).where(T.user_id == user_id))).scalar() or ZERO
    if not account.balance == running == summed:
        found.append(f"balance {account.balance}, entries sum to {running} (SQL: {summed})")
    held = (
        await session.execute(
            select(func.sum(H.amount)).where(H.user_id == user_id, H.status == "open", H.bypass.is_(False))
        )
    ).scalar() or ZERO
    if account.held != held:
        found.append(f"held {account.held}, open holds sum to {held}")
    if account.balance - account.held < 0:
        found.append(f"available is negative: {account.balance - account.held}")
    if account.lifetime_purchased != totals["purchase"]:
        found.append(
            f"lifetime purchased {account.lifetime_purchased}, purchases sum to {totals['purchase']}"
        )
    spent = -totals["usage"] - totals["refund"]
    if account.lifetime_spent != spent:
        found.append(f"lifetime spent {account.lifetime_spent}, usage less refunds is {spent}")
    return found
