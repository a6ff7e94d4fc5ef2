"""Database engines and migrations. SQLite by default, PostgreSQL via KEEN_DATABASE_URL."""

from __future__ import annotations

import asyncio
import fcntl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import orjson
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session, SessionTransaction

from keen.errors import ConfigError
from keen.store.actor import Actor
from keen.store.revision import HEAD_REVISION

T = TypeVar("T")
E = TypeVar("E", bound=BaseException)
MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def async_url(url: str) -> str:
    """The URL with an async driver (aiosqlite / psycopg)."""
    parsed = make_url(url)
    if parsed.drivername in {"sqlite", "sqlite+pysqlite"}:
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    elif parsed.drivername in {"postgresql", "postgres", "postgresql+psycopg2"}:
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def sync_url(url: str) -> str:
    """The same database through a synchronous driver, for Alembic."""
    parsed = make_url(async_url(url))
    if parsed.drivername == "sqlite+aiosqlite":
        parsed = parsed.set(drivername="sqlite")
    return parsed.render_as_string(hide_password=False)


class Database:
    def __init__(self, url: str) -> None:
        try:
            self.url = async_url(url)
            self.is_sqlite = make_url(self.url).get_backend_name() == "sqlite"
        except Exception as exc:  # sqlalchemy raises ArgumentError and others for bad URLs
            raise ConfigError(f"KEEN_DATABASE_URL is not a valid database URL: {exc}") from exc
        # Reading a long session decodes one JSON document per event: orjson does it 3x faster.
        kwargs: dict[str, Any] = {"json_deserializer": orjson.loads}
        if self.is_sqlite:
            database = make_url(self.url).database
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": 30}
        else:
            kwargs["pool_pre_ping"] = True
        self.engine: AsyncEngine = create_async_engine(self.url, **kwargs)
        self._sqlite_writer: Engine | None = None
        self._sqlite_inline: Engine | None = None
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
            # SQLite writes go through the sync driver: first on the event loop's own thread with
            # no wait for the write lock (a WAL commit takes tens of microseconds, far less than
            # a hop to a worker thread), and only when another connection holds the lock, in a
            # worker thread that waits for it. aiosqlite would hop once per statement.
            self._sqlite_inline = create_engine(
                sync_url(url), connect_args={"timeout": 0}, json_deserializer=orjson.loads
            )
            self._sqlite_writer = create_engine(
                sync_url(url), connect_args={"timeout": 30}, json_deserializer=orjson.loads
            )
            for engine in (self._sqlite_inline, self._sqlite_writer):
                event.listen(engine, "connect", _sqlite_writer_connect)
                event.listen(engine, "begin", _begin_immediate)
            # The inline writer runs on the event loop: it must never wait for the lock (the
            # pragmas above set a 30 s wait, which would stall the loop, and with it the very
            # unit of work that holds the lock).
            event.listen(self._sqlite_inline, "connect", _no_busy_wait)
        self.sessions = async_sessionmaker(
            self.engine, expire_on_commit=False, sync_session_class=TenantSession
        )
        # Units of work (`transaction()`): on SQLite they take the write lock at BEGIN, so two
        # requests that read and then write (an audit append, a token rotation) queue on
        # busy_timeout instead of one failing when its read snapshot goes stale.
        self._unit_engine = self.engine
        if self.is_sqlite:
            self._unit_engine = create_async_engine(self.url, **kwargs)
            event.listen(self._unit_engine.sync_engine, "connect", _sqlite_writer_connect)
            event.listen(self._unit_engine.sync_engine, "begin", _begin_immediate)
        self.units = async_sessionmaker(
            self._unit_engine, expire_on_commit=False, sync_session_class=TenantSession
        )

    async def write(self, work: Callable[[Connection], T], actor: Actor | None = None) -> T:
        """Run `work` in one transaction on a synchronous connection and commit it (acting for
        `actor`: row-level security on PostgreSQL filters the transaction by it)."""
        if self._sqlite_writer is not None and self._sqlite_inline is not None:
            try:
                return self._write_sqlite(self._sqlite_inline, work)
            except OperationalError as exc:
                if not _is_busy(exc):
                    raise
            return await asyncio.to_thread(self._write_sqlite, self._sqlite_writer, work)
        async with self.engine.begin() as conn:
            if actor is not None:
                await conn.execute(_SET_ACTING_USER, _acting_user_params(actor))
            return await conn.run_sync(work)

    @asynccontextmanager
    async def reading(self, actor: Actor | None = None) -> AsyncIterator[AsyncConnection]:
        """A connection for reads in one transaction, acting for `actor` (see `write`)."""
        async with self.engine.connect() as conn:
            if actor is not None and not self.is_sqlite:
                await conn.execute(_SET_ACTING_USER, _acting_user_params(actor))
            yield conn

    @staticmethod
    def _write_sqlite(engine: Engine, work: Callable[[Connection], T]) -> T:
        with engine.begin() as conn:
            return work(conn)

    def session(self, actor: Actor | None = None) -> AsyncSession:
        """An ORM session; with `actor`, each of its transactions acts for that user."""
        session = self.sessions()
        if actor is not None:
            session.info[_ACTING_USER] = actor
        return session

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """One unit of work: a session whose transaction commits when the block ends.

        An exception rolls it back, unless it was marked with `keep_writes` (a refusal whose
        records must outlive it, like a failed login's counter and audit entry).
        """
        session = self.units()
        try:
            yield session
        except BaseException as exc:
            if getattr(exc, _KEEP_WRITES, False):
                await session.commit()
            else:
                await session.rollback()
            raise
        else:
            await session.commit()
        finally:
            await session.close()

    async def upgrade(self) -> None:
        """Bring the schema to the newest migration (a no-op query when it already is).

        On a SQLite file two keen processes may start at once: a file lock beside the database
        makes one migrate while the other waits, then finds the schema current.
        """
        if await self.is_current():
            return
        await asyncio.to_thread(self._migrate_locked)

    async def is_current(self) -> bool:
        return await self._current_revision() == HEAD_REVISION

    async def current_revision(self) -> str | None:
        """The schema's migration revision; None for a database keen has not initialised."""
        return await self._current_revision()

    async def require_current(self) -> None:
        """Refuse a database whose schema is behind this keen (servers never migrate by themselves)."""
        revision = await self._current_revision()
        if revision != HEAD_REVISION:
            found = f"at revision {revision}" if revision else "not initialised"
            raise ConfigError(
                f"the database is {found}, this keen needs {HEAD_REVISION}: run `keen db upgrade`"
            )

    def _migrate_locked(self) -> None:
        database = make_url(self.url).database if self.is_sqlite else None
        if not database or database == ":memory:":
            run_migrations(self.url)
            return
        with open(f"{database}.migrate.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                if _sync_revision(self.url) != HEAD_REVISION:
                    run_migrations(self.url)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    async def _current_revision(self) -> str | None:
        try:
            async with self.engine.connect() as conn:
                row = (await conn.execute(text("SELECT version_num FROM alembic_version"))).first()
        except Exception:  # no table yet (fresh database)
            return None
        return row[0] if row else None

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self._unit_engine is not self.engine:
            await self._unit_engine.dispose()
        for engine in (self._sqlite_writer, self._sqlite_inline):
            if engine is not None:
                engine.dispose()


class TenantSession(Session):
    """The sessions keen opens: each transaction begins with the acting user set (PostgreSQL)."""


_ACTING_USER = "keen_acting_user"
_KEEP_WRITES = "_keen_keep_writes"
_SET_ACTING_USER = text(
    "SELECT set_config('app.user_id', :user_id, true), set_config('app.is_admin', :is_admin, true)"
)


async def set_acting_user(session: AsyncSession, user_id: str | None, is_admin: bool) -> None:
    """Who this session's transactions act for; row-level security filters by it on PostgreSQL.

    The setting is transaction-local (`set_config(..., true)`), never left on a pooled
    connection: it applies now and again at the start of each later transaction of the session.
    `user_id` None with `is_admin` is keen itself (looking up a presented token, say).
    """
    session.info[_ACTING_USER] = Actor(user_id or "", is_admin)
    if session.in_transaction() and session.get_bind().dialect.name == "postgresql":
        await session.execute(_SET_ACTING_USER, _acting_user_params(session.info[_ACTING_USER]))


def acting_user(session: AsyncSession) -> Actor | None:
    """The actor `set_acting_user` last set on this session (None when it never was)."""
    actor = session.info.get(_ACTING_USER)
    return actor if isinstance(actor, Actor) else None


TENANT_TABLES = (
    "sessions",
    "session_events",
    "auth_tokens",
    "recovery_codes",
    "audit_logs",
    "credit_accounts",
    "credit_holds",
    "payments",
    "credit_transactions",
    "idempotency_keys",
)
_ROLE_FACTS = text(
    "SELECT current_user, r.rolsuper, r.rolbypassrls, "
    "(SELECT count(*) FROM pg_class c WHERE c.relname = ANY(:tables) AND c.relkind = 'r' "
    "AND pg_has_role(current_user, c.relowner, 'USAGE')) "
    "FROM pg_roles r WHERE r.rolname = current_user"
)


async def row_security_bypass(db: Database) -> str | None:
    """Why the role `db` connects as escapes row-level security (PostgreSQL), or None when it
    is filtered like the server's role must be: not a superuser, not BYPASSRLS, and not the
    tables' owner (who can turn it off). Always None on SQLite, which has no RLS."""
    if db.is_sqlite:
        return None
    async with db.engine.connect() as conn:
        role, superuser, bypass, owned = (
            await conn.execute(_ROLE_FACTS, {"tables": list(TENANT_TABLES)})
        ).one()
    if superuser:
        return f"the database role {role} is a superuser: row-level security does not apply to it"
    if bypass:
        return f"the database role {role} has BYPASSRLS: row-level security does not apply to it"
    if owned:
        return f"the database role {role} owns the tables: it can turn row-level security off"
    return None


def keep_writes(exc: E) -> E:
    """Mark a refusal whose writes are to be committed before it is reported (see transaction)."""
    setattr(exc, _KEEP_WRITES, True)
    return exc


def _acting_user_params(actor: Actor) -> dict[str, str]:
    return {"user_id": actor.user_id, "is_admin": "true" if actor.is_admin else "false"}


@event.listens_for(TenantSession, "after_begin")
def _apply_acting_user(session: Session, _transaction: SessionTransaction, connection: Connection) -> None:
    actor = session.info.get(_ACTING_USER)
    if isinstance(actor, Actor) and connection.dialect.name == "postgresql":
        connection.execute(_SET_ACTING_USER, _acting_user_params(actor))


async def open_database(url: str) -> Database:
    """The database at `url`, ready for this keen: a SQLite file is brought to the schema (it is
    local and keen's own); a shared database must already be current (`keen db upgrade`)."""
    db = Database(url)
    try:
        if db.is_sqlite:
            await db.upgrade()
        else:
            await db.require_current()
    except BaseException:
        await db.dispose()
        raise
    return db


def run_migrations(url: str, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(url), revision)


def alembic_config(url: str) -> Any:
    """Alembic's configuration for keen's migrations on `url`."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", sync_url(url).replace("%", "%%"))
    return cfg


def _is_busy(exc: OperationalError) -> bool:
    """SQLite's answer when another connection holds the write lock (nothing was written)."""
    return "locked" in str(exc.orig) or "busy" in str(exc.orig)


def _sync_revision(url: str) -> str | None:
    engine = create_engine(sync_url(url))
    try:
        with engine.connect() as conn:
            row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
    except Exception:  # no table yet
        return None
    finally:
        engine.dispose()
    return row[0] if row else None


def _sqlite_writer_connect(dbapi_connection: Any, record: Any) -> None:
    # keen issues BEGIN itself (see _begin_immediate), so the driver must not.
    dbapi_connection.isolation_level = None
    _sqlite_pragmas(dbapi_connection, record)


def _no_busy_wait(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=0")
    cursor.close()


def _begin_immediate(conn: Connection) -> None:
    # A write transaction takes SQLite's write lock at BEGIN: two processes appending to one
    # root then queue on busy_timeout instead of failing when a read snapshot goes stale.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL + synchronous=NORMAL: a committed event survives a crash or kill -9 of keen.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
