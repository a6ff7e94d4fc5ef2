"""The audit log as a hash chain: append (serialised, inside the caller's transaction) and verify.

Each entry's hash is SHA-256 over the canonical JSON of its content and the previous entry's
hash, so editing an entry breaks its own hash, and removing or reordering entries breaks the
link of the first entry after the change. The head row (audit_head) holds the newest entry's seq
and hash: an append updates it first, which serialises appends (a row lock on PostgreSQL; on
SQLite the unit of work already holds the write lock from `BEGIN IMMEDIATE`), and verify checks
the chain ends where the head says, so removing the newest entries is seen too.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from keen.store.models import AuditHeadRow, AuditLogRow

GENESIS_HASH = "0" * 64
_HEAD_ID = 1
_VERIFY_BATCH = 1000


class Risk(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


@dataclass(frozen=True)
class Origin:
    """Where a request came from, as its audit entries record it."""

    ip: str | None = None
    request_id: str | None = None


@dataclass(frozen=True)
class AuditEntry:
    """What happened. `user_id` is the account the entry belongs to (who may read it);
    `actor` who did it (`user:<id>`, `anonymous`, `system`, `cli`)."""

    action: str
    risk: Risk
    actor: str
    user_id: str | None = None
    target: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


_TAKE_NEXT_SEQ = (
    update(AuditHeadRow)
    .where(AuditHeadRow.id == _HEAD_ID)
    .values(last_seq=AuditHeadRow.last_seq + 1)
    .returning(AuditHeadRow.last_seq, AuditHeadRow.last_hash)
)


async def append(
    session: AsyncSession, entry: AuditEntry, origin: Origin, *, now: datetime | None = None
) -> int:
    """Append `entry` in the session's transaction (committed with the change it records);
    returns its seq."""
    seq, prev_hash = (await session.execute(_TAKE_NEXT_SEQ)).one()
    ts = (now or datetime.now(UTC)).astimezone(UTC)
    values: dict[str, Any] = {
        "seq": int(seq),
        "ts": ts,
        "action": entry.action,
        "risk": str(entry.risk),
        "user_id": entry.user_id,
        "actor": entry.actor,
        "ip": origin.ip,
        "request_id": origin.request_id,
        "target": entry.target,
        "details": _plain_json(entry.details),
    }
    digest = entry_hash(values, prev_hash)
    await session.execute(insert(AuditLogRow).values(**values, prev_hash=prev_hash, hash=digest))
    await session.execute(update(AuditHeadRow).where(AuditHeadRow.id == _HEAD_ID).values(last_hash=digest))
    return int(seq)


def entry_hash(content: dict[str, Any], prev_hash: str) -> str:
    """SHA-256 of the canonical JSON (sorted keys, no spaces) of an entry's content and the
    previous hash."""
    document = {
        "seq": content["seq"],
        "ts": content["ts"].astimezone(UTC).isoformat(),
        "action": content["action"],
        "risk": content["risk"],
        "user_id": content["user_id"],
        "actor": content["actor"],
        "ip": content["ip"],
        "request_id": content["request_id"],
        "target": content["target"],
        "details": content["details"],
        "prev_hash": prev_hash,
    }
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class ChainReport:
    """The outcome of a verification: `first_bad` is the seq of the first entry that was edited,
    removed or reordered (None when the chain is intact)."""

    entries: int
    first_bad: int | None = None
    problem: str | None = None

    @property
    def intact(self) -> bool:
        return self.first_bad is None

    def describe(self) -> str:
        if self.intact:
            return f"chain intact ({self.entries} entries)"
        return f"chain broken at entry {self.first_bad}: {self.problem}"


async def verify(session: AsyncSession) -> ChainReport:
    """Recompute the chain from the first entry; stop at the first one that does not hold."""
    expected_seq, prev_hash, count = 1, GENESIS_HASH, 0
    while True:
        rows = (
            (
                await session.execute(
                    select(AuditLogRow)
                    .where(AuditLogRow.seq >= expected_seq)
                    .order_by(AuditLogRow.seq)
                    .limit(_VERIFY_BATCH)
                    .execution_options(populate_existing=True)
                )
            )
            .scalars()
            .all()
        )
        for row in rows:
            if row.seq != expected_seq:
                return ChainReport(count, expected_seq, "it is missing (removed, or its seq was changed)")
            if row.prev_hash != prev_hash:
                return ChainReport(
                    count,
                    row.seq,
                    f"it does not follow entry {row.seq - 1} (an entry was removed or reordered, "
                    "or its previous hash was edited)",
                )
            if entry_hash(_content(row), row.prev_hash) != row.hash:
                return ChainReport(count, row.seq, "its content does not match its hash (edited)")
            prev_hash, expected_seq, count = row.hash, expected_seq + 1, count + 1
        if len(rows) < _VERIFY_BATCH:
            break
    last_seq, last_hash = (
        await session.execute(
            select(AuditHeadRow.last_seq, AuditHeadRow.last_hash).where(AuditHeadRow.id == _HEAD_ID)
        )
    ).one()
    if last_seq > count:
        return ChainReport(
            count, count + 1, f"it is missing (the chain ends at {count}, its head at {last_seq})"
        )
    if last_seq < count:
        return ChainReport(
            count, last_seq + 1, f"it was added outside the chain (its head ends at {last_seq})"
        )
    if last_hash != prev_hash:
        return ChainReport(count, count, "its hash is not the one the chain's head recorded (edited)")
    return ChainReport(count)


def _content(row: AuditLogRow) -> dict[str, Any]:
    return {
        "seq": row.seq,
        "ts": row.ts,
        "action": row.action,
        "risk": row.risk,
        "user_id": row.user_id,
        "actor": row.actor,
        "ip": row.ip,
        "request_id": row.request_id,
        "target": row.target,
        "details": row.details,
    }


def _plain_json(details: dict[str, Any]) -> dict[str, Any]:
    """Details as they will read back from the JSON column (so the hash is the same after)."""
    return json.loads(json.dumps(details, default=str))
