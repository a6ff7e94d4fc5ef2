"""`/api/v1/admin`'s credit routes: an account's credits, an adjustment with its reason, and the
platform's revenue, spend and markup (SPEC 8.5). Admins only; every action, reads included, is
audited (the adjustment by the ledger, in its transaction)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, status
from pydantic import AwareDatetime

from keen.audit import AuditEntry, Risk, append
from keen.auth import Principal
from keen.auth.scopes import ADMIN_SYSTEM_READ, ADMIN_USERS_READ, ADMIN_USERS_WRITE
from keen.billing.money import parse_credits
from keen.billing.reports import Period, platform_analytics
from keen.server.deps import DbSession, OriginDep, SettingsDep, require_admin, require_scope
from keen.server.idempotent import IdempotencyKey, respond_once
from keen.server.routes.billing_schemas import AdjustmentBody, AdjustmentOut, Balance, EntryOut, PlatformOut
from keen.server.routes.credits import ledger_for

router = APIRouter(prefix="/api/v1/admin", tags=["admin"], dependencies=[Depends(require_admin)])
UsersReader = Annotated[Principal, Depends(require_scope(ADMIN_USERS_READ))]
UsersWriter = Annotated[Principal, Depends(require_scope(ADMIN_USERS_WRITE))]
SystemReader = Annotated[Principal, Depends(require_scope(ADMIN_SYSTEM_READ))]
UserId = Annotated[str, Path(min_length=1, max_length=64)]


@router.get("/users/{user_id}/credits", response_model=Balance)
async def user_credits(
    user_id: UserId, me: UsersReader, session: DbSession, settings: SettingsDep, origin: OriginDep
) -> Balance:
    account = await ledger_for(session, settings, me, origin).account(user_id)
    entry = AuditEntry("admin.credits.viewed", Risk.LOW, me.actor, user_id=me.user_id, target=user_id)
    await append(session, entry, origin)
    return Balance.of(account)


@router.post("/users/{user_id}/credits", status_code=status.HTTP_201_CREATED, response_model=AdjustmentOut)
async def adjust_credits(
    user_id: UserId,
    body: AdjustmentBody,
    request: Request,
    me: UsersWriter,
    session: DbSession,
    settings: SettingsDep,
    origin: OriginDep,
    idempotency_key: IdempotencyKey = None,
) -> Any:
    amount = parse_credits(body.amount, "amount", allow_negative=True)
    ledger = ledger_for(session, settings, me, origin)

    async def adjust() -> tuple[int, Any]:
        entry = await ledger.adjust(user_id, amount, reason=body.reason)
        answer = AdjustmentOut(entry=EntryOut.of(entry), balance=Balance.of(await ledger.account(user_id)))
        return 201, answer.model_dump(mode="json")

    return await respond_once(
        session, me.user_id, idempotency_key, request, body.model_dump(mode="json"), adjust
    )


@router.get("/analytics", response_model=PlatformOut)
async def analytics(
    me: SystemReader,
    session: DbSession,
    origin: OriginDep,
    since: AwareDatetime | None = None,
    until: AwareDatetime | None = None,
) -> PlatformOut:
    report = await platform_analytics(session, Period(start=since, end=until))
    await append(
        session, AuditEntry("admin.analytics.viewed", Risk.LOW, me.actor, user_id=me.user_id), origin
    )
    return PlatformOut.of(report, since, until)
