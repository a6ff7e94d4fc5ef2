"""MFA: enrol with a provisioning URI, enable with a first code, then every login needs a code;
each TOTP code works once, each recovery code works once."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from authkit import PASSWORD, Auth
from keen.audit import Origin
from keen.auth import MfaRequiredError, TwoFactor
from keen.auth.mfa import totp_code
from keen.errors import AuthenticationError, ConflictError
from keen.store.db import set_acting_user
from keen.store.models import AuditLogRow, RecoveryCodeRow

HERE = Origin("192.0.2.1", "r")


async def _enrol(auth: Auth) -> tuple[str, list[str], str]:
    """An account with MFA on: its TOTP secret, recovery codes and a bearer header."""
    await auth.register("ada@example.org")
    bearer = f"Bearer {(await auth.login('ada@example.org')).access_token}"
    enrolment = await auth.acting(bearer, lambda s, me: TwoFactor(s, auth.policy).setup(me, HERE))
    assert enrolment.provisioning_uri.startswith("otpauth://totp/keen:ada%40example.org?secret=")
    assert f"secret={enrolment.secret}" in enrolment.provisioning_uri
    code = totp_code(enrolment.secret, auth.clock.now)
    codes = await auth.acting(bearer, lambda s, me: TwoFactor(s, auth.policy).enable(me, code, HERE))
    auth.clock.advance(seconds=30)  # the enabling code's step is used up
    return enrolment.secret, codes, bearer


async def test_with_mfa_on_a_login_without_a_code_is_refused_with_mfa_required(any_auth: Auth) -> None:
    secret, _codes, _bearer = await _enrol(any_auth)
    with pytest.raises(MfaRequiredError) as caught:
        await any_auth.login("ada@example.org")
    assert (caught.value.code, caught.value.http_status) == ("mfa_required", 401)
    with pytest.raises(AuthenticationError, match="wrong or was already used"):
        await any_auth.login("ada@example.org", mfa_code="000000")
    await any_auth.login("ada@example.org", mfa_code=totp_code(secret, any_auth.clock.now))


async def test_a_totp_code_works_once_replay_in_the_same_step_is_refused(any_auth: Auth) -> None:
    secret, _codes, _bearer = await _enrol(any_auth)
    code = totp_code(secret, any_auth.clock.now)
    await any_auth.login("ada@example.org", mfa_code=code)
    any_auth.clock.advance(seconds=5)  # still the same 30-second step
    with pytest.raises(AuthenticationError, match="already used"):
        await any_auth.login("ada@example.org", mfa_code=code)
    any_auth.clock.advance(seconds=30)
    await any_auth.login("ada@example.org", mfa_code=totp_code(secret, any_auth.clock.now))


async def test_a_recovery_code_works_once(any_auth: Auth) -> None:
    _secret, codes, _bearer = await _enrol(any_auth)
    assert len(codes) == 10
    await any_auth.login("ada@example.org", mfa_code=codes[0].upper())  # as typed off paper
    with pytest.raises(AuthenticationError):
        await any_auth.login("ada@example.org", mfa_code=codes[0])
    await any_auth.login("ada@example.org", mfa_code=codes[1])

    async def stored(session: AsyncSession) -> list[RecoveryCodeRow]:
        await set_acting_user(session, None, True)
        return list((await session.execute(select(RecoveryCodeRow))).scalars())

    rows = await any_auth.unit(stored)
    assert len(rows) == 10 and sum(r.used_at is not None for r in rows) == 2
    assert not {r.code_hash for r in rows} & {c.replace("-", "") for c in codes}  # hashes only


async def test_enabling_needs_a_valid_code_and_setup_first(auth: Auth) -> None:
    await auth.register("ada@example.org")
    bearer = f"Bearer {(await auth.login('ada@example.org')).access_token}"
    with pytest.raises(ConflictError, match="mfa/setup"):
        await auth.acting(bearer, lambda s, me: TwoFactor(s, auth.policy).enable(me, "123456", HERE))
    await auth.acting(bearer, lambda s, me: TwoFactor(s, auth.policy).setup(me, HERE))
    with pytest.raises(AuthenticationError):
        await auth.acting(bearer, lambda s, me: TwoFactor(s, auth.policy).enable(me, "000000", HERE))
    await auth.login("ada@example.org")  # still off: no code asked


async def test_disabling_needs_the_password_and_a_code(any_auth: Auth) -> None:
    secret, codes, bearer = await _enrol(any_auth)
    two = lambda s: TwoFactor(s, any_auth.policy)  # noqa: E731
    now_code = totp_code(secret, any_auth.clock.now)
    with pytest.raises(AuthenticationError):
        await any_auth.acting(bearer, lambda s, me: two(s).disable(me, "Wrong-pass-1", now_code, HERE))
    with pytest.raises(AuthenticationError):
        await any_auth.acting(bearer, lambda s, me: two(s).disable(me, PASSWORD, "000000", HERE))
    await any_auth.acting(bearer, lambda s, me: two(s).disable(me, PASSWORD, codes[3], HERE))
    await any_auth.login("ada@example.org")  # no code needed any more

    async def actions(session: AsyncSession) -> list[tuple[str, str]]:
        await set_acting_user(session, None, True)
        rows = (
            await session.execute(select(AuditLogRow.action, AuditLogRow.risk).order_by(AuditLogRow.seq))
        ).all()
        return [(a, r) for a, r in rows if a.startswith("auth.mfa")]

    assert await any_auth.unit(actions) == [
        ("auth.mfa.setup", "medium"),
        ("auth.mfa.enabled", "high"),
        ("auth.mfa.disable_failed", "high"),
        ("auth.mfa.disable_failed", "high"),
        ("auth.mfa.disabled", "high"),
    ]
