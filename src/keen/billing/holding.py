"""Credits held around a piece of work, released on every way out of it.

`held_credits` places a hold in its own unit of work, runs the block, then charges the cost the
block reported or, if the block reported none, raised or was cancelled, releases the hold. The
release finishes even when the task is being cancelled (it is shielded, then the cancellation
goes on), so a cancelled call never leaves its credits held; a process that dies outright
leaves the hold to the sweeper, which expires it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import TypeVar

from keen.aio import uncancellable
from keen.billing.ledger import Ledger
from keen.billing.records import Charge, Clock, Hold, LedgerConfig, utcnow
from keen.store.db import Database, set_acting_user

T = TypeVar("T")


@dataclass
class HeldCall:
    """The hold of the running block; the block says what the work cost with `settle`."""

    hold: Hold
    cost: Decimal | None = None
    charge: Charge | None = None

    def settle(self, provider_cost: Decimal) -> None:
        self.cost = provider_cost


@asynccontextmanager
async def held_credits(
    db: Database,
    config: LedgerConfig,
    user_id: str,
    worst_case: Decimal,
    *,
    key: str,
    session_id: str | None = None,
    model: str | None = None,
    ttl: timedelta | None = None,
    clock: Clock = utcnow,
) -> AsyncIterator[HeldCall]:
    async def in_unit(work: Callable[[Ledger], Awaitable[T]]) -> T:
        async with db.transaction() as session:
            await set_acting_user(session, user_id, False)
            return await work(Ledger(session, config, clock=clock))

    hold = await in_unit(
        lambda ledger: ledger.hold(user_id, worst_case, key=key, session_id=session_id, model=model, ttl=ttl)
    )
    call = HeldCall(hold)
    try:
        yield call
    except BaseException:
        await uncancellable(in_unit(lambda ledger: ledger.release(user_id, key)))
        raise
    cost = call.cost
    if cost is None:
        await uncancellable(in_unit(lambda ledger: ledger.release(user_id, key)))
    else:
        call.charge = await uncancellable(
            in_unit(lambda ledger: ledger.charge(user_id, key, cost, model=model))
        )
