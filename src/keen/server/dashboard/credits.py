"""The credits page: balance, transactions, a purchase through the configured payment provider,
limits and auto-recharge settings, and the spend of each of the last days as a bar chart (drawn
as SVG on the server: no script needed)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from keen.auth import Principal
from keen.billing import Ledger, LedgerConfig
from keen.billing.money import parse_credits
from keen.billing.payments import provider_for
from keen.billing.records import SettingsChange
from keen.errors import KeenError
from keen.server.dashboard.render import form, page, redirect
from keen.server.dashboard.session import browser_principal
from keen.server.dashboard.units import acting, origin_of
from keen.store.models import CreditTransactionRow

router = APIRouter(include_in_schema=False)
Browser = Annotated[Principal, Depends(browser_principal)]
CHART_DAYS = 14
TRANSACTIONS = 50


@dataclass(frozen=True)
class Bar:
    day: date
    spent: Decimal
    x: float
    height: float


def ledger_of(request: Request, session: AsyncSession, me: Principal) -> Ledger:
    config = LedgerConfig.from_settings(request.app.state.settings)
    return Ledger(session, config, actor=me.actor, origin=origin_of(request))


def spend_chart(rows: list[Any], today: date, days: int = CHART_DAYS) -> list[Bar]:
    """The credits usage took on each of the last `days` days (today last), as bars."""
    spent = {today - timedelta(days=n): Decimal(0) for n in range(days)}
    for row in rows:
        day = row.created_at.astimezone(UTC).date()
        if row.type == "usage" and day in spent:
            spent[day] += -row.amount
    top = max(spent.values(), default=Decimal(0)) or Decimal(1)
    ordered = sorted(spent.items())
    return [
        Bar(day, value, i * 100 / days, float(value / top) * 100) for i, (day, value) in enumerate(ordered)
    ]


async def credits_view(
    request: Request, me: Principal, error: str | None = None, status: int = 200
) -> Response:
    async with acting(request, me) as session:
        account = await ledger_of(request, session, me).account(me.user_id)
        since = datetime.now(UTC) - timedelta(days=CHART_DAYS)
        recent = (
            await session.execute(
                select(CreditTransactionRow)
                .where(CreditTransactionRow.user_id == me.user_id)
                .order_by(CreditTransactionRow.id.desc())
                .limit(TRANSACTIONS)
            )
        ).scalars()
        transactions = list(recent)
        usage = (
            await session.execute(
                select(CreditTransactionRow).where(
                    CreditTransactionRow.user_id == me.user_id,
                    CreditTransactionRow.type == "usage",
                    CreditTransactionRow.created_at >= since,
                )
            )
        ).scalars()
        chart = spend_chart(list(usage), datetime.now(UTC).date())
    return page(
        request,
        "credits.html",
        me,
        account=account,
        transactions=transactions,
        chart=chart,
        purchase_key=secrets.token_urlsafe(16),
        error=error,
        status_code=status,
    )


@router.get("/credits")
async def credits_page(request: Request, me: Browser) -> Response:
    return await credits_view(request, me)


@router.post("/credits/purchase")
async def purchase(request: Request, me: Browser) -> Response:
    fields = await form(request)
    try:
        amount = parse_credits(fields.get("amount", ""), "a purchase")
        key = f"dashboard:{me.user_id}:{fields.get('key', '')[:64]}"
        async with acting(request, me) as session:
            provider = provider_for(request.app.state.settings)
            done = await ledger_of(request, session, me).purchase(
                me.user_id, amount, provider=provider, request_key=key
            )
    except KeenError as exc:
        return await credits_view(request, me, str(exc), exc.http_status)
    if done.entry is None:
        return await credits_view(request, me, "the payment failed: nothing was charged", 402)
    return redirect("/credits")


def _amount(fields: dict[str, str], name: str, what: str) -> Decimal | None:
    value = fields.get(name, "").strip()
    return parse_credits(value, what) if value else None


@router.post("/credits/settings")
async def change_settings(request: Request, me: Browser) -> Response:
    fields = await form(request)
    try:
        change = SettingsChange(
            daily_limit=_amount(fields, "daily_limit", "the daily limit"),
            monthly_limit=_amount(fields, "monthly_limit", "the monthly limit"),
            auto_recharge_enabled=fields.get("auto_recharge") == "on",
            auto_recharge_threshold=_amount(fields, "threshold", "the auto-recharge threshold"),
            auto_recharge_amount=_amount(fields, "recharge_amount", "the auto-recharge amount"),
            auto_recharge_monthly_cap=_amount(fields, "monthly_cap", "the auto-recharge monthly cap"),
        )
        async with acting(request, me) as session:
            await ledger_of(request, session, me).update_settings(me.user_id, change)
    except KeenError as exc:
        return await credits_view(request, me, str(exc), exc.http_status)
    return redirect("/credits")
