"""A fresh PostgreSQL database per test, on the server running on this machine."""

from pgdb import pg_url

__all__ = ["pg_url"]
