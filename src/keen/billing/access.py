"""Whose credits a session may see and move, in one place: a user its own, an admin anyone's.
The session's acting user (keen.store.db.set_acting_user) says who acts; on PostgreSQL, row-level
security checks the same thing again in the database."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from keen.errors import PermissionDeniedError
from keen.store.db import acting_user


def require_access(session: AsyncSession, user_id: str) -> None:
    actor = acting_user(session)
    if actor is None:
        raise PermissionDeniedError("credits need an acting user (set_acting_user)")
    if not actor.is_admin and actor.user_id != user_id:
        raise PermissionDeniedError("an account's credits are its owner's (or an admin's)")


def require_admin(session: AsyncSession) -> None:
    actor = acting_user(session)
    if actor is None or not actor.is_admin:
        raise PermissionDeniedError("only an admin may do this to credits")
