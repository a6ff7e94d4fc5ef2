"""Concurrent holds never overdraw: 200 holds at once against a balance that covers exactly k
of them, from separate processes (SQLite: separate connections and write locks; PostgreSQL:
separate connections and row locks), leave exactly k held and the invariant true."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

from keen.store import Database
from ledgerkit import add_user, as_user, grant, invariant_problems

HOLDER = Path(__file__).with_name("holder_process.py")
COVERED = 37  # holds of 1 credit the balance covers


def _run_holders(url: str, user_id: str, processes: int, total: int) -> list[dict[str, int]]:
    start_at = time.time() + 3.0  # every process imported and connected by then
    share = [total // processes + (1 if i < total % processes else 0) for i in range(processes)]
    children = [
        subprocess.Popen(
            [sys.executable, str(HOLDER), url, user_id, str(n), f"p{i}", str(start_at)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for i, n in enumerate(share)
    ]
    outputs = [child.communicate(timeout=120)[0] for child in children]
    assert all(child.returncode == 0 for child in children)
    return [json.loads(out) for out in outputs]


async def test_200_concurrent_holds_over_exactly_k_credits_hold_exactly_k(db: Database, db_url: str) -> None:
    user = await add_user(db)
    await grant(db, user, str(COVERED))
    # PostgreSQL: fewer processes, each with its pool of connections (the server allows 100).
    count = 8 if db_url.startswith("sqlite") else 3
    results = _run_holders(db_url, user, count, 200)
    assert sum(r["held"] for r in results) == COVERED
    assert sum(r["refused"] for r in results) == 200 - COVERED
    async with as_user(db, user) as ledger:
        account = await ledger.account(user)
    assert (account.balance, account.held, account.available) == (Decimal(COVERED), Decimal(COVERED), 0)
    assert await invariant_problems(db, user) == []
