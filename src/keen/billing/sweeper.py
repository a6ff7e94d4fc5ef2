"""The sweeper: expires stale holds (each exactly once, audited), completes auto-recharges a
crash left pending, and forgets expired idempotency keys. `keen admin sweep-holds` runs it
once; the server runs it on a timer.

Each step is its own unit of work, acting as keen itself (an admin transaction), so a step that
fails leaves the others done and the next sweep takes it up again.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import timedelta

from keen.billing import idempotency
from keen.billing.ledger import Ledger
from keen.billing.payments import PaymentProvider
from keen.billing.recharge import complete_recharge, pending_recharges
from keen.billing.records import Clock, Hold, LedgerConfig, utcnow
from keen.store.db import Database, set_acting_user

log = logging.getLogger("keen.billing")
BATCH = 500
# An auto-recharge still pending after this is taken to be left by a process that died.
PENDING_GRACE = timedelta(minutes=2)


@dataclass
class SweepReport:
    expired: list[Hold] = field(default_factory=list)
    recharges_completed: int = 0
    idempotency_keys_deleted: int = 0


async def sweep(
    db: Database, config: LedgerConfig, provider: PaymentProvider, *, clock: Clock = utcnow
) -> SweepReport:
    report = SweepReport()
    while True:
        async with db.transaction() as session:
            await set_acting_user(session, None, True)
            batch = await Ledger(session, config, clock=clock).expire_stale(batch=BATCH)
        report.expired.extend(batch)
        if len(batch) < BATCH:
            break
    async with db.transaction() as session:
        await set_acting_user(session, None, True)
        pending = await pending_recharges(Ledger(session, config, clock=clock), clock() - PENDING_GRACE)
    for payment_id in pending:
        async with db.transaction() as session:
            await set_acting_user(session, None, True)
            if await complete_recharge(Ledger(session, config, clock=clock), payment_id, provider):
                report.recharges_completed += 1
    async with db.transaction() as session:
        await set_acting_user(session, None, True)
        report.idempotency_keys_deleted = await idempotency.delete_expired(session, clock())
    return report


async def run_periodically(
    db: Database, config: LedgerConfig, provider: PaymentProvider, interval_seconds: float
) -> None:
    """Sweep every `interval_seconds` until cancelled; a failed sweep is logged and retried."""
    while True:
        try:
            report = await sweep(db, config, provider)
            if report.expired:
                log.info("expired %d stale credit holds", len(report.expired))
        except Exception:  # the next sweep tries again; the server must not stop over one
            log.exception("the credit sweep failed")
        await asyncio.sleep(interval_seconds)
