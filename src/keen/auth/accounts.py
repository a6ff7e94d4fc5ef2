"""Accounts: creating one (registration, the CLI, the first admin) and reading profiles."""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from keen.audit import AuditEntry, Origin, Risk, append
from keen.auth.passwords import Passwords, check_password_rules
from keen.auth.policy import utcnow
from keen.auth.scopes import ADMIN_ROLES, ADMIN_SCOPES, ROLES
from keen.errors import ConflictError, InputError, NotFoundError
from keen.store.models import UserRow

MAX_EMAIL = 320
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
_USERNAME = re.compile(r"^[A-Za-z0-9_.-]{3,64}$")
MAX_DISPLAY_NAME = 200


@dataclass(frozen=True)
class NewUser:
    email: str
    password: str
    username: str | None = None
    display_name: str | None = None
    role: str = "user"
    privileges: tuple[str, ...] = ()


def normalise_email(email: str) -> str:
    """The form emails are stored and looked up in (so `A@x.io` and `a@x.io` are one account)."""
    return email.strip().lower()


def check_email(email: str) -> str:
    normalised = normalise_email(email)
    if len(normalised) > MAX_EMAIL or not _EMAIL.match(normalised):
        raise InputError(f"not a valid email address: {email!r}", details={"field": "email"})
    return normalised


def check_privileges(privileges: Iterable[str]) -> tuple[str, ...]:
    held = tuple(dict.fromkeys(privileges))
    unknown = [p for p in held if p not in ADMIN_SCOPES]
    if unknown:
        raise InputError(
            f"unknown privileges: {', '.join(unknown)} (known: {', '.join(ADMIN_SCOPES)})",
            details={"field": "privileges"},
        )
    return held


async def create_user(
    session: AsyncSession, passwords: Passwords, new: NewUser, *, actor: str, origin: Origin
) -> UserRow:
    """Create an account (checked, hashed, audited in the caller's transaction)."""
    email = check_email(new.email)
    check_password_rules(new.password)
    if new.role not in ROLES:
        raise InputError(f"unknown role {new.role!r} (known: {', '.join(ROLES)})", details={"field": "role"})
    privileges = check_privileges(new.privileges)
    if privileges and new.role not in ADMIN_ROLES:
        raise InputError("only admins hold privileges", details={"field": "privileges"})
    display_name = (new.display_name or "").strip() or email.split("@")[0]
    if len(display_name) > MAX_DISPLAY_NAME:
        raise InputError(
            f"the display name is longer than {MAX_DISPLAY_NAME} characters",
            details={"field": "display_name"},
        )
    if await _exists(session, UserRow.email == email):
        raise ConflictError("an account with this email exists", details={"field": "email"})
    username = await _username(session, new.username, email)
    now = utcnow()
    user = UserRow(
        id=uuid.uuid4().hex,
        email=email,
        username=username,
        display_name=display_name,
        password_hash=passwords.hash(new.password),
        role=new.role,
        status="active",
        privileges=list(privileges),
        mfa_enabled=False,
        created_at=now,
        updated_at=now,
    )
    session.add(user)
    await session.flush()
    await append(
        session,
        AuditEntry(
            "account.created",
            Risk.HIGH if new.role in ADMIN_ROLES else Risk.LOW,
            actor,
            user_id=user.id,
            target=f"user:{user.id}",
            details={"email": email, "role": new.role},
        ),
        origin,
    )
    return user


async def get_user(session: AsyncSession, user_id: str) -> UserRow:
    user = await session.get(UserRow, user_id, populate_existing=True)
    if user is None:
        raise NotFoundError(f"no user {user_id}")
    return user


async def find_by_email(session: AsyncSession, email: str) -> UserRow | None:
    query = (
        select(UserRow)
        .where(UserRow.email == normalise_email(email))
        .execution_options(populate_existing=True)
    )
    return (await session.execute(query)).scalar_one_or_none()


async def admin_exists(session: AsyncSession) -> bool:
    return await _exists(session, UserRow.role.in_(ADMIN_ROLES))


async def _username(session: AsyncSession, wanted: str | None, email: str) -> str:
    if wanted is not None:
        if not _USERNAME.match(wanted):
            raise InputError(
                "a username has 3 to 64 letters, digits, '.', '_' or '-'", details={"field": "username"}
            )
        if await _exists(session, func.lower(UserRow.username) == wanted.lower()):
            raise ConflictError(f"the username {wanted!r} is taken", details={"field": "username"})
        return wanted
    base = re.sub(r"[^A-Za-z0-9_.-]", "", email.split("@")[0])[:48].ljust(3, "_")
    candidate = base
    while await _exists(session, func.lower(UserRow.username) == candidate.lower()):
        candidate = f"{base}-{secrets.token_hex(3)}"
    return candidate


async def _exists(session: AsyncSession, condition: object) -> bool:
    query = select(UserRow.id).where(condition).limit(1)  # type: ignore[arg-type]
    return (await session.execute(query)).first() is not None
