"""the run queue of distributed mode: procrastinate's schema, on PostgreSQL only

Distributed runs are procrastinate jobs in the same database (SPEC 1), deferred in the
transaction that creates their session; its tables, types and functions are created here so
that `keen db upgrade` is the one step an operator runs. The application role (`keen_app`) may
use them: procrastinate's tables hold no tenant data (a job carries only a session id).
SQLite has no queue: nothing to do there.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-12
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

APP_ROLE = "keen_app"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    from procrastinate.schema import SchemaManager

    exists = op.get_bind().exec_driver_sql("SELECT to_regclass('procrastinate_jobs')").scalar()
    if exists is None:
        _raw(SchemaManager.get_schema())
    _raw(
        f"""
        DO $$
        DECLARE name text;
        BEGIN
          FOR name IN SELECT tablename FROM pg_tables
                      WHERE schemaname = current_schema() AND tablename LIKE 'procrastinate%' LOOP
            EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I TO {APP_ROLE}', name);
          END LOOP;
          FOR name IN SELECT sequencename FROM pg_sequences
                      WHERE schemaname = current_schema() AND sequencename LIKE 'procrastinate%' LOOP
            EXECUTE format('GRANT USAGE, SELECT ON SEQUENCE %I TO {APP_ROLE}', name);
          END LOOP;
        END $$
        """
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    _raw(
        """
        DO $$
        DECLARE item record;
        BEGIN
          FOR item IN SELECT tablename FROM pg_tables
                      WHERE schemaname = current_schema() AND tablename LIKE 'procrastinate%' LOOP
            EXECUTE format('DROP TABLE IF EXISTS %I CASCADE', item.tablename);
          END LOOP;
          FOR item IN SELECT p.oid::regprocedure AS fn FROM pg_proc p
                      JOIN pg_namespace n ON n.oid = p.pronamespace
                      WHERE n.nspname = current_schema() AND p.proname LIKE 'procrastinate%' LOOP
            EXECUTE format('DROP FUNCTION IF EXISTS %s CASCADE', item.fn);
          END LOOP;
          FOR item IN SELECT t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
                      WHERE n.nspname = current_schema() AND t.typname LIKE 'procrastinate%'
                        AND t.typtype IN ('e', 'c') LOOP
            EXECUTE format('DROP TYPE IF EXISTS %I CASCADE', item.typname);
          END LOOP;
        END $$
        """
    )


def _raw(sql: str) -> None:
    """Run SQL as written: through the driver's own cursor with no parameters, so the `%` and
    `:` of procrastinate's schema are not taken for placeholders."""
    cursor = op.get_bind().connection.cursor()
    try:
        cursor.execute(sql)
    finally:
        cursor.close()
