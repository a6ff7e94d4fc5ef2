"""The credit ledger under concurrency: N holders doing hold → charge against one account, on a
SQLite file and on this machine's PostgreSQL (as a role of `keen_app`, so row-level security
applies as on a server).

Each holder is an asyncio task making `--cycles` model calls: a hold of the call's worst case,
then a charge of its actual cost (a unit of work each, as a metered run makes them). The holders
are spread over `--processes` processes (separate connections; on SQLite, separate write locks)
started together; in each process they share its pool of 15 connections, waiting their turn for
one in order. The account is funded for about 70% of what they would spend, so the last
holds race for the last credits and are refused.

Figures per database and N: holds+charges per second (wall time of the whole run), the
latency of one hold → charge cycle (p50, p99, ms), refusals, and the overdraft count: credits
charged beyond what the account had, and invariant problems of the ledger afterwards (both
must be 0).

    python bench/ledger.py [--holders 50 200] [--cycles 10] [--backends sqlite postgresql] [--record]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from _common import add_record_flag, percentile, write_results

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
WORST = Decimal("0.01")  # USD: 0.05 credits held per call with the default markup
ACTUAL = Decimal("0.008")  # USD: 0.04 credits charged
FUNDED_FRACTION = Decimal("0.7")
POOL = 15  # SQLAlchemy's default pool: 5 connections and 10 more on demand


def _settings() -> Any:
    """Limits out of the way: the benchmark measures the race for the balance."""
    from keen.config import Settings

    return Settings(KEEN_CREDIT_DAILY_LIMIT="1000000", KEEN_CREDIT_MONTHLY_LIMIT="1000000")


async def _holder(
    db: Any, config: Any, user_id: str, name: str, cycles: int, connections: asyncio.Semaphore
) -> tuple[list[float], int]:
    from keen.billing import Ledger
    from keen.errors import InsufficientCredits
    from keen.store.db import set_acting_user

    latencies: list[float] = []
    refused = 0
    for n in range(cycles):
        key = f"{name}-{n}"
        started = time.perf_counter()
        try:
            async with connections, db.transaction() as session:
                await set_acting_user(session, user_id, False)
                await Ledger(session, config).hold(user_id, WORST, key=key)
        except InsufficientCredits:
            refused += 1
            continue
        async with connections, db.transaction() as session:
            await set_acting_user(session, user_id, False)
            await Ledger(session, config).charge(user_id, key, ACTUAL)
        latencies.append(time.perf_counter() - started)
    return latencies, refused


async def _worker(url: str, user_id: str, holders: int, cycles: int, prefix: str, start_at: float) -> None:
    from keen.billing import LedgerConfig
    from keen.store import Database

    db = Database(url)
    config = LedgerConfig.from_settings(_settings())
    try:
        # A process has a pool of POOL connections: its other holders wait their turn in order
        # (as requests of a server queue for its pool), not on the pool's 30 s checkout timeout.
        connections = asyncio.Semaphore(POOL)
        await asyncio.sleep(max(start_at - time.time(), 0))
        results = await asyncio.gather(
            *(_holder(db, config, user_id, f"{prefix}-{i}", cycles, connections) for i in range(holders))
        )
    finally:
        await db.dispose()
    latencies = [value for found, _ in results for value in found]
    print(json.dumps({"latencies": latencies, "refused": sum(r for _, r in results)}))


async def _setup(url: str, calls: int) -> tuple[str, Decimal]:
    """A user whose account covers about 70% of `calls` charges; its id and balance."""
    from sqlalchemy import insert

    from keen.billing import Ledger, LedgerConfig
    from keen.store import Database
    from keen.store.db import set_acting_user
    from keen.store.models import UserRow

    db = Database(url)
    user_id = uuid.uuid4().hex
    now = datetime.now(UTC)
    funded = (Decimal(calls) * ACTUAL * 5 * FUNDED_FRACTION).quantize(Decimal("0.000001"))
    try:
        async with db.transaction() as session:
            await set_acting_user(session, None, True)
            await session.execute(
                insert(UserRow).values(
                    id=user_id,
                    email=f"{user_id}@bench.invalid",
                    username=user_id[:20],
                    display_name="bench",
                    password_hash="-",
                    privileges=[],
                    created_at=now,
                    updated_at=now,
                )
            )
            ledger = Ledger(session, LedgerConfig.from_settings(_settings()), actor="cli")
            await ledger.adjust(user_id, funded, reason="benchmark funds")
    finally:
        await db.dispose()
    return user_id, funded


async def _outcome(url: str, user_id: str, funded: Decimal) -> dict[str, Any]:
    from sqlalchemy import func, select

    from keen.billing.invariant import problems
    from keen.store import Database
    from keen.store.db import set_acting_user
    from keen.store.models import CreditTransactionRow

    db = Database(url)
    try:
        async with db.transaction() as session:
            await set_acting_user(session, None, True)
            charged = (
                await session.execute(
                    select(func.sum(CreditTransactionRow.amount)).where(
                        CreditTransactionRow.user_id == user_id, CreditTransactionRow.type == "usage"
                    )
                )
            ).scalar() or Decimal(0)
            found = await problems(session, user_id)
    finally:
        await db.dispose()
    overdrawn = max(-charged - funded, Decimal(0))
    return {"charged": str(-charged), "overdraft_credits": str(overdrawn), "invariant_problems": found}


def run(url: str, holders: int, cycles: int, processes: int) -> dict[str, Any]:
    user_id, funded = asyncio.run(_setup(url, holders * cycles))
    start_at = time.time() + 4.0
    share = [holders // processes + (1 if i < holders % processes else 0) for i in range(processes)]
    children = [
        subprocess.Popen(
            [sys.executable, __file__, "--worker", url, user_id, str(n), str(cycles), f"w{i}", str(start_at)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for i, n in enumerate(share)
        if n
    ]
    outputs = [json.loads(child.communicate(timeout=1800)[0]) for child in children]
    wall = time.time() - start_at
    if any(child.returncode for child in children):
        raise SystemExit("a holder process failed")
    latencies = [value for out in outputs for value in out["latencies"]]
    refused = sum(out["refused"] for out in outputs)
    outcome = asyncio.run(_outcome(url, user_id, funded))
    operations = len(latencies) * 2 + refused  # holds (taken or refused) and charges
    overdrafts = (1 if Decimal(outcome["overdraft_credits"]) > 0 else 0) + len(outcome["invariant_problems"])
    return {
        "holders": holders,
        "processes": len(children),
        "cycles_per_holder": cycles,
        "charged_calls": len(latencies),
        "refused_holds": refused,
        "operations_per_second": round(operations / wall, 1),
        "cycle_latency_ms": {
            "p50": round(percentile(latencies, 0.5) * 1000, 2),
            "p99": round(percentile(latencies, 0.99) * 1000, 2),
        },
        "funded_credits": str(funded),
        "charged_credits": outcome["charged"],
        "overdraft_count": overdrafts,
        "invariant_problems": outcome["invariant_problems"],
    }


@contextmanager
def sqlite_database() -> Iterator[str]:
    from keen.store.db import run_migrations

    with tempfile.TemporaryDirectory(prefix="keen-bench-ledger-") as folder:
        url = f"sqlite+aiosqlite:///{folder}/keen.db"
        run_migrations(url)
        yield url


@contextmanager
def postgresql_database() -> Iterator[str]:
    """A fresh migrated database reached as a login role of `keen_app` (dropped afterwards)."""
    import psycopg

    from keen.store.db import run_migrations

    name, role = f"keen_bench_{uuid.uuid4().hex[:10]}", f"keen_bench_app_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        run_migrations(f"postgresql://postgres@127.0.0.1:5432/{name}")
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE ROLE "{role}" LOGIN IN ROLE keen_app')
        yield f"postgresql://{role}@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'DROP ROLE IF EXISTS "{role}"')


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        url, user_id, holders, cycles, prefix, start_at = sys.argv[2:8]
        asyncio.run(_worker(url, user_id, int(holders), int(cycles), prefix, float(start_at)))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--holders", type=int, nargs="+", default=[50, 200])
    parser.add_argument("--cycles", type=int, default=10, help="hold → charge cycles per holder")
    parser.add_argument("--processes", type=int, default=4, help="processes the holders are spread over")
    parser.add_argument(
        "--backends", nargs="+", choices=["sqlite", "postgresql"], default=["sqlite", "postgresql"]
    )
    add_record_flag(parser)
    args = parser.parse_args()
    figures: dict[str, Any] = {
        "worst_case_usd": str(WORST),
        "actual_usd": str(ACTUAL),
        "markup": "5",
        "runs": {},
    }
    for backend in args.backends:
        database = sqlite_database if backend == "sqlite" else postgresql_database
        for holders in args.holders:
            with database() as url:
                # PostgreSQL allows 100 connections here: 3 processes of at most 15 each.
                processes = args.processes if backend == "sqlite" else min(args.processes, 3)
                result = run(url, holders, args.cycles, processes)
            figures["runs"][f"{backend}_{holders}"] = result
            latency = result["cycle_latency_ms"]
            print(
                f"{backend:10} N={holders:3}: {result['operations_per_second']:7.1f} holds+charges/s, "
                f"cycle p50 {latency['p50']:.1f} ms p99 {latency['p99']:.1f} ms, "
                f"{result['refused_holds']} refused, overdrafts {result['overdraft_count']}"
            )
    path = write_results("ledger", figures, record=args.record)
    print(f"wrote {path}")
    if any(run["overdraft_count"] for run in figures["runs"].values()):
        raise SystemExit("OVERDRAFT: the ledger let holders spend credits the account did not have")


if __name__ == "__main__":
    os.environ.setdefault("KEEN_HOME", tempfile.mkdtemp(prefix="keen-bench-home-"))
    main()
