"""What the billing tests share: a migrated database (a copied SQLite file, or a PostgreSQL
database made from a migrated template and reached as the application role), users, a clock the
test moves, and a ledger in one unit of work as a request would have it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TypeVar

from sqlalchemy import insert

from authkit import Clock
from keen.billing import Ledger, LedgerConfig
from keen.billing.invariant import problems
from keen.store import Database
from keen.store.db import set_acting_user
from keen.store.models import UserRow

T = TypeVar("T")
CONFIG = LedgerConfig(
    markup=Decimal(5),
    daily_limit=Decimal(100),
    monthly_limit=Decimal(1000),
    recharge_threshold=Decimal(10),
    recharge_amount=Decimal(50),
    recharge_monthly_cap=Decimal(500),
    hold_ttl=timedelta(minutes=15),
)
__all__ = ["CONFIG", "Clock", "add_user", "as_admin", "as_user", "grant", "invariant_problems", "unit"]


async def add_user(db: Database, role: str = "user") -> str:
    """A user row (no password needed here); its id."""
    user_id = uuid.uuid4().hex
    now = datetime.now(UTC)
    async with db.transaction() as session:
        await set_acting_user(session, None, True)
        await session.execute(
            insert(UserRow).values(
                id=user_id,
                email=f"{user_id}@example.com",
                username=user_id[:20],
                display_name="u",
                password_hash="x",
                role=role,
                privileges=[],
                created_at=now,
                updated_at=now,
            )
        )
    return user_id


@asynccontextmanager
async def _ledger(
    db: Database, user_id: str | None, is_admin: bool, clock: Clock | None, config: LedgerConfig, actor: str
) -> AsyncIterator[Ledger]:
    async with db.transaction() as session:
        await set_acting_user(session, user_id, is_admin)
        yield Ledger(session, config, actor=actor, clock=clock or (lambda: datetime.now(UTC)))


def as_user(
    db: Database, user_id: str, clock: Clock | None = None, config: LedgerConfig = CONFIG
) -> AbstractAsyncContextManager[Ledger]:
    """The ledger in one unit of work acting for `user_id`."""
    return _ledger(db, user_id, False, clock, config, f"user:{user_id}")


def as_admin(
    db: Database, clock: Clock | None = None, config: LedgerConfig = CONFIG
) -> AbstractAsyncContextManager[Ledger]:
    """The ledger in one unit of work acting as keen itself (an admin transaction)."""
    return _ledger(db, None, True, clock, config, "system")


async def grant(db: Database, user_id: str, amount: str, clock: Clock | None = None) -> None:
    async with as_admin(db, clock) as ledger:
        await ledger.adjust(user_id, Decimal(amount), reason="test grant")


async def invariant_problems(db: Database, user_id: str) -> list[str]:
    async with db.transaction() as session:
        await set_acting_user(session, None, True)
        return await problems(session, user_id)


async def unit(db: Database, work: Callable[[Ledger], Awaitable[T]], clock: Clock | None = None) -> T:
    async with as_admin(db, clock) as ledger:
        return await work(ledger)
