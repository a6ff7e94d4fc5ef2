"""sessions and session_events

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Money: NUMERIC(20, 6) on PostgreSQL; text on SQLite, which has no exact decimal type.
MONEY = sa.Numeric(20, 6).with_variant(sa.String(40), "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "sessions",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("short_id", sa.String(12), nullable=False),
        sa.Column("root_id", sa.String(32), nullable=False),
        sa.Column("parent_id", sa.String(32), sa.ForeignKey("sessions.id"), nullable=True),
        sa.Column("user_id", sa.String(32), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False, server_default="agent"),
        sa.Column("branch_name", sa.String(200), nullable=False, server_default="main"),
        sa.Column("git_branch", sa.String(300), nullable=True),
        sa.Column("specialization", sa.String(32), nullable=True),
        sa.Column("depth", sa.Integer, nullable=False, server_default="0"),
        sa.Column("vision", sa.Text, nullable=False),
        sa.Column("workspace", sa.Text, nullable=False),
        sa.Column("model", sa.String(300), nullable=False),
        sa.Column("options", sa.JSON, nullable=False),
        sa.Column("status", sa.String(32), nullable=False, server_default="created"),
        sa.Column("phase", sa.String(16), nullable=False, server_default="EXPLORE"),
        sa.Column("iterations", sa.Integer, nullable=False, server_default="0"),
        sa.Column("tool_calls", sa.Integer, nullable=False, server_default="0"),
        sa.Column("input_tokens", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("output_tokens", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("cache_read_tokens", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("cache_write_tokens", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("cost_usd", MONEY, nullable=False, server_default="0"),
        sa.Column("credits", MONEY, nullable=False, server_default="0"),
        sa.Column("start_commit", sa.String(64), nullable=True),
        sa.Column("pid", sa.Integer, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("started_at", TS, nullable=True),
        sa.Column("finished_at", TS, nullable=True),
        sa.Column("summary", sa.Text, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
    )
    op.create_index("ix_sessions_short_id", "sessions", ["short_id"])
    op.create_index("ix_sessions_root_id", "sessions", ["root_id"])
    op.create_index("ix_sessions_user_id", "sessions", ["user_id"])
    op.create_index("ix_sessions_status", "sessions", ["status"])
    op.create_table(
        "session_events",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True
        ),
        sa.Column("root_id", sa.String(32), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("session_id", sa.String(32), sa.ForeignKey("sessions.id"), nullable=False),
        sa.Column("parent_id", sa.String(32), nullable=True),
        sa.Column("type", sa.String(40), nullable=False),
        sa.Column("ts", TS, nullable=False),
        sa.Column("data", sa.JSON, nullable=False),
    )
    op.create_index("uq_session_events_root_seq", "session_events", ["root_id", "seq"], unique=True)
    op.create_index("ix_session_events_session_id", "session_events", ["session_id"])


def downgrade() -> None:
    op.drop_table("session_events")
    op.drop_table("sessions")
