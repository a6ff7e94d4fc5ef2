"""Passwords: Argon2id hashes with the cost from Settings, and the rules of SPEC 8.1."""

from __future__ import annotations

import re
import secrets
from functools import cached_property

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

from keen.config import Settings
from keen.errors import InputError

MIN_LENGTH = 8
# Longer is no better a password, only more work for the hasher on every attempt.
MAX_LENGTH = 1024


def check_password_rules(password: str) -> None:
    """At least 8 characters with a lower-case letter, an upper-case letter and a digit."""
    missing = [
        what
        for what, pattern in (
            ("a lower-case letter", r"[a-z]"),
            ("an upper-case letter", r"[A-Z]"),
            ("a digit", r"\d"),
        )
        if not re.search(pattern, password)
    ]
    if len(password) < MIN_LENGTH:
        missing.insert(0, f"at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise InputError(
            f"the password is longer than {MAX_LENGTH} characters", details={"field": "password"}
        )
    if missing:
        raise InputError(f"the password needs {', '.join(missing)}", details={"field": "password"})


class Passwords:
    """Argon2id hashing at one cost. A hash made at another cost verifies, and says it needs
    redoing, so a changed cost reaches every account at its next login."""

    def __init__(self, *, time_cost: int, memory_kib: int, parallelism: int) -> None:
        self._hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism, type=Type.ID
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> Passwords:
        return cls(
            time_cost=settings.keen_argon2_time_cost,
            memory_kib=settings.keen_argon2_memory_kib,
            parallelism=settings.keen_argon2_parallelism,
        )

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, stored_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(stored_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored_hash: str) -> bool:
        return self._hasher.check_needs_rehash(stored_hash)

    def verify_nothing(self, password: str) -> None:
        """The same work as a verification, for an email with no account: the answer's timing
        must not tell which emails have one."""
        self.verify(self._dummy_hash, password)

    @cached_property
    def _dummy_hash(self) -> str:
        return self._hasher.hash(secrets.token_urlsafe(16))
