"""Holds always end: released when the work holding them fails or is cancelled, and expired by
the sweeper (exactly once) when the process holding them is killed."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from keen.billing import TestPaymentProvider
from keen.billing.holding import held_credits
from keen.billing.sweeper import sweep
from keen.store import Database
from keen.store.db import set_acting_user
from keen.store.models import AuditLogRow
from ledgerkit import CONFIG, Clock, add_user, as_user, grant, invariant_problems

HOLDER = Path(__file__).with_name("holder_process.py")
D = Decimal


async def _hold_status(db: Database, user: str, key: str) -> tuple[str, Decimal]:
    async with as_user(db, user) as ledger:
        hold = await ledger.find_hold(user, key)
        assert hold is not None
        return hold.status, (await ledger.account(user)).held


async def _expired_audits(db: Database, user: str) -> int:
    async with db.transaction() as session:
        await set_acting_user(session, None, True)
        query = select(AuditLogRow).where(
            AuditLogRow.user_id == user, AuditLogRow.action == "credits.hold_expired"
        )
        return len((await session.scalars(query)).all())


async def test_a_task_cancelled_while_holding_credits_releases_them(db: Database) -> None:
    user = await add_user(db)
    await grant(db, user, "10")
    inside = asyncio.Event()

    async def model_call() -> None:
        async with held_credits(db, CONFIG, user, D("0.4"), key="call-1") as call:
            inside.set()
            await asyncio.sleep(60)
            call.settle(D("0.1"))

    task = asyncio.create_task(model_call())
    await inside.wait()
    assert (await _hold_status(db, user, "call-1")) == ("open", D(2))
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (await _hold_status(db, user, "call-1")) == ("released", D(0))
    assert await invariant_problems(db, user) == []


async def test_work_that_fails_releases_and_work_that_settles_is_charged(db: Database) -> None:
    user = await add_user(db)
    await grant(db, user, "10")
    with pytest.raises(RuntimeError):
        async with held_credits(db, CONFIG, user, D("0.4"), key="fails"):
            raise RuntimeError("the model call failed")
    async with held_credits(db, CONFIG, user, D("0.4"), key="works") as call:
        call.settle(D("0.1"))
    assert call.charge is not None and call.charge.entry.amount == D("-0.5")
    async with held_credits(db, CONFIG, user, D("0.4"), key="says-nothing"):
        pass
    assert (await _hold_status(db, user, "fails"))[0] == "released"
    assert (await _hold_status(db, user, "says-nothing")) == ("released", D(0))
    assert await invariant_problems(db, user) == []


async def test_a_killed_holder_s_hold_is_expired_by_the_sweeper_exactly_once(
    db: Database, db_url: str
) -> None:
    user = await add_user(db)
    await grant(db, user, "10")
    child = subprocess.Popen(
        [sys.executable, str(HOLDER), db_url, user, "hang", "dying-call", "30"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "held"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    assert (await _hold_status(db, user, "dying-call")) == ("open", D(1))
    provider = TestPaymentProvider()
    early = await sweep(db, CONFIG, provider, clock=Clock(datetime.now(UTC) + timedelta(seconds=5)))
    assert early.expired == []  # not yet expired: left alone
    later = Clock(datetime.now(UTC) + timedelta(seconds=31))
    first = await sweep(db, CONFIG, provider, clock=later)
    second = await sweep(db, CONFIG, provider, clock=later)
    assert [h.key for h in first.expired] == ["dying-call"] and second.expired == []
    assert (await _hold_status(db, user, "dying-call")) == ("expired", D(0))
    assert await _expired_audits(db, user) == 1
    assert await invariant_problems(db, user) == []


async def test_concurrent_sweeps_expire_each_hold_once(db: Database, clock: Clock) -> None:
    user = await add_user(db)
    await grant(db, user, "50")
    async with as_user(db, user, clock) as ledger:
        for i in range(20):
            await ledger.hold(user, D("0.2"), key=f"k{i}")
    clock.advance(hours=1)
    reports = await asyncio.gather(*(sweep(db, CONFIG, TestPaymentProvider(), clock=clock) for _ in range(4)))
    assert sorted(h.key for r in reports for h in r.expired) == sorted(f"k{i}" for i in range(20))
    assert await _expired_audits(db, user) == 20
    assert await invariant_problems(db, user) == []
