"""tenancy, seq counter, cancel requests and leases

Sessions get the root's seq counter (`last_seq`: seq is assigned in the appending transaction,
so two writers can never make a gap or a duplicate), a recorded cancel request, and a lease
(owner + heartbeat) that says which process runs them. Events carry their root's owner so
row-level security can filter them.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
LOCAL_USER_ID = "local"  # the owner of every session made before accounts existed


def upgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("last_seq", sa.BigInteger, nullable=False, server_default="0"))
        batch.add_column(sa.Column("cancel_requested_at", TS, nullable=True))
        batch.add_column(sa.Column("lease_owner", sa.String(80), nullable=True))
        batch.add_column(sa.Column("heartbeat_at", TS, nullable=True))
    with op.batch_alter_table("session_events") as batch:
        batch.add_column(sa.Column("user_id", sa.String(32), nullable=True))
    op.create_index("ix_session_events_user_id", "session_events", ["user_id"])
    op.execute(f"UPDATE sessions SET user_id = '{LOCAL_USER_ID}' WHERE user_id IS NULL")
    op.execute(
        "UPDATE sessions SET last_seq = COALESCE("
        "(SELECT MAX(e.seq) FROM session_events e WHERE e.root_id = sessions.id), 0) "
        "WHERE parent_id IS NULL"
    )
    op.execute(
        "UPDATE session_events SET user_id = "
        "(SELECT s.user_id FROM sessions s WHERE s.id = session_events.root_id)"
    )


def downgrade() -> None:
    op.drop_index("ix_session_events_user_id", "session_events")
    with op.batch_alter_table("session_events") as batch:
        batch.drop_column("user_id")
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("heartbeat_at")
        batch.drop_column("lease_owner")
        batch.drop_column("cancel_requested_at")
        batch.drop_column("last_seq")
