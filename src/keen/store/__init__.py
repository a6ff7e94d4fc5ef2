"""Storage: SQLAlchemy tables, Alembic migrations and repositories."""

from keen.store.db import Database
from keen.store.repo import SessionRepository, SqlEventStore

__all__ = ["Database", "SessionRepository", "SqlEventStore"]
