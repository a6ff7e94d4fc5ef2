"""Who is calling: an account, through a sign-in (access token) or an API key, with the scopes
that credential holds now."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from keen.auth.scopes import ADMIN_SCOPES, is_admin_role

Via = Literal["sign_in", "api_key"]


@dataclass(frozen=True)
class Principal:
    user_id: str
    email: str
    role: str
    scopes: frozenset[str]
    via: Via
    # The sign-in's refresh-token family, or the API key's id.
    credential_id: str

    @property
    def actor(self) -> str:
        return f"user:{self.user_id}"

    @property
    def is_admin(self) -> bool:
        """Sees every tenant's rows: an admin account acting with at least one admin scope (an
        admin's API key made for plain user work stays inside the admin's own rows)."""
        return is_admin_role(self.role) and any(s in ADMIN_SCOPES for s in self.scopes)

    def has(self, scope: str) -> bool:
        return scope in self.scopes
