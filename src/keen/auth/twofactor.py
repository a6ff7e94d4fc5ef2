"""MFA: TOTP enrolment (setup, then enable with a first code), disabling, and checking a
second factor at login: a TOTP code (once per time step) or a recovery code (once)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import delete, or_, update
from sqlalchemy.ext.asyncio import AsyncSession

from keen.audit import AuditEntry, Origin, Risk, append
from keen.auth.accounts import get_user
from keen.auth.mfa import (
    looks_like_recovery_code,
    matching_step,
    new_recovery_codes,
    new_totp_secret,
    normalise_recovery_code,
    provisioning_uri,
)
from keen.auth.policy import AuthPolicy
from keen.auth.principal import Principal
from keen.auth.tokens import keyed_digest
from keen.errors import AuthenticationError, ConflictError
from keen.store.db import keep_writes
from keen.store.models import RecoveryCodeRow, UserRow


@dataclass(frozen=True)
class Enrolment:
    secret: str
    provisioning_uri: str


class TwoFactor:
    def __init__(self, session: AsyncSession, policy: AuthPolicy) -> None:
        self.session = session
        self.policy = policy

    async def setup(self, principal: Principal, origin: Origin) -> Enrolment:
        """A new secret, pending until `enable` sees a code made from it."""
        user = await get_user(self.session, principal.user_id)
        if user.mfa_enabled:
            raise ConflictError("MFA is already enabled: disable it first to enrol again")
        user.totp_secret, user.totp_last_step, user.updated_at = new_totp_secret(), None, self.policy.now()
        await self.session.flush()
        await self._audit("auth.mfa.setup", Risk.MEDIUM, principal, origin)
        return Enrolment(user.totp_secret, provisioning_uri(user.totp_secret, user.email))

    async def enable(self, principal: Principal, code: str, origin: Origin) -> list[str]:
        """Turn MFA on once `code` proves the authenticator has the secret; returns the ten
        recovery codes (shown this once, stored hashed)."""
        user = await get_user(self.session, principal.user_id)
        if user.mfa_enabled:
            raise ConflictError("MFA is already enabled")
        if user.totp_secret is None:
            raise ConflictError("no MFA enrolment is pending: start with POST /api/v1/auth/mfa/setup")
        if not await self._accept_totp(user, code):
            await self._audit("auth.mfa.enable_failed", Risk.MEDIUM, principal, origin)
            raise keep_writes(AuthenticationError("the MFA code is wrong or was already used"))
        user.mfa_enabled, user.updated_at = True, self.policy.now()
        codes = await self._replace_recovery_codes(user)
        await self._audit("auth.mfa.enabled", Risk.HIGH, principal, origin)
        return codes

    async def disable(self, principal: Principal, password: str, code: str, origin: Origin) -> None:
        """Turn MFA off: the password and a current code (or a recovery code) are both needed,
        so a stolen sign-in alone cannot do it."""
        user = await get_user(self.session, principal.user_id)
        if not user.mfa_enabled:
            raise ConflictError("MFA is not enabled")
        if not self.policy.passwords.verify(user.password_hash, password) or not await self.second_factor(
            user, code
        ):
            await self._audit("auth.mfa.disable_failed", Risk.HIGH, principal, origin)
            raise keep_writes(AuthenticationError("the password or the MFA code is wrong"))
        user.mfa_enabled, user.totp_secret, user.totp_last_step = False, None, None
        user.updated_at = self.policy.now()
        await self.session.execute(delete(RecoveryCodeRow).where(RecoveryCodeRow.user_id == user.id))
        await self._audit("auth.mfa.disabled", Risk.HIGH, principal, origin)

    async def second_factor(self, user: UserRow, code: str) -> bool:
        """Whether `code` is a TOTP code not used before, or an unused recovery code (which is
        then used up)."""
        if looks_like_recovery_code(code):
            return await self._use_recovery_code(user, code)
        return await self._accept_totp(user, code)

    async def _accept_totp(self, user: UserRow, code: str) -> bool:
        if user.totp_secret is None:
            return False
        step = matching_step(user.totp_secret, code, now=self.policy.now(), last_step=user.totp_last_step)
        if step is None:
            return False
        # Only a newer step moves it on: two logins racing with one code, one of them wins.
        result = await self.session.execute(
            update(UserRow)
            .where(
                UserRow.id == user.id, or_(UserRow.totp_last_step.is_(None), UserRow.totp_last_step < step)
            )
            .values(totp_last_step=step)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            return False
        user.totp_last_step = step
        return True

    async def _use_recovery_code(self, user: UserRow, code: str) -> bool:
        digest = keyed_digest(self.policy.secret, normalise_recovery_code(code))
        result = await self.session.execute(
            update(RecoveryCodeRow)
            .where(
                RecoveryCodeRow.user_id == user.id,
                RecoveryCodeRow.code_hash == digest,
                RecoveryCodeRow.used_at.is_(None),
            )
            .values(used_at=self.policy.now())
            .execution_options(synchronize_session=False)
        )
        return result.rowcount == 1  # type: ignore[attr-defined]

    async def _replace_recovery_codes(self, user: UserRow) -> list[str]:
        await self.session.execute(delete(RecoveryCodeRow).where(RecoveryCodeRow.user_id == user.id))
        codes = new_recovery_codes()
        now = self.policy.now()
        self.session.add_all(
            RecoveryCodeRow(
                id=uuid.uuid4().hex,
                user_id=user.id,
                code_hash=keyed_digest(self.policy.secret, normalise_recovery_code(code)),
                created_at=now,
            )
            for code in codes
        )
        await self.session.flush()
        return codes

    async def _audit(self, action: str, risk: Risk, principal: Principal, origin: Origin) -> None:
        entry = AuditEntry(
            action, risk, principal.actor, user_id=principal.user_id, target=f"user:{principal.user_id}"
        )
        await append(self.session, entry, origin, now=self.policy.now())
