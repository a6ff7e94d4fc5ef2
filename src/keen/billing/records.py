"""What the ledger answers with: plain frozen records of accounts, holds, entries and payments
(never the ORM rows, so a caller cannot change one by accident), and the ledger's configuration."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

from keen.billing import limits
from keen.billing.money import ZERO, exact
from keen.config import Settings

R = TypeVar("R")
Clock = Callable[[], datetime]


def from_row(record: type[R], row: Any) -> R:
    """The record of a database row with (at least) the record's fields as columns."""
    return record(**{field.name: getattr(row, field.name) for field in fields(record)})  # type: ignore[arg-type]


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class LedgerConfig:
    """What the ledger is configured with (from `Settings`): the markup, a new account's limits
    and auto-recharge settings, and how long a hold lasts."""

    markup: Decimal
    daily_limit: Decimal
    monthly_limit: Decimal
    recharge_threshold: Decimal
    recharge_amount: Decimal
    recharge_monthly_cap: Decimal
    hold_ttl: timedelta

    @classmethod
    def from_settings(cls, settings: Settings) -> LedgerConfig:
        return cls(
            markup=settings.keen_credit_markup,
            daily_limit=exact(settings.keen_credit_daily_limit),
            monthly_limit=exact(settings.keen_credit_monthly_limit),
            recharge_threshold=exact(settings.keen_auto_recharge_threshold),
            recharge_amount=exact(settings.keen_auto_recharge_amount),
            recharge_monthly_cap=exact(settings.keen_auto_recharge_monthly_cap),
            hold_ttl=timedelta(seconds=settings.keen_credit_hold_ttl_seconds),
        )


@dataclass(frozen=True)
class Hold:
    id: str
    key: str
    user_id: str
    amount: Decimal
    provider_cost: Decimal
    status: str
    bypass: bool
    session_id: str | None
    model: str | None
    day_key: str
    month_key: str
    created_at: datetime
    expires_at: datetime
    charged: Decimal | None = None

    @classmethod
    def of(cls, row: Any) -> Hold:
        return from_row(cls, row)


@dataclass(frozen=True)
class Entry:
    """One ledger entry. `amount` is signed (what it did to the balance)."""

    id: int
    user_id: str
    type: str
    amount: Decimal
    balance_after: Decimal
    provider_cost: Decimal | None
    markup: Decimal | None
    unbilled: Decimal | None
    session_id: str | None
    hold_id: str | None
    payment_id: str | None
    refund_of: int | None
    model: str | None
    reason: str | None
    actor: str | None
    created_at: datetime

    @classmethod
    def of(cls, row: Any) -> Entry:
        return from_row(cls, row)


@dataclass(frozen=True)
class AutoRecharge:
    enabled: bool
    threshold: Decimal
    amount: Decimal
    monthly_cap: Decimal
    used_this_month: Decimal


@dataclass(frozen=True)
class Account:
    user_id: str
    balance: Decimal
    held: Decimal
    available: Decimal
    lifetime_purchased: Decimal
    lifetime_spent: Decimal
    unlimited: bool
    daily_limit: Decimal
    monthly_limit: Decimal
    used_today: Decimal
    used_this_month: Decimal
    auto_recharge: AutoRecharge

    @classmethod
    def of(cls, row: Any, now: datetime) -> Account:
        used = limits.Usage.of(row, now)
        month = limits.month_key(now)
        return cls(
            user_id=row.user_id,
            balance=row.balance,
            held=row.held,
            available=row.balance - row.held,
            lifetime_purchased=row.lifetime_purchased,
            lifetime_spent=row.lifetime_spent,
            unlimited=row.unlimited,
            daily_limit=row.daily_limit,
            monthly_limit=row.monthly_limit,
            used_today=used.day,
            used_this_month=used.month,
            auto_recharge=AutoRecharge(
                enabled=row.auto_recharge_enabled,
                threshold=row.auto_recharge_threshold,
                amount=row.auto_recharge_amount,
                monthly_cap=row.auto_recharge_monthly_cap,
                used_this_month=row.recharge_month_total if row.recharge_month_key == month else ZERO,
            ),
        )


@dataclass(frozen=True)
class Charge:
    """A charged hold and its entry. `recharge` is the id of the auto-recharge payment this
    charge started (pending): the caller completes it after committing (keen.billing.recharge)."""

    hold: Hold
    entry: Entry
    recharge: str | None = None


@dataclass(frozen=True)
class Payment:
    id: str
    user_id: str
    provider: str
    provider_ref: str | None
    kind: str
    status: str
    amount: Decimal
    error: str | None
    created_at: datetime

    @classmethod
    def of(cls, row: Any) -> Payment:
        return from_row(cls, row)


@dataclass(frozen=True)
class Purchase:
    """A payment and, when it succeeded, the entry that credited it."""

    payment: Payment
    entry: Entry | None


@dataclass(frozen=True)
class SettingsChange:
    """Account settings to change (None: leave as it is); amounts already validated."""

    daily_limit: Decimal | None = None
    monthly_limit: Decimal | None = None
    auto_recharge_enabled: bool | None = None
    auto_recharge_threshold: Decimal | None = None
    auto_recharge_amount: Decimal | None = None
    auto_recharge_monthly_cap: Decimal | None = None
