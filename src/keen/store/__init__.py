"""Storage: SQLAlchemy tables, Alembic migrations and repositories.

The names below load on first use (PEP 562): `keen.store.sqlite_reads` and `keen.store.actor`
are imported without SQLAlchemy by the read commands."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from keen.store.db import Database
    from keen.store.repo import SessionRepository, SqlEventStore

__all__ = ["Database", "SessionRepository", "SqlEventStore"]


def __getattr__(name: str) -> Any:
    if name == "Database":
        from keen.store.db import Database

        return Database
    if name in ("SessionRepository", "SqlEventStore"):
        from keen.store import repo

        return getattr(repo, name)
    raise AttributeError(f"module 'keen.store' has no attribute {name!r}")
