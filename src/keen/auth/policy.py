"""What the auth services need to know, in one value: the signing secret, the password cost,
the lockout limits and the clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from keen.auth.passwords import Passwords
from keen.config import Settings


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class AuthPolicy:
    """`secret` signs access tokens and keys the stored hashes of refresh tokens, API keys and
    recovery codes; it is passed in, so the services do not depend on where it is kept."""

    secret: str
    passwords: Passwords
    max_failures: int = 5
    max_failures_per_ip: int = 20
    lockout: timedelta = timedelta(minutes=15)
    # Overrides both access-token lifetimes when set (tests of expiry).
    access_ttl: timedelta | None = None
    clock: Callable[[], datetime] = field(default=utcnow)

    def __post_init__(self) -> None:
        if len(self.secret) < 32:
            raise ValueError("the server secret must be at least 32 characters")

    @classmethod
    def from_settings(cls, settings: Settings, secret: str) -> AuthPolicy:
        return cls(
            secret=secret,
            passwords=Passwords.from_settings(settings),
            max_failures=settings.keen_login_max_failures,
            max_failures_per_ip=settings.keen_login_max_failures_per_ip,
            lockout=timedelta(seconds=settings.keen_login_lockout_seconds),
            access_ttl=timedelta(seconds=settings.keen_access_token_ttl_seconds)
            if settings.keen_access_token_ttl_seconds
            else None,
        )

    def now(self) -> datetime:
        return self.clock()
