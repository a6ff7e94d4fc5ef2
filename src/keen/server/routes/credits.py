"""`/api/v1/credits`: the caller's balance, entries, spending, purchases, estimates and settings
(SPEC 8.5). Each route reads or moves only the caller's own credits; the purchase takes an
`Idempotency-Key`. The credits router also runs the hold sweeper while the app runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request, status
from pydantic import AwareDatetime

from keen.auth import Principal
from keen.auth.scopes import ACCOUNT_MANAGE, CREDITS_READ
from keen.billing import Ledger, LedgerConfig, PaymentProvider, SettingsChange, provider_for
from keen.billing.estimate import estimate
from keen.billing.money import parse_credits
from keen.billing.reports import MAX_PAGE, Period, entries, user_analytics
from keen.billing.sweeper import run_periodically
from keen.server.deps import DbSession, OriginDep, SettingsDep, require_scope
from keen.server.errors import error_type, request_id_of
from keen.server.idempotent import IdempotencyKey, respond_once
from keen.server.routes.billing_schemas import (
    Analytics,
    Balance,
    EntryOut,
    EntryPage,
    EntryType,
    EstimateBody,
    EstimateOut,
    PaymentOut,
    PurchaseBody,
    PurchaseOut,
    SettingsBody,
)
from keen.server.schemas import ErrorBody, ErrorEnvelope

ANALYTICS_DAYS = 30
CreditsReader = Annotated[Principal, Depends(require_scope(CREDITS_READ))]
# Moving money and changing limits: a sign-in's scope, never an API key's.
AccountManager = Annotated[Principal, Depends(require_scope(ACCOUNT_MANAGE))]


@contextlib.asynccontextmanager
async def sweeping(app: FastAPI) -> AsyncIterator[None]:
    """While the app runs, expire stale holds every KEEN_HOLD_SWEEP_INTERVAL_SECONDS."""
    settings = app.state.settings
    task = asyncio.create_task(
        run_periodically(
            app.state.db,
            LedgerConfig.from_settings(settings),
            payment_provider_of(app),
            settings.keen_hold_sweep_interval_seconds,
        )
    )
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


router = APIRouter(prefix="/api/v1/credits", tags=["credits"], lifespan=sweeping)


def payment_provider_of(app: FastAPI) -> PaymentProvider:
    """The app's payment provider (KEEN_PAYMENT_PROVIDER), made once."""
    provider: PaymentProvider | None = getattr(app.state, "payment_provider", None)
    if provider is None:
        provider = provider_for(app.state.settings)
        app.state.payment_provider = provider
    return provider


def ledger_for(session: DbSession, settings: SettingsDep, me: Principal, origin: OriginDep) -> Ledger:
    return Ledger(session, LedgerConfig.from_settings(settings), actor=me.actor, origin=origin)


def period(since: datetime | None, until: datetime | None) -> Period:
    return Period(start=since, end=until)


@router.get("/balance", response_model=Balance)
async def balance(me: CreditsReader, session: DbSession, settings: SettingsDep, origin: OriginDep) -> Balance:
    return Balance.of(await ledger_for(session, settings, me, origin).account(me.user_id))


@router.get("/transactions", response_model=EntryPage)
async def transactions(
    me: CreditsReader,
    session: DbSession,
    type: Annotated[list[EntryType], Query(description="Only entries of these types")] = [],  # noqa: B006
    since: AwareDatetime | None = None,
    until: AwareDatetime | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> EntryPage:
    page = await entries(
        session, me.user_id, types=type, period=period(since, until), limit=limit, offset=offset
    )
    return EntryPage.of(page)


@router.get("/analytics", response_model=Analytics)
async def analytics(
    me: CreditsReader,
    session: DbSession,
    since: Annotated[AwareDatetime | None, Query(description=f"Default: {ANALYTICS_DAYS} days ago")] = None,
    until: AwareDatetime | None = None,
) -> Analytics:
    end = until or datetime.now(UTC)
    start = since or end - timedelta(days=ANALYTICS_DAYS)
    return Analytics.of(await user_analytics(session, me.user_id, period(start, end)), start, end)


@router.post(
    "/purchase",
    status_code=status.HTTP_201_CREATED,
    response_model=PurchaseOut,
    responses={402: {"model": ErrorEnvelope, "description": "The payment failed (nothing credited)"}},
)
async def purchase(
    body: PurchaseBody,
    request: Request,
    me: AccountManager,
    session: DbSession,
    settings: SettingsDep,
    origin: OriginDep,
    idempotency_key: IdempotencyKey = None,
) -> Any:
    amount = parse_credits(body.amount, "amount")
    ledger = ledger_for(session, settings, me, origin)
    provider = payment_provider_of(request.app)
    # Keyed purchases ask the provider under the caller's key (a retry is the same payment).
    request_key = f"purchase:{me.user_id}:{idempotency_key}" if idempotency_key else None

    async def buy() -> tuple[int, Any]:
        bought = await ledger.purchase(
            me.user_id, amount, provider=provider, request_key=request_key or f"purchase:{uuid.uuid4().hex}"
        )
        if bought.entry is None:  # failed: recorded and audited, so committed, and answered 402
            failure = ErrorEnvelope(
                error=ErrorBody(
                    type=error_type(402),
                    code="payment_failed",
                    message=f"the payment was not made: {bought.payment.error}",
                    details={"payment_id": bought.payment.id},
                ),
                request_id=request_id_of(request),
            )
            return 402, failure.model_dump(mode="json", exclude_none=True)
        account = await ledger.account(me.user_id)
        answer = PurchaseOut(
            payment=PaymentOut.of(bought.payment),
            entry=EntryOut.of(bought.entry),
            balance=Balance.of(account),
        )
        return 201, answer.model_dump(mode="json")

    return await respond_once(
        session, me.user_id, idempotency_key, request, body.model_dump(mode="json"), buy
    )


@router.post("/estimate", response_model=EstimateOut)
async def estimate_vision(body: EstimateBody, me: CreditsReader, settings: SettingsDep) -> EstimateOut:
    model = body.model or settings.keen_model
    return EstimateOut.of(estimate(body.vision, model, body.max_iterations, settings.keen_credit_markup))


@router.patch("/settings", response_model=Balance)
async def change_settings(
    body: SettingsBody, me: AccountManager, session: DbSession, settings: SettingsDep, origin: OriginDep
) -> Balance:
    recharge = body.auto_recharge
    change = SettingsChange(
        daily_limit=_credits(body.daily_limit, "daily_limit"),
        monthly_limit=_credits(body.monthly_limit, "monthly_limit"),
        auto_recharge_enabled=recharge.enabled if recharge else None,
        auto_recharge_threshold=_credits(recharge.threshold if recharge else None, "auto_recharge.threshold"),
        auto_recharge_amount=_credits(recharge.amount if recharge else None, "auto_recharge.amount"),
        auto_recharge_monthly_cap=_credits(
            recharge.monthly_cap if recharge else None, "auto_recharge.monthly_cap"
        ),
    )
    return Balance.of(await ledger_for(session, settings, me, origin).update_settings(me.user_id, change))


def _credits(value: str | None, what: str) -> Decimal | None:
    return None if value is None else parse_credits(value, what)
