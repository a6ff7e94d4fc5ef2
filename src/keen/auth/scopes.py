"""Roles, statuses and scopes: what each kind of credential may do.

A sign-in (an access token) holds the user scopes, `account:manage` (API keys and MFA: never
on an API key, so a leaked key cannot make more keys or turn MFA off) and, for admins, their
admin scopes. An `admin` holds the admin scopes listed in its privileges; a `super_admin` holds
every one. The scopes a credential carries are re-checked against the account on every request,
so a demoted admin's earlier tokens lose what the account no longer has.
"""

from __future__ import annotations

from collections.abc import Iterable

PROFILE_READ = "profile:read"
CREDITS_READ = "credits:read"
AGENTS_EXECUTE = "agents:execute"
SESSIONS_READ = "sessions:read"
USER_SCOPES = (PROFILE_READ, CREDITS_READ, AGENTS_EXECUTE, SESSIONS_READ)
ACCOUNT_MANAGE = "account:manage"

ADMIN_USERS_READ = "admin:users:read"
ADMIN_USERS_WRITE = "admin:users:write"
ADMIN_AUDIT_READ = "admin:audit:read"
ADMIN_SYSTEM_READ = "admin:system:read"
ADMIN_SCOPES = (ADMIN_USERS_READ, ADMIN_USERS_WRITE, ADMIN_AUDIT_READ, ADMIN_SYSTEM_READ)

ROLES = ("user", "admin", "super_admin")
ADMIN_ROLES = frozenset({"admin", "super_admin"})
STATUSES = ("active", "suspended", "banned")


def is_admin_role(role: str) -> bool:
    return role in ADMIN_ROLES


def admin_scopes(role: str, privileges: Iterable[str]) -> tuple[str, ...]:
    if role == "super_admin":
        return ADMIN_SCOPES
    if role == "admin":
        held = set(privileges)
        return tuple(s for s in ADMIN_SCOPES if s in held)
    return ()


def sign_in_scopes(role: str, privileges: Iterable[str]) -> tuple[str, ...]:
    """Everything the account may do, as an access token of a sign-in carries it."""
    return (*USER_SCOPES, ACCOUNT_MANAGE, *admin_scopes(role, privileges))


def key_scopes(role: str, privileges: Iterable[str]) -> tuple[str, ...]:
    """The scopes an API key of this account may be given."""
    return (*USER_SCOPES, *admin_scopes(role, privileges))
