"""`/api/v1/admin`: accounts, the audit log and the system's health, for admins only (SPEC 8.5).

Every route needs an admin account acting with the admin scope it names; every admin action,
reads included, is audited.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlalchemy import func, select

from keen.audit import AuditEntry, Risk, append
from keen.audit.review import MAX_PAGE as MAX_AUDIT_PAGE
from keen.audit.review import AuditFilter, AuditReview, Reviewer
from keen.auth import AdminUsers, Principal, UserChange, UserFilter
from keen.auth.admin import MAX_PAGE as MAX_USER_PAGE
from keen.auth.scopes import ADMIN_AUDIT_READ, ADMIN_SYSTEM_READ, ADMIN_USERS_READ, ADMIN_USERS_WRITE
from keen.server.deps import (
    AuthPolicyDep,
    DatabaseDep,
    DbSession,
    OriginDep,
    SettingsDep,
    require_admin,
    require_scope,
)
from keen.server.ratelimit import limiter_of
from keen.server.routes.auth import Profile
from keen.server.routes.health import Check, run_checks
from keen.server.schemas import StrictModel
from keen.store.models import AuditLogRow, UserRow

router = APIRouter(prefix="/api/v1/admin", tags=["admin"], dependencies=[Depends(require_admin)])
UsersReader = Annotated[Principal, Depends(require_scope(ADMIN_USERS_READ))]
UsersWriter = Annotated[Principal, Depends(require_scope(ADMIN_USERS_WRITE))]
AuditReader = Annotated[Principal, Depends(require_scope(ADMIN_AUDIT_READ))]
SystemReader = Annotated[Principal, Depends(require_scope(ADMIN_SYSTEM_READ))]
UserId = Annotated[str, Path(min_length=1, max_length=64)]
Status = Literal["active", "suspended", "banned"]
Role = Literal["user", "admin", "super_admin"]


class UserPage(BaseModel):
    items: list[Profile]
    total: int
    limit: int
    offset: int


class UserPatch(StrictModel):
    status: Status | None = None
    role: Role | None = None
    privileges: list[str] | None = Field(default=None, max_length=20)


class AuditLogEntry(BaseModel):
    seq: int
    ts: datetime
    action: str
    risk: str
    user_id: str | None
    actor: str
    ip: str | None
    request_id: str | None
    target: str | None
    details: dict[str, object]
    prev_hash: str
    hash: str

    model_config = ConfigDict(from_attributes=True)

    @classmethod
    def of(cls, row: AuditLogRow) -> AuditLogEntry:
        return cls.model_validate(row)


class AuditPage(BaseModel):
    items: list[AuditLogEntry]
    next_after_seq: int | None = Field(description="Pass as after_seq for the next page; null at the end")


class ChainStatus(BaseModel):
    intact: bool
    entries: int
    first_bad: int | None = Field(description="The first entry edited, removed or reordered")
    message: str


class SystemHealth(BaseModel):
    checks: dict[str, Check]
    users: dict[str, int] = Field(description="Accounts by status")
    audit_entries: int


def _reviewer(me: Principal) -> Reviewer:
    return Reviewer(actor=me.actor, user_id=me.user_id)


@router.get("/users", response_model=UserPage)
async def list_users(
    me: UsersReader,
    session: DbSession,
    policy: AuthPolicyDep,
    origin: OriginDep,
    status: Status | None = None,
    role: Role | None = None,
    email: Annotated[str | None, Query(max_length=320, description="Part of the email")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_USER_PAGE)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> UserPage:
    where = UserFilter(status=status, role=role, email_contains=email, limit=limit, offset=offset)
    rows, total = await AdminUsers(session, policy).search(me, where, origin)
    return UserPage(items=[Profile.of(u) for u in rows], total=total, limit=limit, offset=offset)


@router.get("/users/{user_id}", response_model=Profile)
async def get_user(
    user_id: UserId, me: UsersReader, session: DbSession, policy: AuthPolicyDep, origin: OriginDep
) -> Profile:
    return Profile.of(await AdminUsers(session, policy).get(me, user_id, origin))


@router.patch("/users/{user_id}", response_model=Profile)
async def change_user(
    user_id: UserId,
    body: UserPatch,
    me: UsersWriter,
    session: DbSession,
    policy: AuthPolicyDep,
    origin: OriginDep,
) -> Profile:
    change = UserChange(
        status=body.status,
        role=body.role,
        privileges=tuple(body.privileges) if body.privileges is not None else None,
    )
    return Profile.of(await AdminUsers(session, policy).change(me, user_id, change, origin))


@router.get("/audit-logs", response_model=AuditPage)
async def audit_logs(
    me: AuditReader,
    session: DbSession,
    origin: OriginDep,
    user_id: Annotated[str | None, Query(max_length=64)] = None,
    action: Annotated[
        str | None, Query(max_length=64, description="Exact, or a prefix ending in `.`")
    ] = None,
    risk: Risk | None = None,
    since: AwareDatetime | None = None,
    until: AwareDatetime | None = None,
    after_seq: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_AUDIT_PAGE)] = 100,
) -> AuditPage:
    where = AuditFilter(
        user_id=user_id, action=action, risk=risk, since=since, until=until, after_seq=after_seq, limit=limit
    )
    rows = await AuditReview(session).entries(_reviewer(me), where, origin)
    next_after = rows[-1].seq if len(rows) == limit else None
    return AuditPage(items=[AuditLogEntry.of(r) for r in rows], next_after_seq=next_after)


@router.get("/audit-logs/verify", response_model=ChainStatus)
async def verify_audit_logs(me: AuditReader, session: DbSession, origin: OriginDep) -> ChainStatus:
    report = await AuditReview(session).verify(_reviewer(me), origin)
    return ChainStatus(
        intact=report.intact, entries=report.entries, first_bad=report.first_bad, message=report.describe()
    )


@router.get("/system/health", response_model=SystemHealth)
async def system_health(
    request: Request,
    me: SystemReader,
    session: DbSession,
    settings: SettingsDep,
    db: DatabaseDep,
    origin: OriginDep,
) -> SystemHealth:
    checks = await run_checks(settings, db, limiter_of(request))
    rows = (await session.execute(select(UserRow.status, func.count()).group_by(UserRow.status))).all()
    by_status = {status: int(count) for status, count in rows}
    entries = (await session.execute(select(func.count()).select_from(AuditLogRow))).scalar_one()
    await append(session, AuditEntry("admin.system.viewed", Risk.LOW, me.actor, user_id=me.user_id), origin)
    return SystemHealth(
        checks=checks,
        users={s: by_status.get(s, 0) for s in ("active", "suspended", "banned")},
        audit_entries=entries,
    )
