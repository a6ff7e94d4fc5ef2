"""TOTP (RFC 6238, pyotp) with a replay check, and single-use recovery codes."""

from __future__ import annotations

import hmac
import secrets
from datetime import datetime

import pyotp

ISSUER = "keen"
RECOVERY_CODE_COUNT = 10
_RECOVERY_ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"  # no 0/o, 1/l: read off a screen or paper
_RECOVERY_HALF = 5
# A code of the step before or after the current one is accepted too (clocks drift).
DRIFT_STEPS = 1


def new_totp_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, account: str) -> str:
    """The `otpauth://` URI an authenticator app enrols from (usually shown as a QR code)."""
    return pyotp.TOTP(secret).provisioning_uri(name=account, issuer_name=ISSUER)


def totp_code(secret: str, at: datetime) -> str:
    """The code an authenticator shows at `at` (for tests and enrolment checks)."""
    return pyotp.TOTP(secret).at(at)


def matching_step(secret: str, code: str, *, now: datetime, last_step: int | None) -> int | None:
    """The time step `code` belongs to, when it is valid now and newer than `last_step`.

    Accepting only steps after the last one used means a code works once: the same code again
    (a replay, in the same step or later) and any older code are refused.
    """
    code = code.strip().replace(" ", "")
    if len(code) != 6 or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    current = totp.timecode(now)
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        if last_step is not None and step <= last_step:
            continue
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def new_recovery_codes() -> list[str]:
    """Ten codes like `k3mfa-9xq2t` (50 bits each), shown once."""
    return [
        f"{_random_chars(_RECOVERY_HALF)}-{_random_chars(_RECOVERY_HALF)}" for _ in range(RECOVERY_CODE_COUNT)
    ]


def normalise_recovery_code(code: str) -> str:
    """The form a code is stored under: lower case, without the dash and spaces."""
    return code.strip().lower().replace("-", "").replace(" ", "")


def looks_like_recovery_code(code: str) -> bool:
    normalised = normalise_recovery_code(code)
    return len(normalised) == 2 * _RECOVERY_HALF and all(c in _RECOVERY_ALPHABET for c in normalised)


def _random_chars(count: int) -> str:
    return "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(count))
