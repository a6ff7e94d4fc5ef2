"""Admin work on accounts: list, read, change status, role and privileges; each action audited.

Rules: nobody changes their own account here (no admin locks themself out or promotes
themself); roles, privileges and other admins' accounts are a super admin's to change; a
suspended or banned account's sign-ins end (a banned one's API keys too).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from keen.audit import AuditEntry, Origin, Risk, append
from keen.auth import signins
from keen.auth.accounts import check_privileges, get_user
from keen.auth.policy import AuthPolicy
from keen.auth.principal import Principal
from keen.auth.scopes import (
    ADMIN_AUDIT_READ,
    ADMIN_ROLES,
    ADMIN_SYSTEM_READ,
    ADMIN_USERS_READ,
    ROLES,
    STATUSES,
)
from keen.errors import InputError, PermissionDeniedError
from keen.store.models import UserRow

# What an account made admin holds unless its privileges are given: reading, not changing.
DEFAULT_ADMIN_PRIVILEGES = (ADMIN_USERS_READ, ADMIN_AUDIT_READ, ADMIN_SYSTEM_READ)
MAX_PAGE = 200


@dataclass(frozen=True)
class UserFilter:
    status: str | None = None
    role: str | None = None
    email_contains: str | None = None
    limit: int = 50
    offset: int = 0


@dataclass(frozen=True)
class UserChange:
    status: str | None = None
    role: str | None = None
    privileges: tuple[str, ...] | None = None


class AdminUsers:
    def __init__(self, session: AsyncSession, policy: AuthPolicy) -> None:
        self.session = session
        self.policy = policy

    async def search(
        self, admin: Principal, where: UserFilter, origin: Origin
    ) -> tuple[Sequence[UserRow], int]:
        if where.status is not None and where.status not in STATUSES:
            raise InputError(
                f"unknown status {where.status!r} (known: {', '.join(STATUSES)})", details={"field": "status"}
            )
        if where.role is not None and where.role not in ROLES:
            raise InputError(
                f"unknown role {where.role!r} (known: {', '.join(ROLES)})", details={"field": "role"}
            )
        if not 1 <= where.limit <= MAX_PAGE or where.offset < 0:
            raise InputError(
                f"limit is from 1 to {MAX_PAGE} and offset at least 0", details={"field": "limit"}
            )
        query = select(UserRow)
        if where.status is not None:
            query = query.where(UserRow.status == where.status)
        if where.role is not None:
            query = query.where(UserRow.role == where.role)
        if where.email_contains:
            pattern = (
                "%"
                + where.email_contains.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                + "%"
            )
            query = query.where(UserRow.email.like(pattern, escape="\\"))
        total = (await self.session.execute(select(func.count()).select_from(query.subquery()))).scalar_one()
        rows = (
            (
                await self.session.execute(
                    query.order_by(UserRow.created_at, UserRow.id).limit(where.limit).offset(where.offset)
                )
            )
            .scalars()
            .all()
        )
        await self._audit("admin.users.listed", Risk.LOW, admin, origin, None, {"returned": len(rows)})
        return rows, int(total)

    async def get(self, admin: Principal, user_id: str, origin: Origin) -> UserRow:
        user = await get_user(self.session, user_id)
        await self._audit("admin.user.viewed", Risk.LOW, admin, origin, user.id, {})
        return user

    async def change(self, admin: Principal, user_id: str, change: UserChange, origin: Origin) -> UserRow:
        user = await get_user(self.session, user_id)
        if user.id == admin.user_id:
            raise PermissionDeniedError("an admin cannot change their own status, role or privileges here")
        super_admin = admin.role == "super_admin"
        if not super_admin and (
            change.role is not None or change.privileges is not None or user.role in ADMIN_ROLES
        ):
            raise PermissionDeniedError("roles, privileges and admins' accounts are changed by a super admin")
        changes: dict[str, Any] = {}
        if change.status is not None and change.status != user.status:
            if change.status not in STATUSES:
                raise InputError(
                    f"unknown status {change.status!r} (known: {', '.join(STATUSES)})",
                    details={"field": "status"},
                )
            changes["status"] = [user.status, change.status]
            user.status = change.status
        role = change.role if change.role is not None else user.role
        if role not in ROLES:
            raise InputError(f"unknown role {role!r} (known: {', '.join(ROLES)})", details={"field": "role"})
        privileges = self._privileges(user, role, change.privileges)
        if role != user.role:
            changes["role"] = [user.role, role]
            user.role = role
        if privileges != list(user.privileges):
            changes["privileges"] = [list(user.privileges), privileges]
            user.privileges = privileges
        if not changes:
            return user
        user.updated_at = self.policy.now()
        if "status" in changes and user.status != "active":
            await signins.revoke_all(self.session, self.policy, user.id, keys_too=user.status == "banned")
        await self.session.flush()
        await self._audit("admin.user.changed", Risk.HIGH, admin, origin, user.id, {"changes": changes})
        return user

    @staticmethod
    def _privileges(user: UserRow, role: str, wanted: tuple[str, ...] | None) -> list[str]:
        if role != "admin":
            if wanted:
                raise InputError(
                    "only the admin role holds privileges (a super admin holds them all)",
                    details={"field": "privileges"},
                )
            return []
        if wanted is not None:
            return list(check_privileges(wanted))
        if user.role == "admin":
            return list(user.privileges)
        return list(DEFAULT_ADMIN_PRIVILEGES)

    async def _audit(
        self,
        action: str,
        risk: Risk,
        admin: Principal,
        origin: Origin,
        target: str | None,
        details: dict[str, Any],
    ) -> None:
        entry = AuditEntry(
            action,
            risk,
            admin.actor,
            user_id=admin.user_id,
            target=f"user:{target}" if target else None,
            details=details,
        )
        await append(self.session, entry, origin, now=self.policy.now())
