"""Reading the audit log (filtered, paged by seq) and verifying it: admin work, itself audited."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from keen.audit.chain import AuditEntry, ChainReport, Origin, Risk, append, verify
from keen.errors import InputError
from keen.store.models import AuditLogRow

MAX_PAGE = 500


@dataclass(frozen=True)
class AuditFilter:
    user_id: str | None = None
    action: str | None = None  # exact, or a prefix ending in `.` (`auth.` for every auth entry)
    risk: Risk | None = None
    since: datetime | None = None
    until: datetime | None = None
    after_seq: int = 0
    limit: int = 100


@dataclass(frozen=True)
class Reviewer:
    """Who reads the log: `actor` as entries name it, `user_id` the reader's account."""

    actor: str
    user_id: str


class AuditReview:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def entries(self, reviewer: Reviewer, where: AuditFilter, origin: Origin) -> Sequence[AuditLogRow]:
        """Entries after `where.after_seq` in seq order (page on with the last seq returned)."""
        if not 1 <= where.limit <= MAX_PAGE or where.after_seq < 0:
            raise InputError(
                f"limit is from 1 to {MAX_PAGE} and after_seq at least 0", details={"field": "limit"}
            )
        query = select(AuditLogRow).where(AuditLogRow.seq > where.after_seq)
        if where.user_id is not None:
            query = query.where(AuditLogRow.user_id == where.user_id)
        if where.action is not None:
            if where.action.endswith("."):
                query = query.where(AuditLogRow.action.startswith(where.action, autoescape=True))
            else:
                query = query.where(AuditLogRow.action == where.action)
        if where.risk is not None:
            query = query.where(AuditLogRow.risk == str(where.risk))
        if where.since is not None:
            query = query.where(AuditLogRow.ts >= where.since)
        if where.until is not None:
            query = query.where(AuditLogRow.ts < where.until)
        rows = (
            (await self.session.execute(query.order_by(AuditLogRow.seq).limit(where.limit))).scalars().all()
        )
        await self._audit("admin.audit.listed", reviewer, origin, {"returned": len(rows)})
        return rows

    async def verify(self, reviewer: Reviewer, origin: Origin) -> ChainReport:
        """Verify the chain as it is, then record that it was verified (and what was found)."""
        report = await verify(self.session)
        risk = Risk.LOW if report.intact else Risk.CRITICAL
        await self._audit(
            "admin.audit.verified",
            reviewer,
            origin,
            {"intact": report.intact, "first_bad": report.first_bad},
            risk,
        )
        return report

    async def _audit(
        self,
        action: str,
        reviewer: Reviewer,
        origin: Origin,
        details: dict[str, object],
        risk: Risk = Risk.LOW,
    ) -> None:
        await append(
            self.session,
            AuditEntry(action, risk, reviewer.actor, user_id=reviewer.user_id, details=details),
            origin,
        )
