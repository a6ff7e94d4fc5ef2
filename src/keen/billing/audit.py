"""The one place the ledger writes to the audit log: every money movement, in its transaction.

An append locks the chain's head row until the transaction ends, so the ledger appends last,
after every account and hold it touches: two transactions then never wait on each other's
accounts while holding the head (no deadlock between a charge and a sweep).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from keen.audit import AuditEntry, Origin, Risk, append

__all__ = ["Origin", "Risk", "record"]


async def record(
    session: AsyncSession,
    action: str,
    *,
    user_id: str,
    actor: str,
    origin: Origin,
    now: datetime,
    risk: Risk = Risk.LOW,
    target: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> None:
    """Append one `credits.*` entry belonging to `user_id` (amounts as exact decimal strings)."""
    plain = {
        key: str(value) if isinstance(value, Decimal) else value for key, value in (details or {}).items()
    }
    entry = AuditEntry(action=action, risk=risk, actor=actor, user_id=user_id, target=target, details=plain)
    await append(session, entry, origin, now=now)
