"""The billing tables as SQLAlchemy Core tables (the ledger writes with Core statements: its
conditional updates and RETURNING clauses, with no ORM identity map to go stale)."""

from __future__ import annotations

from typing import cast

from sqlalchemy import Table

from keen.store.models import (
    CreditAccountRow,
    CreditHoldRow,
    CreditTransactionRow,
    IdempotencyKeyRow,
    PaymentRow,
)

ACCOUNTS = cast(Table, CreditAccountRow.__table__)
HOLDS = cast(Table, CreditHoldRow.__table__)
ENTRIES = cast(Table, CreditTransactionRow.__table__)
PAYMENTS = cast(Table, PaymentRow.__table__)
IDEMPOTENCY_KEYS = cast(Table, IdempotencyKeyRow.__table__)
