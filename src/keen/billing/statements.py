"""The statements of the ledger's hot path (a hold, a charge, a release), built once: building
and caching a statement costs more than running it. Each takes its values as bound parameters
named `p_*` (never a column's name, which an UPDATE would take for a SET value)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import String, bindparam, case, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from keen.billing import limits
from keen.billing.tables import ACCOUNTS, ENTRIES, HOLDS
from keen.store.models import Credits, UTCDateTime

A, H = ACCOUNTS.c, HOLDS.c
USER = bindparam("p_user", type_=String())
KEY = bindparam("p_key", type_=String())
HOLD_ID = bindparam("p_hold", type_=String())
STATUS = bindparam("p_status", type_=String())
DAY = bindparam("p_day", type_=String())
MONTH = bindparam("p_month", type_=String())
NOW = bindparam("p_now", type_=UTCDateTime())
AMOUNT = bindparam("p_amount", type_=Credits())
DUE = bindparam("p_due", type_=Credits())
CHARGED = bindparam("p_charged", type_=Credits())
HELD = bindparam("p_held", type_=Credits())
FREED = bindparam("p_freed", type_=Credits())

HOLD_BY_KEY = select(HOLDS).where(H.user_id == USER, H.key == KEY)

# A hold: reserve `amount` when it is available and within both limits, in one statement.
RESERVE = (
    update(ACCOUNTS)
    .where(
        A.user_id == USER,
        A.unlimited.is_(False),
        A.balance - A.held >= AMOUNT,
        limits.within_limits(AMOUNT, DAY, MONTH),
    )
    .values(held=A.held + AMOUNT, updated_at=NOW, **limits.hold_counters(AMOUNT, DAY, MONTH))
)
# Give back what a hold placed in DAY / MONTH reserved.
FREE = (
    update(ACCOUNTS)
    .where(A.user_id == USER)
    .values(held=A.held - AMOUNT, updated_at=NOW, **limits.freed_counters(AMOUNT, DAY, MONTH))
)
INSERT_HOLD: dict[str, Any] = {
    name: dialect_insert(HOLDS).on_conflict_do_nothing(index_elements=["user_id", "key"]).returning(H.id)
    for name, dialect_insert in (("postgresql", pg_insert), ("sqlite", sqlite_insert))
}
# Capture an open hold: charged the due credits, at most the hold's amount.
CAPTURE_OPEN = (
    update(HOLDS)
    .where(H.user_id == USER, H.key == KEY, H.status == "open", H.bypass.is_(False))
    .values(status="captured", ended_at=NOW, charged=case((H.amount > DUE, DUE), else_=H.amount))
    .returning(*HOLDS.c)
)
# Take the charged credits, end the hold's reservation and give the limits what it did not use.
SETTLE = (
    update(ACCOUNTS)
    .where(A.user_id == USER)
    .values(
        balance=A.balance - CHARGED,
        held=A.held - HELD,
        lifetime_spent=A.lifetime_spent + CHARGED,
        updated_at=NOW,
        **limits.freed_counters(FREED, DAY, MONTH),
    )
    .returning(A.balance, A.auto_recharge_enabled, A.auto_recharge_threshold)
)
END_OPEN_BY_KEY = (
    update(HOLDS)
    .where(H.user_id == USER, H.key == KEY, H.status == "open")
    .values(status=STATUS, ended_at=NOW)
    .returning(*HOLDS.c)
)
END_OPEN_BY_ID = (
    update(HOLDS)
    .where(H.id == HOLD_ID, H.status == "open")
    .values(status=STATUS, ended_at=NOW)
    .returning(*HOLDS.c)
)
APPEND_ENTRY = insert(ENTRIES).returning(*ENTRIES.c)
