"""SQLAlchemy tables. Migrations (store/migrations) create them; these map them."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, ForeignKey, Index, Integer, Numeric, String, Text
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from keen.events.types import ROOT_BRANCH


class Money(TypeDecorator[Decimal]):
    """Exact decimals with 6 places: NUMERIC on PostgreSQL, text on SQLite (which has no decimal)."""

    impl = Numeric(20, 6)
    cache_ok = True
    QUANTUM = Decimal("0.000001")

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(40))
        return dialect.type_descriptor(Numeric(20, 6))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        exact = Decimal(value).quantize(self.QUANTUM)
        return format(exact, "f") if dialect.name == "sqlite" else exact

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        return None if value is None else Decimal(str(value)).quantize(self.QUANTUM)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on every backend (SQLite stores naive text and forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given for a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    pass


class SessionRow(Base):
    """One agent (root or child) or one conversation; a projection of its events."""

    __tablename__ = "sessions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    short_id: Mapped[str] = mapped_column(String(12), index=True)
    root_id: Mapped[str] = mapped_column(String(32), index=True)
    parent_id: Mapped[str | None] = mapped_column(String(32), ForeignKey("sessions.id"), nullable=True)
    user_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    kind: Mapped[str] = mapped_column(String(16), default="agent")
    branch_name: Mapped[str] = mapped_column(String(200), default=ROOT_BRANCH)
    git_branch: Mapped[str | None] = mapped_column(String(300), nullable=True)
    specialization: Mapped[str | None] = mapped_column(String(32), nullable=True)
    depth: Mapped[int] = mapped_column(Integer, default=0)
    vision: Mapped[str] = mapped_column(Text)
    workspace: Mapped[str] = mapped_column(Text)
    model: Mapped[str] = mapped_column(String(300))
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(32), default="created", index=True)
    phase: Mapped[str] = mapped_column(String(16), default="EXPLORE")
    iterations: Mapped[int] = mapped_column(Integer, default=0)
    tool_calls: Mapped[int] = mapped_column(Integer, default=0)
    input_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    output_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cache_read_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cache_write_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cost_usd: Mapped[Decimal] = mapped_column(Money(), default=Decimal(0))
    credits: Mapped[Decimal] = mapped_column(Money(), default=Decimal(0))
    start_commit: Mapped[str | None] = mapped_column(String(64), nullable=True)
    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # The root's event counter: the last `seq` handed out in the tree's stream.
    last_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    cancel_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # The lease of the process running this root: who, and when it last said it is alive.
    lease_owner: Mapped[str | None] = mapped_column(String(80), nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    summary: Mapped[str | None] = mapped_column(Text, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


class EventRow(Base):
    """The append-only log: `(root_id, seq)` is unique and gap-free per root session."""

    __tablename__ = "session_events"
    __table_args__ = (Index("uq_session_events_root_seq", "root_id", "seq", unique=True),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    root_id: Mapped[str] = mapped_column(String(32))
    seq: Mapped[int] = mapped_column(BigInteger)
    session_id: Mapped[str] = mapped_column(String(32), ForeignKey("sessions.id"), index=True)
    parent_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    user_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)  # the root's owner
    type: Mapped[str] = mapped_column(String(40))
    ts: Mapped[datetime] = mapped_column(UTCDateTime())
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class UserRow(Base):
    """An account. `privileges` are the admin scopes an `admin` holds (a `super_admin` holds all)."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(300))
    role: Mapped[str] = mapped_column(String(16), default="user")
    status: Mapped[str] = mapped_column(String(16), default="active", index=True)
    privileges: Mapped[list[str]] = mapped_column(JSON, default=list)
    mfa_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    # The TOTP secret: pending while `mfa_enabled` is false, in use once it is true.
    totp_secret: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # The newest TOTP time step accepted: a code of that step or an older one is a replay.
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class RecoveryCodeRow(Base):
    """One single-use MFA recovery code, stored as a keyed hash."""

    __tablename__ = "recovery_codes"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(32), ForeignKey("users.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class AuthTokenRow(Base):
    """A refresh token (kind `refresh`) or an API key (kind `api_key`), stored as a keyed hash.

    Refresh tokens of one login share a `family_id`; rotating one sets its `replaced_by` to its
    successor, so presenting a token that has a successor is a reuse. API keys carry a name, a
    displayable prefix, scopes, an hourly limit and the current hour's use count.
    """

    __tablename__ = "auth_tokens"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(32), ForeignKey("users.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    family_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    replaced_by: Mapped[str | None] = mapped_column(String(32), ForeignKey("auth_tokens.id"), nullable=True)
    name: Mapped[str | None] = mapped_column(String(100), nullable=True)
    prefix: Mapped[str | None] = mapped_column(String(16), nullable=True)
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    rate_limit_per_hour: Mapped[int | None] = mapped_column(Integer, nullable=True)
    window_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    window_uses: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class LoginThrottleRow(Base):
    """Failed logins of one account (scope `account`, subject the email) or one IP (scope `ip`)."""

    __tablename__ = "login_throttles"

    scope: Mapped[str] = mapped_column(String(16), primary_key=True)
    subject: Mapped[str] = mapped_column(String(320), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    window_started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class AuditLogRow(Base):
    """One audit entry. `hash` covers the entry's content and `prev_hash`, the previous entry's
    hash: editing, removing or reordering entries breaks the chain at the first one touched.
    `user_id` is the account the entry belongs to (who may read it)."""

    __tablename__ = "audit_logs"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    ts: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    action: Mapped[str] = mapped_column(String(64), index=True)
    risk: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    actor: Mapped[str] = mapped_column(String(320))
    ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    request_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    target: Mapped[str | None] = mapped_column(String(200), nullable=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHeadRow(Base):
    """The chain's newest entry (one row): appends lock it, and verify checks the chain ends
    where it says (so removing the newest entries is seen too)."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    last_hash: Mapped[str] = mapped_column(String(64))
