"""the credit ledger: accounts, holds, transactions, payments, idempotency keys; their RLS

Amounts are NUMERIC(18, 6) on PostgreSQL and integer micro-credits on SQLite (keen.store.models
.Credits), so that the ledger's conditional updates and sums are exact on both. The database
refuses an account whose available credits (balance − held) would be negative, a second usage
record for one hold and a second crediting of one payment.

On PostgreSQL every table here is a tenant table, with the policy of 0003 (enabled, forced, the
acting user's rows or an admin's transaction); the application role may not update or delete
ledger entries (append-only, as the audit log).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-11
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
CREDITS = sa.Numeric(18, 6).with_variant(sa.BigInteger(), "sqlite")
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
APP_ROLE = "keen_app"
BILLING_TABLES = ("credit_accounts", "credit_holds", "payments", "credit_transactions", "idempotency_keys")
# The policy of 0003, repeated (a migration never imports another): NULLIF because a pooled
# connection reports '' for the setting after a transaction that set it has ended.
TENANT_CONDITION = (
    "user_id = NULLIF(current_setting('app.user_id', true), '') "
    "OR current_setting('app.is_admin', true) = 'true'"
)
POLICY = "tenant_isolation"


def _user() -> sa.Column:
    return sa.Column("user_id", sa.String(32), sa.ForeignKey("users.id"), nullable=False)


def _credits(name: str, nullable: bool = False, default: bool = False) -> sa.Column:
    return sa.Column(name, CREDITS, nullable=nullable, server_default="0" if default else None)


def upgrade() -> None:
    op.create_table(
        "credit_accounts",
        sa.Column("user_id", sa.String(32), sa.ForeignKey("users.id"), primary_key=True),
        _credits("balance", default=True),
        _credits("held", default=True),
        _credits("lifetime_purchased", default=True),
        _credits("lifetime_spent", default=True),
        sa.Column("unlimited", sa.Boolean, nullable=False, server_default=sa.false()),
        _credits("daily_limit"),
        _credits("monthly_limit"),
        sa.Column("day_key", sa.String(10), nullable=False, server_default=""),
        _credits("day_used", default=True),
        sa.Column("month_key", sa.String(7), nullable=False, server_default=""),
        _credits("month_used", default=True),
        sa.Column("auto_recharge_enabled", sa.Boolean, nullable=False, server_default=sa.false()),
        _credits("auto_recharge_threshold"),
        _credits("auto_recharge_amount"),
        _credits("auto_recharge_monthly_cap"),
        sa.Column("recharge_month_key", sa.String(7), nullable=False, server_default=""),
        _credits("recharge_month_total", default=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.CheckConstraint("held >= 0", name="ck_credit_accounts_held"),
        sa.CheckConstraint("balance >= held", name="ck_credit_accounts_available"),
        sa.CheckConstraint("daily_limit > 0 AND monthly_limit > 0", name="ck_credit_accounts_limits"),
    )
    op.create_table(
        "credit_holds",
        sa.Column("id", sa.String(32), primary_key=True),
        _user(),
        sa.Column("key", sa.String(200), nullable=False),
        _credits("amount"),
        _credits("provider_cost"),
        sa.Column("bypass", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("status", sa.String(16), nullable=False, server_default="open"),
        sa.Column("session_id", sa.String(32), nullable=True),
        sa.Column("model", sa.String(300), nullable=True),
        sa.Column("day_key", sa.String(10), nullable=False),
        sa.Column("month_key", sa.String(7), nullable=False),
        _credits("charged", nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("ended_at", TS, nullable=True),
        sa.CheckConstraint("amount >= 0", name="ck_credit_holds_amount"),
        sa.CheckConstraint(
            "status IN ('open', 'captured', 'released', 'expired')", name="ck_credit_holds_status"
        ),
    )
    op.create_index("uq_credit_holds_user_key", "credit_holds", ["user_id", "key"], unique=True)
    op.create_index("ix_credit_holds_status_expires", "credit_holds", ["status", "expires_at"])
    op.create_index("ix_credit_holds_session_id", "credit_holds", ["session_id"])
    op.create_table(
        "payments",
        sa.Column("id", sa.String(32), primary_key=True),
        _user(),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("provider_ref", sa.String(200), nullable=True, unique=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="pending"),
        _credits("amount"),
        sa.Column("request_key", sa.String(200), nullable=False, unique=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("completed_at", TS, nullable=True),
        sa.CheckConstraint("amount > 0", name="ck_payments_amount"),
        sa.CheckConstraint("kind IN ('purchase', 'auto_recharge')", name="ck_payments_kind"),
        sa.CheckConstraint("status IN ('pending', 'succeeded', 'failed')", name="ck_payments_status"),
    )
    op.create_index("ix_payments_user_id", "payments", ["user_id"])
    op.create_table(
        "credit_transactions",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        _user(),
        sa.Column("type", sa.String(16), nullable=False),
        _credits("amount"),
        _credits("balance_after"),
        _credits("provider_cost", nullable=True),
        _credits("markup", nullable=True),
        _credits("unbilled", nullable=True),
        sa.Column("session_id", sa.String(32), nullable=True),
        sa.Column("hold_id", sa.String(32), sa.ForeignKey("credit_holds.id"), nullable=True, unique=True),
        sa.Column("payment_id", sa.String(32), sa.ForeignKey("payments.id"), nullable=True, unique=True),
        sa.Column("refund_of", ID, sa.ForeignKey("credit_transactions.id"), nullable=True),
        sa.Column("model", sa.String(300), nullable=True),
        sa.Column("idempotency_key", sa.String(200), nullable=True),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("actor", sa.String(320), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.CheckConstraint(
            "type IN ('purchase', 'usage', 'refund', 'adjustment', 'admin_bypass')",
            name="ck_credit_transactions_type",
        ),
        sa.CheckConstraint("balance_after >= 0", name="ck_credit_transactions_balance"),
    )
    op.create_index("ix_credit_transactions_user_created", "credit_transactions", ["user_id", "created_at"])
    op.create_index("ix_credit_transactions_type_created", "credit_transactions", ["type", "created_at"])
    op.create_index("ix_credit_transactions_session_id", "credit_transactions", ["session_id"])
    op.create_table(
        "idempotency_keys",
        sa.Column("user_id", sa.String(32), sa.ForeignKey("users.id"), primary_key=True),
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("status_code", sa.Integer, nullable=True),
        sa.Column("response", sa.JSON, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
    )
    op.create_index("ix_idempotency_keys_expires_at", "idempotency_keys", ["expires_at"])
    if op.get_bind().dialect.name == "postgresql":
        _enable_row_level_security()


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _disable_row_level_security()
    op.drop_index("ix_idempotency_keys_expires_at", "idempotency_keys")
    op.drop_table("idempotency_keys")
    op.drop_index("ix_credit_transactions_session_id", "credit_transactions")
    op.drop_index("ix_credit_transactions_type_created", "credit_transactions")
    op.drop_index("ix_credit_transactions_user_created", "credit_transactions")
    op.drop_table("credit_transactions")
    op.drop_index("ix_payments_user_id", "payments")
    op.drop_table("payments")
    op.drop_index("ix_credit_holds_session_id", "credit_holds")
    op.drop_index("ix_credit_holds_status_expires", "credit_holds")
    op.drop_index("uq_credit_holds_user_key", "credit_holds")
    op.drop_table("credit_holds")
    op.drop_table("credit_accounts")


def _enable_row_level_security() -> None:
    for table in BILLING_TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY {POLICY} ON {table} FOR ALL "
            f"USING ({TENANT_CONDITION}) WITH CHECK ({TENANT_CONDITION})"
        )
    # 0003's default privileges granted these tables to the app role; the ledger is append-only.
    tables = ", ".join(BILLING_TABLES)
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {tables} TO {APP_ROLE}")
    op.execute(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {APP_ROLE}")
    op.execute(f"REVOKE UPDATE, DELETE ON credit_transactions FROM {APP_ROLE}")


def _disable_row_level_security() -> None:
    for table in BILLING_TABLES:
        op.execute(f"DROP POLICY IF EXISTS {POLICY} ON {table}")
        op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
    op.execute(f"REVOKE ALL ON {', '.join(BILLING_TABLES)} FROM {APP_ROLE}")
