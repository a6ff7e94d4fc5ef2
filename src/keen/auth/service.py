"""Registration, login (with lockout and MFA), refresh (rotation, reuse detection) and logout.

Services take the caller's database session and never commit. A refusal whose records must
survive it (a failed login's counter and audit entry, a reused refresh token's revoked family)
is raised marked with `keep_writes`, and the unit of work commits those before answering.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy.ext.asyncio import AsyncSession

from keen.audit import AuditEntry, Origin, Risk, append
from keen.auth import signins
from keen.auth.accounts import NewUser, check_email, create_user, find_by_email, get_user
from keen.auth.lockout import LoginThrottle
from keen.auth.policy import AuthPolicy
from keen.auth.principal import Principal
from keen.auth.signins import SignIn
from keen.auth.twofactor import TwoFactor
from keen.errors import AuthenticationError, InputError, PermissionDeniedError
from keen.store.db import keep_writes, set_acting_user
from keen.store.models import UserRow

ANONYMOUS = "anonymous"


class MfaRequiredError(AuthenticationError):
    """The password was right; this account also needs its second factor (`mfa_code`)."""

    code = "mfa_required"


class AccountDisabledError(PermissionDeniedError):
    """The account is suspended or banned: refused whatever credential it presents."""

    code = "account_disabled"


class AuthService:
    def __init__(self, session: AsyncSession, policy: AuthPolicy) -> None:
        self.session = session
        self.policy = policy

    async def register(
        self,
        email: str,
        password: str,
        origin: Origin,
        *,
        username: str | None = None,
        display_name: str | None = None,
    ) -> UserRow:
        await set_acting_user(self.session, None, True)
        new = NewUser(email=email, password=password, username=username, display_name=display_name)
        return await create_user(self.session, self.policy.passwords, new, actor=ANONYMOUS, origin=origin)

    async def login(self, email: str, password: str, mfa_code: str | None, origin: Origin) -> SignIn:
        await set_acting_user(self.session, None, True)  # keen itself, until the account is known
        email = check_email(email)
        throttle = LoginThrottle(self.session, self.policy)
        try:
            await throttle.check(email, origin.ip)
        except Exception as exc:
            await self._audit("auth.login.locked", Risk.MEDIUM, ANONYMOUS, origin, details={"email": email})
            raise keep_writes(exc) from None
        user = await find_by_email(self.session, email)
        if user is None:
            self.policy.passwords.verify_nothing(password)
        if user is None or not self.policy.passwords.verify(user.password_hash, password):
            await self._refuse(throttle, email, user, origin, "auth.login.failure", "wrong password")
            raise keep_writes(AuthenticationError("the email or the password is wrong"))
        if user.status != "active":
            await self._audit(
                "auth.login.refused",
                Risk.MEDIUM,
                ANONYMOUS,
                origin,
                user=user,
                details={"status": user.status},
            )
            raise keep_writes(AccountDisabledError(f"the account is {user.status}"))
        if user.mfa_enabled:
            if not mfa_code:
                await self._audit("auth.login.mfa_required", Risk.LOW, ANONYMOUS, origin, user=user)
                raise keep_writes(MfaRequiredError("this account needs its MFA code (mfa_code)"))
            if not await TwoFactor(self.session, self.policy).second_factor(user, mfa_code):
                await self._refuse(throttle, email, user, origin, "auth.login.mfa_failure", "wrong MFA code")
                raise keep_writes(AuthenticationError("the MFA code is wrong or was already used"))
        await throttle.clear_account(email)
        if self.policy.passwords.needs_rehash(user.password_hash):
            user.password_hash = self.policy.passwords.hash(password)
        user.last_login_at = self.policy.now()
        await set_acting_user(self.session, user.id, False)
        sign_in, _row = await signins.issue(self.session, self.policy, user)
        await self._audit(
            "auth.login.success",
            Risk.LOW,
            f"user:{user.id}",
            origin,
            user=user,
            details={"mfa": user.mfa_enabled, "sign_in": sign_in.family_id},
        )
        return sign_in

    async def refresh(self, refresh_token: str, origin: Origin) -> SignIn:
        """A new access token and a new refresh token for a live one (which is then used up)."""
        await set_acting_user(self.session, None, True)
        row = await signins.find_refresh(self.session, self.policy, refresh_token)
        if row is None:
            raise AuthenticationError("the refresh token is not valid")
        actor = f"user:{row.user_id}"
        details = {"sign_in": row.family_id}
        if row.replaced_by is not None:
            revoked = await signins.revoke_family(self.session, self.policy, str(row.family_id))
            await self._audit(
                "auth.refresh.reuse",
                Risk.CRITICAL,
                actor,
                origin,
                user_id=row.user_id,
                details={**details, "revoked": revoked},
            )
            raise keep_writes(
                AuthenticationError(
                    "this refresh token was already used: the sign-in is revoked, sign in again"
                )
            )
        if row.revoked_at is not None:
            raise AuthenticationError("the refresh token was revoked: sign in again")
        if row.expires_at is None or row.expires_at <= self.policy.now():
            raise AuthenticationError("the refresh token has expired: sign in again")
        user = await get_user(self.session, row.user_id)
        if user.status != "active":
            await self._audit("auth.refresh.refused", Risk.MEDIUM, actor, origin, user=user, details=details)
            raise keep_writes(AuthenticationError(f"the account is {user.status}"))
        await set_acting_user(self.session, user.id, False)
        sign_in, successor = await signins.issue(self.session, self.policy, user, family_id=row.family_id)
        if not await signins.claim_for_rotation(self.session, row, successor.id):
            # Another refresh with this token won the race a moment ago: that is a reuse too.
            await signins.revoke_family(self.session, self.policy, str(row.family_id))
            await self._audit("auth.refresh.reuse", Risk.CRITICAL, actor, origin, user=user, details=details)
            raise keep_writes(AuthenticationError("this refresh token was already used: sign in again"))
        await self._audit("auth.refresh", Risk.LOW, actor, origin, user=user, details=details)
        return sign_in

    async def logout(self, principal: Principal, origin: Origin) -> None:
        """End the sign-in: its refresh tokens and access tokens stop working."""
        if principal.via != "sign_in":
            raise InputError(
                "logout ends a sign-in; an API key is revoked with DELETE /api/v1/auth/api-keys/{id}"
            )
        await signins.revoke_family(self.session, self.policy, principal.credential_id)
        await self._audit(
            "auth.logout",
            Risk.LOW,
            principal.actor,
            origin,
            user_id=principal.user_id,
            details={"sign_in": principal.credential_id},
        )

    async def _refuse(
        self,
        throttle: LoginThrottle,
        email: str,
        user: UserRow | None,
        origin: Origin,
        action: str,
        reason: str,
    ) -> None:
        locked = await throttle.record_failure(email, origin.ip)
        details: dict[str, object] = {"email": email, "reason": reason}
        if locked:
            details["locked"] = locked
        risk = Risk.HIGH if locked or action == "auth.login.mfa_failure" else Risk.MEDIUM
        await self._audit(action, risk, ANONYMOUS, origin, user=user, details=details)

    async def _audit(
        self,
        action: str,
        risk: Risk,
        actor: str,
        origin: Origin,
        *,
        user: UserRow | None = None,
        user_id: str | None = None,
        details: Mapping[str, object] | None = None,
    ) -> None:
        owner = user.id if user is not None else user_id
        entry = AuditEntry(
            action,
            risk,
            actor,
            user_id=owner,
            target=f"user:{owner}" if owner else None,
            details=dict(details or {}),
        )
        await append(self.session, entry, origin, now=self.policy.now())
