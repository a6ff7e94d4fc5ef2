"""Any sequence of holds, charges, releases, purchases, adjustments and expiries keeps the
ledger's invariant after every step (balance = sum of entries, held = sum of open holds,
available never negative), on SQLite and PostgreSQL. Each example is a new account."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keen.billing import TestPaymentProvider
from keen.errors import ConflictError, InsufficientCredits, NotFoundError
from keen.store import Database
from ledgerkit import Clock, add_user, as_admin, as_user, invariant_problems

KEYS = st.sampled_from(["a", "b", "c", "d"])
# Provider costs in USD with up to 6 places (markup 5 makes the credits).
COSTS = st.decimals(min_value=0, max_value=Decimal(3), places=6, allow_nan=False, allow_infinity=False)
AMOUNTS = st.decimals(min_value=Decimal("0.000001"), max_value=Decimal(40), places=6)
STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("hold"), KEYS, COSTS),
        st.tuples(st.just("charge"), KEYS, COSTS),
        st.tuples(st.just("release"), KEYS, st.none()),
        st.tuples(st.just("purchase"), st.none(), AMOUNTS),
        st.tuples(st.just("adjust"), st.none(), AMOUNTS.map(lambda a: -a) | AMOUNTS),
        st.tuples(st.just("expire"), st.none(), st.integers(min_value=1, max_value=30)),
    ),
    min_size=1,
    max_size=14,
)
EXPECTED = (InsufficientCredits, ConflictError, NotFoundError)


async def _step(db: Database, user: str, clock: Clock, step: tuple[str, str | None, object], n: int) -> None:
    action, key, value = step
    try:
        if action in ("hold", "charge", "release", "purchase"):
            async with as_user(db, user, clock) as ledger:
                if action == "hold":
                    await ledger.hold(user, value, key=str(key))  # type: ignore[arg-type]
                elif action == "charge":
                    await ledger.charge(user, str(key), value)  # type: ignore[arg-type]
                elif action == "release":
                    await ledger.release(user, str(key))
                else:
                    provider = TestPaymentProvider(fail=n % 3 == 0)
                    await ledger.purchase(user, value, provider=provider, request_key=f"{user}-{n}")  # type: ignore[arg-type]
        elif action == "adjust":
            async with as_admin(db, clock) as ledger:
                await ledger.adjust(user, value, reason="property")  # type: ignore[arg-type]
        else:
            clock.advance(minutes=int(value))  # type: ignore[call-overload]
            async with as_admin(db, clock) as ledger:
                await ledger.expire_stale()
    except EXPECTED:
        pass  # a refusal changes nothing; the invariant says so


async def _run(url: str, steps: list[tuple[str, str | None, object]]) -> None:
    db = Database(url)
    try:
        user = await add_user(db)
        clock = Clock()
        for n, step in enumerate(steps):
            await _step(db, user, clock, step, n)
            assert await invariant_problems(db, user) == [], (n, step)
            async with as_user(db, user, clock) as ledger:
                assert (await ledger.account(user)).available >= 0
    finally:
        await db.dispose()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=STEPS)
def test_random_sequences_keep_the_invariant_after_every_step(
    db_url: str, steps: list[tuple[str, str | None, object]]
) -> None:
    asyncio.run(_run(db_url, steps))
