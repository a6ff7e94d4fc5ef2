"""Reading local mode's SQLite file with the standard library alone.

The one-shot read commands (`keen sessions show | logs | replay`) read a session and its log and
exit: importing SQLAlchemy and its async engine costs such a command more than reading 15,000
events does. This reader opens the file read-only, maps rows the way the ORM columns do
(store/models.py: UTC timestamps, exact decimals, JSON) and filters them by the acting user the
way `repo._owned` does; a test holds it equal, row for row, to the repositories. It serves only
a file at this keen's schema revision (`open_local` says None otherwise, and the caller takes
the full path, which upgrades the file).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from keen.errors import InputError, NotFoundError
from keen.events.types import Event
from keen.store.actor import Actor
from keen.store.revision import HEAD_REVISION

_MONEY = Decimal("0.000001")  # store/models.Money's six places


@dataclass(frozen=True)
class SessionRecord:
    """A `sessions` row, with the attributes (and types) of `models.SessionRow`."""

    id: str
    short_id: str
    root_id: str
    parent_id: str | None
    user_id: str | None
    kind: str
    branch_name: str
    git_branch: str | None
    specialization: str | None
    depth: int
    vision: str
    workspace: str
    model: str
    options: dict[str, Any]
    status: str
    phase: str
    iterations: int
    tool_calls: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cost_usd: Decimal
    credits: Decimal
    start_commit: str | None
    pid: int | None
    last_seq: int
    cancel_requested_at: datetime | None
    lease_owner: str | None
    heartbeat_at: datetime | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    summary: str | None
    error: str | None


_FIELDS = tuple(SessionRecord.__dataclass_fields__)
_COLUMNS = ", ".join(_FIELDS)
_JSON = {"options"}
_MONEY_COLUMNS = {"cost_usd", "credits"}
_TIMES = {"cancel_requested_at", "heartbeat_at", "created_at", "started_at", "finished_at"}


def _utc(text: str) -> datetime:
    """A stored timestamp (SQLite keeps naive UTC text) as an aware UTC datetime."""
    value = datetime.fromisoformat(text)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _record(row: tuple[Any, ...]) -> SessionRecord:
    values: dict[str, Any] = dict(zip(_FIELDS, row, strict=True))
    for name in _JSON:
        values[name] = orjson.loads(values[name]) if values[name] is not None else None
    for name in _MONEY_COLUMNS:
        values[name] = Decimal(str(values[name])).quantize(_MONEY)
    for name in _TIMES:
        values[name] = None if values[name] is None else _utc(values[name])
    return SessionRecord(**values)


def _prefix_pattern(ident: str) -> str:
    """`ident` as a LIKE prefix that matches it literally (SQLAlchemy's `autoescape`)."""
    return ident.replace("/", "//").replace("%", "/%").replace("_", "/_") + "%"


class SqliteReads:
    """Read-only queries on one local SQLite file, for one acting user."""

    def __init__(self, conn: sqlite3.Connection, actor: Actor) -> None:
        self._conn = conn
        self.actor = actor

    def close(self) -> None:
        self._conn.close()

    def _owned(self, where: str, params: tuple[Any, ...]) -> tuple[str, tuple[Any, ...]]:
        """The tenancy rule of `repo._owned`: a user sees their own rows, an admin every row."""
        if self.actor.is_admin:
            return where, params
        return f"({where}) AND user_id = ?", (*params, self.actor.user_id)

    def _sessions(self, where: str, params: tuple[Any, ...], limit: int) -> list[SessionRecord]:
        where, params = self._owned(where, params)
        rows = self._conn.execute(f"SELECT {_COLUMNS} FROM sessions WHERE {where} LIMIT {int(limit)}", params)
        return [_record(row) for row in rows.fetchall()]

    def get(self, session_id: str) -> SessionRecord:
        """A session by full id or by an unambiguous prefix of its id or short id."""
        ident = session_id.strip()
        if not ident:
            raise InputError("session id is empty")
        exact = self._sessions("id = ?", (ident,), 1)
        if exact:
            return exact[0]
        pattern = _prefix_pattern(ident)
        rows = self._sessions("id LIKE ? ESCAPE '/' OR short_id LIKE ? ESCAPE '/'", (pattern, pattern), 2)
        if not rows:
            raise NotFoundError(f"no session {ident!r}")
        if len(rows) > 1:
            raise InputError(f"session id {ident!r} is ambiguous; give more characters")
        return rows[0]

    def root_of(self, session_id: str) -> SessionRecord:
        row = self.get(session_id)
        return row if row.parent_id is None else self.get(row.root_id)

    def events(self, root_id: str, *, after_seq: int = 0) -> list[Event]:
        where, params = self._owned("root_id = ? AND seq > ?", (root_id, after_seq))
        rows = self._conn.execute(
            "SELECT seq, session_id, root_id, parent_id, type, ts, data FROM session_events"
            f" WHERE {where} ORDER BY seq",
            params,
        ).fetchall()
        loads, utc = orjson.loads, _utc
        return [
            Event(seq, session, root, parent, kind, utc(ts), loads(data))
            for seq, session, root, parent, kind, ts, data in rows
        ]


def open_local(path: Path, actor: Actor) -> SqliteReads | None:
    """Read-only queries on the SQLite file at `path`, or None when there is no such file or it
    is not at this keen's schema revision."""
    if not path.is_file():
        return None
    try:
        conn = sqlite3.connect(
            f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30, isolation_level=None
        )
    except sqlite3.Error:
        return None
    try:
        revision = conn.execute("SELECT version_num FROM alembic_version").fetchall()
    except sqlite3.Error:
        revision = []
    if revision != [(HEAD_REVISION,)]:
        conn.close()
        return None
    return SqliteReads(conn, actor)
