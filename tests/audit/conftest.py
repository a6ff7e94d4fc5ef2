"""Audit tests run on SQLite files and on the PostgreSQL of this machine."""

from pgdb import pg_url

__all__ = ["pg_url"]
