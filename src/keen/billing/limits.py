"""Daily and monthly spending limits: credits charged and held in the UTC day and month.

An account row keeps the credits used in its current day (`day_key`, `day_used`) and month
(`month_key`, `month_used`); a hold adds its amount there in the same conditional UPDATE that
checks the limit, and a charge or release takes back what was not spent. Each hold counts in the
day and month it was placed: a hold placed at 23:59:59 and charged at 00:00:01 is spending of
the day before, and what it frees no longer changes a day that has ended.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, case, literal

from keen.billing.money import ZERO
from keen.billing.tables import ACCOUNTS
from keen.errors import InsufficientCredits
from keen.store.models import Credits

ACCOUNT = ACCOUNTS.c


class SpendingLimitReached(InsufficientCredits):
    """The account has credits, but the next hold would pass its daily or monthly limit."""

    code = "spending_limit_reached"


def day_key(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y-%m-%d")


def month_key(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y-%m")


def credits(value: Decimal | ColumnElement[Decimal]) -> ColumnElement[Decimal]:
    """An amount bound with the ledger's column type (micro-credits on SQLite); a bound
    parameter of a statement built once is used as it is."""
    return value if isinstance(value, ColumnElement) else literal(value, Credits())


def used_in(key_column: Any, used_column: Any, key: Any) -> ColumnElement[Decimal]:
    """What `used_column` counts in period `key` (0 when the row's counter is of another one)."""
    return case((key_column == key, used_column), else_=credits(ZERO))


def day_used(key: Any) -> ColumnElement[Decimal]:
    return used_in(ACCOUNT.day_key, ACCOUNT.day_used, key)


def month_used(key: Any) -> ColumnElement[Decimal]:
    return used_in(ACCOUNT.month_key, ACCOUNT.month_used, key)


def hold_counters(amount: Any, day: Any, month: Any) -> dict[str, Any]:
    """The SET clause of a hold of `amount` placed in `day` / `month`."""
    return {
        "day_key": day,
        "day_used": day_used(day) + credits(amount),
        "month_key": month,
        "month_used": month_used(month) + credits(amount),
    }


def within_limits(amount: Any, day: Any, month: Any) -> ColumnElement[bool]:
    """The WHERE condition that a hold of `amount` fits both limits."""
    return (day_used(day) + credits(amount) <= ACCOUNT.daily_limit) & (
        month_used(month) + credits(amount) <= ACCOUNT.monthly_limit
    )


def freed_counters(freed: Any, day: Any, month: Any) -> dict[str, Any]:
    """The SET clause giving back `freed` credits of a hold placed in `day` / `month`: only while
    those are still the account's current periods."""
    return {
        "day_used": case(
            (ACCOUNT.day_key == day, ACCOUNT.day_used - credits(freed)),
            else_=ACCOUNT.day_used,
        ),
        "month_used": case(
            (ACCOUNT.month_key == month, ACCOUNT.month_used - credits(freed)),
            else_=ACCOUNT.month_used,
        ),
    }


@dataclass(frozen=True)
class Usage:
    """What an account used of its limits in the periods of `now`."""

    day: Decimal
    month: Decimal

    @classmethod
    def of(cls, account: Any, now: datetime) -> Usage:
        return cls(
            day=account.day_used if account.day_key == day_key(now) else ZERO,
            month=account.month_used if account.month_key == month_key(now) else ZERO,
        )


def refusal(account: Any, amount: Decimal, now: datetime) -> InsufficientCredits:
    """Why a hold of `amount` was refused (the conditional UPDATE matched no row)."""
    available = account.balance - account.held
    if available < amount:
        return InsufficientCredits(
            f"this needs {amount} credits but {available} are available",
            details={"needed": str(amount), "available": str(available)},
        )
    used = Usage.of(account, now)
    for period, spent, limit in (
        ("daily", used.day, account.daily_limit),
        ("monthly", used.month, account.monthly_limit),
    ):
        if spent + amount > limit:
            return SpendingLimitReached(
                f"this needs {amount} credits, over the {period} limit of {limit} ({spent} used)",
                details={
                    "needed": str(amount),
                    "limit": period,
                    "limit_amount": str(limit),
                    "used": str(spent),
                },
            )
    # Both fit now: the account changed between the UPDATE and this read (not possible inside
    # one locked transaction, but said plainly rather than guessed).
    return InsufficientCredits(f"this needs {amount} credits, which the account could not cover")
