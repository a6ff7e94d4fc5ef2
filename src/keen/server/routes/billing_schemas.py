"""The bodies and answers of the credit routes. Amounts go both ways as decimal strings with up
to 6 places (`"12.5"`, `"-3.000001"`): JSON numbers are refused, so no amount is ever a float."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, Field, PlainSerializer

from keen.billing import Account, Entry, Payment
from keen.billing.estimate import Estimate
from keen.billing.money import exact
from keen.billing.reports import Page, PlatformAnalytics, Spend, UserAnalytics
from keen.server.schemas import StrictModel

AMOUNT_PATTERN = r"^-?[0-9]{1,7}(\.[0-9]{1,6})?$"
Credits = Annotated[Decimal, PlainSerializer(lambda value: format(exact(value), "f"), return_type=str)]
AmountIn = Annotated[
    str,
    Field(pattern=AMOUNT_PATTERN, description="Credits as a decimal string, up to 6 places", examples=["25"]),
]
EntryType = Literal["purchase", "usage", "refund", "adjustment", "admin_bypass"]


class Limits(BaseModel):
    daily: Credits
    monthly: Credits
    used_today: Credits = Field(description="Charged and held in this UTC day")
    used_this_month: Credits = Field(description="Charged and held in this UTC month")


class AutoRechargeOut(BaseModel):
    enabled: bool
    threshold: Credits
    amount: Credits
    monthly_cap: Credits
    used_this_month: Credits


class Balance(BaseModel):
    user_id: str
    balance: Credits
    held: Credits = Field(description="Reserved by open holds (model calls in flight)")
    available: Credits = Field(description="balance − held")
    lifetime_purchased: Credits
    lifetime_spent: Credits
    unlimited: bool = Field(description="An admin's account: never charged")
    limits: Limits
    auto_recharge: AutoRechargeOut

    @classmethod
    def of(cls, account: Account) -> Balance:
        return cls(
            user_id=account.user_id,
            balance=account.balance,
            held=account.held,
            available=account.available,
            lifetime_purchased=account.lifetime_purchased,
            lifetime_spent=account.lifetime_spent,
            unlimited=account.unlimited,
            limits=Limits(
                daily=account.daily_limit,
                monthly=account.monthly_limit,
                used_today=account.used_today,
                used_this_month=account.used_this_month,
            ),
            auto_recharge=AutoRechargeOut(**vars(account.auto_recharge)),
        )


class EntryOut(BaseModel):
    id: int
    type: str
    amount: Credits = Field(description="What it did to the balance (negative: taken)")
    balance_after: Credits
    provider_cost: Credits | None = Field(description="USD the provider charged for the call")
    markup: Credits | None
    unbilled: Credits | None = Field(description="Cost not taken: above the hold, or an admin's call")
    session_id: str | None
    hold_id: str | None
    payment_id: str | None
    refund_of: int | None
    model: str | None
    reason: str | None
    created_at: datetime

    @classmethod
    def of(cls, entry: Entry) -> EntryOut:
        fields = vars(entry).copy()
        del fields["user_id"], fields["actor"]
        return cls(**fields)


class EntryPage(BaseModel):
    items: list[EntryOut]
    total: int
    limit: int
    offset: int

    @classmethod
    def of(cls, page: Page) -> EntryPage:
        return cls(
            items=[EntryOut.of(e) for e in page.entries],
            total=page.total,
            limit=page.limit,
            offset=page.offset,
        )


class DaySpend(BaseModel):
    day: str
    spent: Credits
    calls: int


class ModelSpend(BaseModel):
    model: str
    spent: Credits
    calls: int


class Analytics(BaseModel):
    since: datetime
    until: datetime
    spent: Credits
    purchased: Credits
    refunded: Credits
    calls: int
    by_day: list[DaySpend]
    by_model: list[ModelSpend]

    @classmethod
    def of(cls, report: UserAnalytics, since: datetime, until: datetime) -> Analytics:
        return cls(
            since=since,
            until=until,
            spent=report.spent,
            purchased=report.purchased,
            refunded=report.refunded,
            calls=report.calls,
            by_day=[DaySpend(day=s.key, spent=s.spent, calls=s.calls) for s in report.by_day],
            by_model=[ModelSpend(model=s.key, spent=s.spent, calls=s.calls) for s in report.by_model],
        )


class PurchaseBody(StrictModel):
    amount: AmountIn


class PaymentOut(BaseModel):
    id: str
    status: str
    kind: str
    amount: Credits
    provider: str
    provider_ref: str | None
    error: str | None

    @classmethod
    def of(cls, payment: Payment) -> PaymentOut:
        return cls(
            id=payment.id,
            status=payment.status,
            kind=payment.kind,
            amount=payment.amount,
            provider=payment.provider,
            provider_ref=payment.provider_ref,
            error=payment.error,
        )


class PurchaseOut(BaseModel):
    payment: PaymentOut
    entry: EntryOut
    balance: Balance


class EstimateBody(StrictModel):
    vision: str = Field(min_length=1, max_length=100_000)
    model: str | None = Field(default=None, max_length=300, description="PROVIDER:NAME (default KEEN_MODEL)")
    max_iterations: int = Field(default=100, ge=1, le=10_000)


class EstimateOut(BaseModel):
    estimate: Literal[True] = Field(default=True, description="A range, not a quote")
    low: Credits
    high: Credits
    low_usd: Credits
    high_usd: Credits
    markup: Credits
    model: str
    max_iterations: int
    basis: str

    @classmethod
    def of(cls, found: Estimate) -> EstimateOut:
        return cls(**vars(found))


class AutoRechargeIn(StrictModel):
    enabled: bool | None = None
    threshold: AmountIn | None = None
    amount: AmountIn | None = None
    monthly_cap: AmountIn | None = None


class SettingsBody(StrictModel):
    daily_limit: AmountIn | None = None
    monthly_limit: AmountIn | None = None
    auto_recharge: AutoRechargeIn | None = None


class AdjustmentBody(StrictModel):
    amount: AmountIn = Field(description="Signed: positive grants credits, negative takes them back")
    reason: str = Field(min_length=1, max_length=500)


class AdjustmentOut(BaseModel):
    entry: EntryOut
    balance: Balance


class PlatformDay(BaseModel):
    day: str
    spend: Credits
    provider_cost: Credits
    calls: int
    revenue: Credits


class PlatformOut(BaseModel):
    since: datetime | None
    until: datetime | None
    revenue: Credits = Field(description="Credits bought (1 credit = 1 USD)")
    spend: Credits = Field(description="Credits charged for model calls")
    provider_cost: Credits = Field(description="USD those calls cost at the providers")
    markup_earned: Credits = Field(description="spend − provider cost")
    unbilled: Credits
    refunds: Credits
    adjustments: Credits
    admin_bypass: Credits = Field(description="What admins' calls would have cost")
    admin_provider_cost: Credits
    payments_succeeded: int
    payments_failed: int
    accounts: int
    outstanding_balance: Credits
    held: Credits
    by_day: list[PlatformDay]

    @classmethod
    def of(cls, report: PlatformAnalytics, since: datetime | None, until: datetime | None) -> PlatformOut:
        spend_by_day: dict[str, Spend] = {s.key: s for s in report.by_day}
        days = sorted(set(spend_by_day) | set(report.revenue_by_day))
        zero = Decimal(0)
        by_day = [
            PlatformDay(
                day=day,
                spend=spend_by_day[day].spent if day in spend_by_day else zero,
                provider_cost=spend_by_day[day].provider_cost if day in spend_by_day else zero,
                calls=spend_by_day[day].calls if day in spend_by_day else 0,
                revenue=report.revenue_by_day.get(day, zero),
            )
            for day in days
        ]
        fields = {k: v for k, v in vars(report).items() if k not in ("by_day", "revenue_by_day")}
        return cls(since=since, until=until, by_day=by_day, **fields)
