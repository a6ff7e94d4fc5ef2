"""A process that holds credits, for the tests that need other processes (run as a script).

    holder_process.py URL USER_ID COUNT PREFIX START_AT   place COUNT holds at once from START_AT
    holder_process.py URL USER_ID hang KEY TTL_SECONDS    place one hold, say so, then wait forever

The first prints {"held": n, "refused": m}; the second prints "held" once its hold is committed.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from datetime import timedelta
from decimal import Decimal

from keen.billing import Ledger, LedgerConfig
from keen.config import Settings
from keen.errors import InsufficientCredits
from keen.store import Database
from keen.store.db import set_acting_user

COST = Decimal("0.2")  # 1 credit with the default markup of 5


async def hold(
    db: Database, config: LedgerConfig, user_id: str, key: str, ttl: timedelta | None = None
) -> bool:
    try:
        async with db.transaction() as session:
            await set_acting_user(session, user_id, False)
            await Ledger(session, config).hold(user_id, COST, key=key, ttl=ttl)
    except InsufficientCredits:
        return False
    return True


async def main(url: str, user_id: str, count: str, key: str, last: str) -> None:
    db = Database(url)
    config = LedgerConfig.from_settings(Settings())
    try:
        if count == "hang":
            await hold(db, config, user_id, key, timedelta(seconds=float(last)))
            print("held", flush=True)
            await asyncio.sleep(3600)
            return
        await asyncio.sleep(max(float(last) - time.time(), 0))
        results = await asyncio.gather(*(hold(db, config, user_id, f"{key}-{i}") for i in range(int(count))))
        print(json.dumps({"held": sum(results), "refused": len(results) - sum(results)}), flush=True)
    finally:
        await db.dispose()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:6]))
