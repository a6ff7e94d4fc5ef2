"""Lockout: failed logins counted per account and per IP in the database (so the count holds
across restarts and replicas). Reaching the limit within the lockout time locks the account
(or the IP) for the lockout time; a locked login is refused before any password is checked."""

from __future__ import annotations

import math
from datetime import datetime

from sqlalchemy import delete, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from keen.auth.policy import AuthPolicy
from keen.errors import RateLimitedError
from keen.store.models import LoginThrottleRow

ACCOUNT = "account"
IP = "ip"


class LoginThrottle:
    def __init__(self, session: AsyncSession, policy: AuthPolicy) -> None:
        self.session = session
        self.policy = policy

    async def check(self, email: str, ip: str | None) -> None:
        """Refuse (429 with the seconds to wait) while the account or the IP is locked."""
        now = self.policy.now()
        for scope, subject in self._subjects(email, ip):
            row = await self.session.get(LoginThrottleRow, (scope, subject), populate_existing=True)
            if row is not None and row.locked_until is not None and row.locked_until > now:
                wait = math.ceil((row.locked_until - now).total_seconds())
                whom = "this account" if scope == ACCOUNT else "this address"
                raise RateLimitedError(
                    f"too many failed logins for {whom}: try again in {wait} seconds "
                    f"(at {row.locked_until.isoformat(timespec='seconds')})",
                    retry_after=wait,
                    details={"locked": scope, "locked_until": row.locked_until.isoformat()},
                )

    async def record_failure(self, email: str, ip: str | None) -> list[str]:
        """Count one failure; returns the scopes this failure locked (for the audit entry)."""
        now = self.policy.now()
        await self._forget_old(now)
        locked = []
        for scope, subject in self._subjects(email, ip):
            row = await self._locked_row(scope, subject, now)
            if now - row.window_started_at >= self.policy.lockout:
                row.failures, row.window_started_at, row.locked_until = 0, now, None
            row.failures += 1
            limit = self.policy.max_failures if scope == ACCOUNT else self.policy.max_failures_per_ip
            if row.failures >= limit and (row.locked_until is None or row.locked_until <= now):
                row.locked_until = now + self.policy.lockout
                row.failures, row.window_started_at = 0, now
                locked.append(scope)
        await self.session.flush()
        return locked

    async def clear_account(self, email: str) -> None:
        """A successful login forgets the account's failures (not the IP's: one good account must
        not reset an address that is guessing others' passwords)."""
        row = await self.session.get(LoginThrottleRow, (ACCOUNT, email))
        if row is not None:
            await self.session.delete(row)
            await self.session.flush()

    async def _forget_old(self, now: datetime) -> None:
        """Counters whose window and lock are both over count nothing: drop them (guesses at
        made-up emails would otherwise leave a row each, forever)."""
        await self.session.execute(
            delete(LoginThrottleRow).where(
                LoginThrottleRow.window_started_at <= now - self.policy.lockout,
                or_(LoginThrottleRow.locked_until.is_(None), LoginThrottleRow.locked_until <= now),
            )
        )

    async def _locked_row(self, scope: str, subject: str, now: datetime) -> LoginThrottleRow:
        """The counter row, created when missing, locked for this transaction (PostgreSQL)."""
        dialect = self.session.get_bind().dialect.name
        make = postgresql.insert if dialect == "postgresql" else sqlite.insert
        await self.session.execute(
            make(LoginThrottleRow)
            .values(scope=scope, subject=subject, failures=0, window_started_at=now)
            .on_conflict_do_nothing()
        )
        query = (
            select(LoginThrottleRow)
            .where(LoginThrottleRow.scope == scope, LoginThrottleRow.subject == subject)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        return (await self.session.execute(query)).scalar_one()

    @staticmethod
    def _subjects(email: str, ip: str | None) -> list[tuple[str, str]]:
        return [(ACCOUNT, email)] + ([(IP, ip)] if ip else [])
