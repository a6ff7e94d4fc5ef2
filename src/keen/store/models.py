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


class Credits(TypeDecorator[Decimal]):
    """Exact credit amounts with 6 places: NUMERIC(18, 6) on PostgreSQL, integer micro-credits on
    SQLite, so that SQL arithmetic, comparisons and SUM stay exact on both (SQLite would turn
    text or REAL into floats). Statements that compute with these columns bind their amounts
    with this type, which converts them the same way."""

    impl = Numeric(18, 6)
    cache_ok = True
    QUANTUM = Decimal("0.000001")
    MICROS = Decimal(1_000_000)

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(BigInteger())
        return dialect.type_descriptor(Numeric(18, 6))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, (Decimal, int)) or isinstance(value, bool):
            raise TypeError(f"credit amounts are Decimal, not {type(value).__name__}")
        exact = Decimal(value).quantize(self.QUANTUM)
        if exact != value:
            raise ValueError(f"{value} has more than 6 decimal places")
        return int(exact * self.MICROS) if dialect.name == "sqlite" else exact

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return (Decimal(int(value)) / self.MICROS).quantize(self.QUANTUM)
        return Decimal(value).quantize(self.QUANTUM)


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


# Billing (keen.billing): every amount is a `Credits` column; every row names its account's user.
_ID = BigInteger().with_variant(Integer, "sqlite")


class CreditAccountRow(Base):
    """One user's credits. `held` is the sum of the open holds; `available` = balance − held,
    and the database itself refuses a row where it would be negative. `day_used` / `month_used`
    are the credits charged and held in the UTC day `day_key` / month `month_key` (the limits
    count them); `recharge_month_total` is what auto-recharge took in `recharge_month_key`."""

    __tablename__ = "credit_accounts"

    user_id: Mapped[str] = mapped_column(String(32), ForeignKey("users.id"), primary_key=True)
    balance: Mapped[Decimal] = mapped_column(Credits(), default=Decimal(0))
    held: Mapped[Decimal] = mapped_column(Credits(), default=Decimal(0))
    lifetime_purchased: Mapped[Decimal] = mapped_column(Credits(), default=Decimal(0))
    lifetime_spent: Mapped[Decimal] = mapped_column(Credits(), default=Decimal(0))
    unlimited: Mapped[bool] = mapped_column(Boolean, default=False)
    daily_limit: Mapped[Decimal] = mapped_column(Credits())
    monthly_limit: Mapped[Decimal] = mapped_column(Credits())
    day_key: Mapped[str] = mapped_column(String(10), default="")
    day_used: Mapped[Decimal] = mapped_column(Credits(), default=Decimal(0))
    month_key: Mapped[str] = mapped_column(String(7), default="")
    month_used: Mapped[Decimal] = mapped_column(Credits(), default=Decimal(0))
    auto_recharge_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    auto_recharge_threshold: Mapped[Decimal] = mapped_column(Credits())
    auto_recharge_amount: Mapped[Decimal] = mapped_column(Credits())
    auto_recharge_monthly_cap: Mapped[Decimal] = mapped_column(Credits())
    recharge_month_key: Mapped[str] = mapped_column(String(7), default="")
    recharge_month_total: Mapped[Decimal] = mapped_column(Credits(), default=Decimal(0))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class CreditHoldRow(Base):
    """The worst case of one model call, reserved before it (`open`) until it is `captured`
    (charged), `released` or `expired` by the sweeper. `key` is the caller's id for it (a model
    call's id), unique per user, which makes holding, charging and releasing idempotent. A
    `bypass` hold belongs to an unlimited account: recorded, never counted in `held`."""

    __tablename__ = "credit_holds"
    __table_args__ = (
        Index("uq_credit_holds_user_key", "user_id", "key", unique=True),
        Index("ix_credit_holds_status_expires", "status", "expires_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(32), ForeignKey("users.id"))
    key: Mapped[str] = mapped_column(String(200))
    amount: Mapped[Decimal] = mapped_column(Credits())
    provider_cost: Mapped[Decimal] = mapped_column(Credits())
    bypass: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), default="open")
    session_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    model: Mapped[str | None] = mapped_column(String(300), nullable=True)
    day_key: Mapped[str] = mapped_column(String(10))
    month_key: Mapped[str] = mapped_column(String(7))
    charged: Mapped[Decimal | None] = mapped_column(Credits(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class CreditTransactionRow(Base):
    """The append-only ledger: the account's balance is the sum of its `amount`s, and each row
    says the balance after it. `provider_cost` (USD) and `markup` say how a usage amount was
    priced; `unbilled` is what a call cost that was not taken from the balance (all of an
    `admin_bypass`, the part of a usage above its hold)."""

    __tablename__ = "credit_transactions"
    __table_args__ = (
        Index("ix_credit_transactions_user_created", "user_id", "created_at"),
        Index("ix_credit_transactions_type_created", "type", "created_at"),
    )

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(String(32), ForeignKey("users.id"))
    type: Mapped[str] = mapped_column(String(16))
    amount: Mapped[Decimal] = mapped_column(Credits())
    balance_after: Mapped[Decimal] = mapped_column(Credits())
    provider_cost: Mapped[Decimal | None] = mapped_column(Credits(), nullable=True)
    markup: Mapped[Decimal | None] = mapped_column(Credits(), nullable=True)
    unbilled: Mapped[Decimal | None] = mapped_column(Credits(), nullable=True)
    session_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    hold_id: Mapped[str | None] = mapped_column(
        String(32), ForeignKey("credit_holds.id"), nullable=True, unique=True
    )
    payment_id: Mapped[str | None] = mapped_column(
        String(32), ForeignKey("payments.id"), nullable=True, unique=True
    )
    refund_of: Mapped[int | None] = mapped_column(_ID, ForeignKey("credit_transactions.id"), nullable=True)
    model: Mapped[str | None] = mapped_column(String(300), nullable=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    actor: Mapped[str | None] = mapped_column(String(320), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class PaymentRow(Base):
    """One payment through a provider: a purchase or an auto-recharge. `provider_ref` (the
    provider's payment id) is unique, so one payment is credited at most once."""

    __tablename__ = "payments"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(32), ForeignKey("users.id"), index=True)
    provider: Mapped[str] = mapped_column(String(32))
    provider_ref: Mapped[str | None] = mapped_column(String(200), nullable=True, unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    amount: Mapped[Decimal] = mapped_column(Credits())
    request_key: Mapped[str] = mapped_column(String(200), unique=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class IdempotencyKeyRow(Base):
    """A request that moved money, by its `Idempotency-Key` (per user): the hash of what was
    asked and the response given, replayed for the same request until `expires_at`."""

    __tablename__ = "idempotency_keys"

    user_id: Mapped[str] = mapped_column(String(32), ForeignKey("users.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    response: Mapped[Any] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
