"""Reading the ledger: a user's entries (filtered, paged), their spending by day and by model,
and the platform's figures for admins, all summed by the database from the stored entries.

Sums are of plain `Credits` columns (exact: NUMERIC on PostgreSQL, integer micro-credits on
SQLite); days are UTC days.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from keen.billing.access import require_access, require_admin
from keen.billing.money import ZERO
from keen.billing.records import Entry
from keen.billing.tables import ACCOUNTS, ENTRIES, PAYMENTS

T, A, P = ENTRIES.c, ACCOUNTS.c, PAYMENTS.c
ENTRY_TYPES = ("purchase", "usage", "refund", "adjustment", "admin_bypass")
MAX_PAGE = 100


@dataclass(frozen=True)
class Period:
    """[start, end) in UTC; either end may be open."""

    start: datetime | None = None
    end: datetime | None = None

    def where(self) -> list[ColumnElement[bool]]:
        conditions = []
        if self.start is not None:
            conditions.append(T.created_at >= self.start)
        if self.end is not None:
            conditions.append(T.created_at < self.end)
        return conditions


@dataclass(frozen=True)
class Page:
    entries: list[Entry]
    total: int
    limit: int
    offset: int


async def entries(
    session: AsyncSession,
    user_id: str,
    *,
    types: Sequence[str] = (),
    period: Period = Period(),
    limit: int = 50,
    offset: int = 0,
) -> Page:
    """The user's entries, newest first."""
    require_access(session, user_id)
    conditions = [T.user_id == user_id, *period.where()]
    if types:
        conditions.append(T.type.in_(types))
    total = (await session.execute(select(func.count()).select_from(ENTRIES).where(*conditions))).scalar_one()
    rows = await session.execute(
        select(ENTRIES).where(*conditions).order_by(T.id.desc()).limit(limit).offset(offset)
    )
    return Page([Entry.of(row) for row in rows], int(total), limit, offset)


@dataclass(frozen=True)
class Spend:
    """Credits spent on model calls (what their usage entries took) and the calls counted."""

    key: str
    spent: Decimal
    provider_cost: Decimal
    calls: int


@dataclass(frozen=True)
class UserAnalytics:
    spent: Decimal
    purchased: Decimal
    refunded: Decimal
    calls: int
    by_day: list[Spend]
    by_model: list[Spend]


def day_of(session: AsyncSession) -> ColumnElement[str]:
    """An entry's UTC day as YYYY-MM-DD (SQLite stores UTC timestamps as text)."""
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", T.created_at), "YYYY-MM-DD")
    return func.substr(T.created_at, 1, 10)


async def _spend(session: AsyncSession, conditions: list[ColumnElement[bool]], key: Any) -> list[Spend]:
    query: Select[Any] = (
        select(key.label("key"), func.sum(T.amount), func.sum(T.provider_cost), func.count())
        .where(*conditions, T.type == "usage")
        .group_by(key)
        .order_by(key)
    )
    return [
        Spend(str(k) if k is not None else "unknown", -(amount or ZERO), cost or ZERO, int(calls))
        for k, amount, cost, calls in await session.execute(query)
    ]


async def _sum(session: AsyncSession, column: Any, conditions: list[ColumnElement[bool]]) -> Decimal:
    value = (await session.execute(select(func.sum(column)).where(*conditions))).scalar()
    return value if value is not None else ZERO


async def user_analytics(session: AsyncSession, user_id: str, period: Period) -> UserAnalytics:
    require_access(session, user_id)
    mine = [T.user_id == user_id, *period.where()]
    by_day = await _spend(session, mine, day_of(session))
    by_model = await _spend(session, mine, T.model)
    return UserAnalytics(
        spent=sum((s.spent for s in by_day), ZERO),
        purchased=await _sum(session, T.amount, [*mine, T.type == "purchase"]),
        refunded=await _sum(session, T.amount, [*mine, T.type == "refund"]),
        calls=sum(s.calls for s in by_day),
        by_day=by_day,
        by_model=by_model,
    )


@dataclass(frozen=True)
class PlatformAnalytics:
    """What the platform took and paid. `revenue`: credits bought (1 credit = 1 USD);
    `spend`: credits charged for model calls; `provider_cost`: what those calls cost keen in USD;
    `markup_earned` = spend − provider cost; `unbilled`: call cost above holds, not charged;
    `admin_bypass`: what admins' calls would have cost."""

    revenue: Decimal
    spend: Decimal
    provider_cost: Decimal
    markup_earned: Decimal
    unbilled: Decimal
    refunds: Decimal
    adjustments: Decimal
    admin_bypass: Decimal
    admin_provider_cost: Decimal
    payments_succeeded: int
    payments_failed: int
    accounts: int
    outstanding_balance: Decimal
    held: Decimal
    by_day: list[Spend] = field(default_factory=list)
    revenue_by_day: dict[str, Decimal] = field(default_factory=dict)


async def platform_analytics(session: AsyncSession, period: Period) -> PlatformAnalytics:
    require_admin(session)
    within = period.where()
    usage = [*within, T.type == "usage"]
    bypass = [*within, T.type == "admin_bypass"]
    spend = -await _sum(session, T.amount, usage)
    provider_cost = await _sum(session, T.provider_cost, usage)
    payment_period = [P.created_at >= period.start] if period.start else []
    payment_period += [P.created_at < period.end] if period.end else []
    payment_counts: dict[str, int] = dict(
        (
            await session.execute(select(P.status, func.count()).where(*payment_period).group_by(P.status))
        ).all()
    )
    day = day_of(session)
    revenue_rows = await session.execute(
        select(day, func.sum(T.amount)).where(*within, T.type == "purchase").group_by(day).order_by(day)
    )
    accounts = (await session.execute(select(func.count()).select_from(ACCOUNTS))).scalar_one()
    return PlatformAnalytics(
        revenue=await _sum(session, T.amount, [*within, T.type == "purchase"]),
        spend=spend,
        provider_cost=provider_cost,
        markup_earned=spend - provider_cost,
        unbilled=await _sum(session, T.unbilled, usage),
        refunds=await _sum(session, T.amount, [*within, T.type == "refund"]),
        adjustments=await _sum(session, T.amount, [*within, T.type == "adjustment"]),
        admin_bypass=await _sum(session, T.unbilled, bypass),
        admin_provider_cost=await _sum(session, T.provider_cost, bypass),
        payments_succeeded=int(payment_counts.get("succeeded", 0)),
        payments_failed=int(payment_counts.get("failed", 0)),
        accounts=int(accounts),
        outstanding_balance=await _sum(session, A.balance, []),
        held=await _sum(session, A.held, []),
        by_day=await _spend(session, list(within), day),
        revenue_by_day={str(d): amount for d, amount in revenue_rows},
    )
