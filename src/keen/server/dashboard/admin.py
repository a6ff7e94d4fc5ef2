"""The admin pages: users (suspend, role, grant credits), analytics from the database's own
figures, and the audit log with the chain's verify status. Anyone but an admin gets the 404
page: nothing of these pages is rendered for them."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from keen.audit.review import AuditFilter, AuditReview, Reviewer
from keen.auth import AdminUsers, Principal, UserChange, UserFilter
from keen.billing.money import parse_credits
from keen.errors import KeenError, NotFoundError
from keen.server.dashboard.credits import ledger_of
from keen.server.dashboard.render import error_page, form, not_found, page, redirect
from keen.server.dashboard.session import browser_principal
from keen.server.dashboard.units import acting, origin_of
from keen.server.deps import get_auth_policy
from keen.store.models import AuditLogRow, CreditTransactionRow, SessionRow, UserRow

router = APIRouter(prefix="/admin", include_in_schema=False)
UserId = Annotated[str, Path(min_length=1, max_length=64)]
AUDIT_PAGE = 100
STATUSES = ("active", "suspended", "banned")
ROLES = ("user", "admin", "super_admin")


class NotAnAdmin(Exception):
    """The page is for admins: anyone else gets the 404 page."""


async def admin_principal(request: Request) -> Principal:
    me = await browser_principal(request)
    if not me.is_admin:
        request.state.dashboard_user = me
        raise NotAnAdmin
    return me


Admin = Annotated[Principal, Depends(admin_principal)]


async def not_an_admin(request: Request, exc: Exception) -> Response:
    return not_found(request, getattr(request.state, "dashboard_user", None))


def reviewer(me: Principal) -> Reviewer:
    return Reviewer(actor=me.actor, user_id=me.user_id)


@router.get("/users")
async def users_page(request: Request, me: Admin) -> Response:
    async with acting(request, me) as session:
        users = AdminUsers(session, get_auth_policy(request))
        rows, total = await users.search(me, UserFilter(limit=100, offset=0), origin_of(request))
        people = list(rows)
    return page(
        request,
        "admin_users.html",
        me,
        users=people,
        total=total,
        statuses=STATUSES,
        roles=ROLES,
    )


@router.post("/users/{user_id}")
async def change_user(request: Request, me: Admin, user_id: UserId) -> Response:
    fields = await form(request)
    status = fields.get("status") or None
    role = fields.get("role") or None
    if (status is not None and status not in STATUSES) or (role is not None and role not in ROLES):
        return error_page(request, me, "choose a status and a role from the lists", 422)
    try:
        async with acting(request, me) as session:
            users = AdminUsers(session, get_auth_policy(request))
            await users.change(me, user_id, UserChange(status=status, role=role), origin_of(request))
    except NotFoundError:
        return not_found(request, me)
    except KeenError as exc:
        return error_page(request, me, str(exc), exc.http_status)
    return redirect("/admin/users")


@router.post("/users/{user_id}/grant")
async def grant(request: Request, me: Admin, user_id: UserId) -> Response:
    fields = await form(request)
    try:
        amount = parse_credits(fields.get("amount", ""), "a grant")
        async with acting(request, me) as session:
            await ledger_of(request, session, me).adjust(
                user_id, amount, reason=fields.get("reason") or "granted from the dashboard"
            )
    except KeenError as exc:
        return error_page(request, me, str(exc), exc.http_status)
    return redirect("/admin/users")


@router.get("/audit")
async def audit_page(request: Request, me: Admin) -> Response:
    async with acting(request, me) as session:
        review = AuditReview(session)
        report = await review.verify(reviewer(me), origin_of(request))
        last = (await session.execute(select(func.max(AuditLogRow.seq)))).scalar_one() or 0
        where = AuditFilter(after_seq=max(0, last - AUDIT_PAGE), limit=AUDIT_PAGE)
        entries = list(reversed(await review.entries(reviewer(me), where, origin_of(request))))
    return page(request, "admin_audit.html", me, report=report, message=report.describe(), entries=entries)


async def _count(session: AsyncSession, statement: Select[Any]) -> int:
    value = (await session.execute(statement)).scalar_one()
    return int(value or 0)


@router.get("/analytics")
async def analytics_page(request: Request, me: Admin) -> Response:
    async with acting(request, me) as session:
        users = dict(
            (await session.execute(select(UserRow.status, func.count()).group_by(UserRow.status))).all()
        )
        roots = select(SessionRow.status, func.count()).where(SessionRow.parent_id.is_(None))
        sessions = dict((await session.execute(roots.group_by(SessionRow.status))).all())
        agents = await _count(session, select(func.count()).select_from(SessionRow))
        sums = dict(
            (
                await session.execute(
                    select(CreditTransactionRow.type, func.sum(CreditTransactionRow.amount)).group_by(
                        CreditTransactionRow.type
                    )
                )
            ).all()
        )
        costs = (
            await session.execute(
                select(func.sum(CreditTransactionRow.provider_cost)).where(
                    CreditTransactionRow.type == "usage"
                )
            )
        ).scalar_one()
    figures = {
        "users": {s: int(users.get(s, 0)) for s in STATUSES},
        "sessions": {s: int(n) for s, n in sorted(sessions.items())},
        "agents": agents,
        "credits_purchased": Decimal(sums.get("purchase") or 0),
        "credits_used": -Decimal(sums.get("usage") or 0),
        "credits_granted": Decimal(sums.get("adjustment") or 0),
        "provider_cost": Decimal(costs or 0),
    }
    return page(request, "admin_analytics.html", me, figures=figures)
