"""accounts, tokens, recovery codes, login throttles, the audit chain; row-level security

Adds the tables of accounts and auth (users, recovery_codes, auth_tokens: refresh tokens with
their family and successor, API keys with prefix, scopes, expiry and hourly limit), the failed
login counters behind lockout, and the chained audit log with its head row.

On PostgreSQL every tenant table (a `user_id` column saying whose row it is) gets row-level
security, enabled and forced (so the tables' owner is filtered too), with one policy: a row is
visible and writable when its `user_id` is the transaction's acting user
(`set_config('app.user_id', …, true)`, see keen.store.db.set_acting_user) or the transaction acts
as an admin (`app.is_admin`). The server connects as a member of the `keen_app` role, which is
neither the owner nor BYPASSRLS; this migration grants it what it needs (the audit log: read and
append only). See docs/deployment.md, "PostgreSQL roles and row-level security".

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
GENESIS_HASH = "0" * 64
APP_ROLE = "keen_app"
TENANT_TABLES = ("sessions", "session_events", "auth_tokens", "recovery_codes", "audit_logs")
# The policy's condition, once: NULLIF because a pooled connection reports '' (not NULL) for the
# setting after a transaction that set it has ended.
TENANT_CONDITION = (
    "user_id = NULLIF(current_setting('app.user_id', true), '') "
    "OR current_setting('app.is_admin', true) = 'true'"
)
POLICY = "tenant_isolation"


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("email", sa.String(320), nullable=False, unique=True),
        sa.Column("username", sa.String(64), nullable=False, unique=True),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("password_hash", sa.String(300), nullable=False),
        sa.Column("role", sa.String(16), nullable=False, server_default="user"),
        sa.Column("status", sa.String(16), nullable=False, server_default="active"),
        sa.Column("privileges", sa.JSON, nullable=False),
        sa.Column("mfa_enabled", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("totp_secret", sa.String(64), nullable=True),
        sa.Column("totp_last_step", sa.BigInteger, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("last_login_at", TS, nullable=True),
        sa.CheckConstraint("role IN ('user', 'admin', 'super_admin')", name="ck_users_role"),
        sa.CheckConstraint("status IN ('active', 'suspended', 'banned')", name="ck_users_status"),
    )
    op.create_index("ix_users_status", "users", ["status"])
    op.create_table(
        "recovery_codes",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("user_id", sa.String(32), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("code_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("used_at", TS, nullable=True),
    )
    op.create_index("ix_recovery_codes_user_id", "recovery_codes", ["user_id"])
    op.create_table(
        "auth_tokens",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("user_id", sa.String(32), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("family_id", sa.String(32), nullable=True),
        sa.Column("replaced_by", sa.String(32), sa.ForeignKey("auth_tokens.id"), nullable=True),
        sa.Column("name", sa.String(100), nullable=True),
        sa.Column("prefix", sa.String(16), nullable=True),
        sa.Column("scopes", sa.JSON, nullable=False),
        sa.Column("rate_limit_per_hour", sa.Integer, nullable=True),
        sa.Column("window_started_at", TS, nullable=True),
        sa.Column("window_uses", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=True),
        sa.Column("revoked_at", TS, nullable=True),
        sa.Column("last_used_at", TS, nullable=True),
        sa.CheckConstraint("kind IN ('refresh', 'api_key')", name="ck_auth_tokens_kind"),
    )
    op.create_index("ix_auth_tokens_user_id", "auth_tokens", ["user_id"])
    op.create_index("ix_auth_tokens_family_id", "auth_tokens", ["family_id"])
    op.create_table(
        "login_throttles",
        sa.Column("scope", sa.String(16), primary_key=True),
        sa.Column("subject", sa.String(320), primary_key=True),
        sa.Column("failures", sa.Integer, nullable=False, server_default="0"),
        sa.Column("window_started_at", TS, nullable=False),
        sa.Column("locked_until", TS, nullable=True),
    )
    op.create_table(
        "audit_logs",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("ts", TS, nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("risk", sa.String(16), nullable=False),
        sa.Column("user_id", sa.String(32), nullable=True),
        sa.Column("actor", sa.String(320), nullable=False),
        sa.Column("ip", sa.String(64), nullable=True),
        sa.Column("request_id", sa.String(128), nullable=True),
        sa.Column("target", sa.String(200), nullable=True),
        sa.Column("details", sa.JSON, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_index("ix_audit_logs_ts", "audit_logs", ["ts"])
    op.create_index("ix_audit_logs_action", "audit_logs", ["action"])
    op.create_index("ix_audit_logs_user_id", "audit_logs", ["user_id"])
    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("last_seq", sa.BigInteger, nullable=False),
        sa.Column("last_hash", sa.String(64), nullable=False),
    )
    op.execute(f"INSERT INTO audit_head (id, last_seq, last_hash) VALUES (1, 0, '{GENESIS_HASH}')")
    if op.get_bind().dialect.name == "postgresql":
        _enable_row_level_security()


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _disable_row_level_security()
    op.drop_table("audit_head")
    op.drop_index("ix_audit_logs_user_id", "audit_logs")
    op.drop_index("ix_audit_logs_action", "audit_logs")
    op.drop_index("ix_audit_logs_ts", "audit_logs")
    op.drop_table("audit_logs")
    op.drop_table("login_throttles")
    op.drop_index("ix_auth_tokens_family_id", "auth_tokens")
    op.drop_index("ix_auth_tokens_user_id", "auth_tokens")
    op.drop_table("auth_tokens")
    op.drop_index("ix_recovery_codes_user_id", "recovery_codes")
    op.drop_table("recovery_codes")
    op.drop_index("ix_users_status", "users")
    op.drop_table("users")


def _enable_row_level_security() -> None:
    _ensure_app_role()
    for table in TENANT_TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY {POLICY} ON {table} FOR ALL "
            f"USING ({TENANT_CONDITION}) WITH CHECK ({TENANT_CONDITION})"
        )
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {APP_ROLE}")
    op.execute(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {APP_ROLE}")
    # The audit log is append-only for the server; alembic's bookkeeping is read-only to it.
    op.execute(f"REVOKE UPDATE, DELETE ON audit_logs, alembic_version FROM {APP_ROLE}")
    op.execute(f"REVOKE INSERT ON alembic_version FROM {APP_ROLE}")
    op.execute(f"REVOKE INSERT, DELETE ON audit_head FROM {APP_ROLE}")
    # Tables of later migrations (run by the same owner) are granted the same way.
    op.execute(
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {APP_ROLE}"
    )
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {APP_ROLE}")


def _disable_row_level_security() -> None:
    for table in TENANT_TABLES:
        op.execute(f"DROP POLICY IF EXISTS {POLICY} ON {table}")
        op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
    op.execute(
        f"""
        DO $$ BEGIN
          IF EXISTS (SELECT FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN
            ALTER DEFAULT PRIVILEGES IN SCHEMA public
              REVOKE SELECT, INSERT, UPDATE, DELETE ON TABLES FROM {APP_ROLE};
            ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE USAGE, SELECT ON SEQUENCES FROM {APP_ROLE};
            REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {APP_ROLE};
            REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {APP_ROLE};
          END IF;
        END $$
        """
    )


def _ensure_app_role() -> None:
    """The group role the server's login role belongs to: created when missing and the migrating
    role may create roles; otherwise the operator creates it first (docs/deployment.md)."""
    op.execute(
        f"""
        DO $$ BEGIN
          IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN
            BEGIN
              CREATE ROLE {APP_ROLE} NOLOGIN NOBYPASSRLS;
            EXCEPTION
              WHEN duplicate_object OR unique_violation THEN NULL;  -- created meanwhile
              WHEN insufficient_privilege THEN
                RAISE EXCEPTION 'the role {APP_ROLE} does not exist and this role may not create it: '
                  'create it first (CREATE ROLE {APP_ROLE} NOLOGIN), see docs/deployment.md';
            END;
          END IF;
        END $$
        """
    )
