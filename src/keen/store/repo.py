"""Repositories: the event log (with the sessions projection) and session queries.

`record` assigns the next `seq` of the root's stream, inserts the event and updates its
session's row in one transaction: the root's row holds the counter (`last_seq`), so however
many processes append to one tree, seq is gap-free and never repeats, and the sessions table is
always exactly what its events say. Every read goes through `_owned`, the one place that
filters rows by the acting user.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy import Connection, Select, bindparam, func, insert, or_, select, text, update

from keen.errors import InputError, NotFoundError
from keen.events import types as ev
from keen.events.pg_bus import EVENTS_CHANNEL
from keen.events.sink import TransactionalWrite
from keen.events.types import Event, SessionRef, utcnow
from keen.store.actor import SYSTEM_ACTOR, Actor
from keen.store.db import Database
from keen.store.models import EventRow, SessionRow

Q = TypeVar("Q", bound=Select[Any])

# Statements of the hot path, built once: building a statement costs far more than running it.
_NEXT_SEQ = (
    update(SessionRow)
    .where(SessionRow.id == bindparam("root"))
    .values(last_seq=SessionRow.last_seq + 1)
    .returning(SessionRow.last_seq, SessionRow.user_id)
)
_INSERT_EVENT = insert(EventRow)
# PostgreSQL tells every listening process "<root id>:<seq>" when the event commits (keen.events.
# pg_bus reads the event itself from the table: the payload stays far below NOTIFY's 8000 bytes).
_NOTIFY_EVENT = text(f"SELECT pg_notify('{EVENTS_CHANNEL}', :payload)")
_SESSION_COST = select(SessionRow.cost_usd).where(SessionRow.id == bindparam("sid"))
_SESSION_CREDITS = select(SessionRow.credits).where(SessionRow.id == bindparam("sid"))
_SET_CREDITS = (
    update(SessionRow)
    .where(SessionRow.id == bindparam("sid"))
    .values(credits=bindparam("credits", type_=SessionRow.credits.type))
)
_COUNT_TOOL_CALL = (
    update(SessionRow).where(SessionRow.id == bindparam("sid")).values(tool_calls=SessionRow.tool_calls + 1)
)
_COUNT_MODEL_CALL = (
    update(SessionRow)
    .where(SessionRow.id == bindparam("sid"))
    .values(
        iterations=SessionRow.iterations + 1,
        input_tokens=SessionRow.input_tokens + bindparam("input_tokens"),
        output_tokens=SessionRow.output_tokens + bindparam("output_tokens"),
        cache_read_tokens=SessionRow.cache_read_tokens + bindparam("cache_read_tokens"),
        cache_write_tokens=SessionRow.cache_write_tokens + bindparam("cache_write_tokens"),
        cost_usd=bindparam("cost_usd", type_=SessionRow.cost_usd.type),
    )
)

_EVENT_COLUMNS = (
    EventRow.seq,
    EventRow.session_id,
    EventRow.root_id,
    EventRow.parent_id,
    EventRow.type,
    EventRow.ts,
    EventRow.data,
)


def _owned(query: Q, actor: Actor, user_column: Any) -> Q:
    """The tenancy rule, once: a user sees their own rows, an admin every row."""
    return query if actor.is_admin else query.where(user_column == actor.user_id)


class SqlEventStore:
    def __init__(self, db: Database, actor: Actor = SYSTEM_ACTOR) -> None:
        self.db = db
        self.actor = actor

    async def record(
        self,
        ref: SessionRef,
        type: str,
        data: dict[str, Any],
        writes: Sequence[TransactionalWrite] = (),
    ) -> Event:
        """Append one event with the next seq of its root; `writes` commit in the same transaction."""
        ts = utcnow()
        return await self.db.write(lambda conn: self._record(conn, ref, type, ts, data, writes), self.actor)

    def record_in(self, conn: Connection, ref: SessionRef, type: str, data: dict[str, Any]) -> Event:
        """`record` inside the caller's transaction (`conn`): committed, or not, with it."""
        return self._record(conn, ref, type, utcnow(), data, ())

    def _record(
        self,
        conn: Connection,
        ref: SessionRef,
        type: str,
        ts: datetime,
        data: dict[str, Any],
        writes: Sequence[TransactionalWrite],
    ) -> Event:
        root = ref.root_session_id
        if type == ev.SESSION_CREATED and ref.parent_session_id is None:
            seq, user_id = 1, data.get("user_id")
        else:
            row = conn.execute(_NEXT_SEQ, {"root": root}).first()
            if row is None:
                raise NotFoundError(f"no root session {root} to record {type} in")
            seq, user_id = int(row[0]), row[1]
        event = Event(seq, ref.session_id, root, ref.parent_session_id, type, ts, data)
        self._insert(conn, event, user_id)
        for write in writes:
            write(conn)
        return event

    async def append(self, event: Event) -> None:
        """Insert an event exactly as given (its seq included); a duplicate seq is refused."""
        await self.db.write(lambda conn: self._insert(conn, event, event.data.get("user_id")), self.actor)

    def _insert(self, conn: Connection, event: Event, user_id: str | None) -> None:
        if event.type == ev.SESSION_CREATED:
            values = _new_session_values(event, user_id)
            if event.parent_session_id is None:
                values["last_seq"] = event.seq
            conn.execute(insert(SessionRow).values(**values))
        conn.execute(
            _INSERT_EVENT,
            {
                "root_id": event.root_session_id,
                "seq": event.seq,
                "session_id": event.session_id,
                "parent_id": event.parent_session_id,
                "user_id": user_id,
                "type": event.type,
                "ts": event.ts,
                "data": event.data,
            },
        )
        _project(conn, event)
        if conn.dialect.name == "postgresql":
            conn.execute(_NOTIFY_EVENT, {"payload": f"{event.root_session_id}:{event.seq}"})

    async def events(
        self,
        root_session_id: str,
        *,
        after_seq: int = 0,
        session_id: str | None = None,
        limit: int | None = None,
    ) -> list[Event]:
        query = select(*_EVENT_COLUMNS).where(EventRow.root_id == root_session_id, EventRow.seq > after_seq)
        query = _owned(query, self.actor, EventRow.user_id).order_by(EventRow.seq)
        if session_id is not None:
            query = query.where(EventRow.session_id == session_id)
        if limit is not None:
            query = query.limit(limit)
        async with self.db.reading(self.actor) as conn:
            rows = (await conn.execute(query)).all()
        return [Event(*row) for row in rows]


class SessionRepository:
    def __init__(self, db: Database, actor: Actor = SYSTEM_ACTOR) -> None:
        self.db = db
        self.actor = actor

    def _query(self) -> Select[Any]:
        return _owned(select(SessionRow), self.actor, SessionRow.user_id)

    async def get(self, session_id: str) -> SessionRow:
        """A session by full id or by an unambiguous prefix of its id or short id."""
        ident = session_id.strip()
        if not ident:
            raise InputError("session id is empty")
        async with self.db.session(self.actor) as s:
            row = (await s.scalars(self._query().where(SessionRow.id == ident))).first()
            if row is not None:
                return row
            rows = (
                await s.scalars(
                    self._query()
                    .where(
                        or_(
                            SessionRow.id.startswith(ident, autoescape=True),
                            SessionRow.short_id.startswith(ident, autoescape=True),
                        )
                    )
                    .limit(2)
                )
            ).all()
        if not rows:
            raise NotFoundError(f"no session {ident!r}")
        if len(rows) > 1:
            raise InputError(f"session id {ident!r} is ambiguous; give more characters")
        return rows[0]

    async def root_of(self, session_id: str) -> SessionRow:
        """The root of the tree a session (given by id or prefix) belongs to."""
        row = await self.get(session_id)
        return row if row.parent_id is None else await self.get(row.root_id)

    async def recent(
        self, *, limit: int = 20, status: str | None = None, roots_only: bool = True, offset: int = 0
    ) -> Sequence[SessionRow]:
        query = self._filtered(status, roots_only).order_by(SessionRow.created_at.desc(), SessionRow.id)
        async with self.db.session(self.actor) as s:
            return (await s.scalars(query.limit(limit).offset(offset))).all()

    async def count(self, *, status: str | None = None, roots_only: bool = True) -> int:
        query = self._filtered(status, roots_only).with_only_columns(func.count()).order_by(None)
        async with self.db.session(self.actor) as s:
            return int(await s.scalar(query) or 0)

    def _filtered(self, status: str | None, roots_only: bool) -> Select[Any]:
        query = self._query()
        if roots_only:
            query = query.where(SessionRow.parent_id.is_(None))
        if status:
            query = query.where(SessionRow.status == status)
        return query

    async def unfinished_roots(self) -> Sequence[SessionRow]:
        """Root agent sessions not finished (created or running), of every user: what a
        starting server looks at to resume."""
        query = self._query().where(
            SessionRow.parent_id.is_(None),
            SessionRow.kind == "agent",
            SessionRow.status.in_(("created", "running")),
        )
        async with self.db.session(self.actor) as s:
            return (await s.scalars(query.order_by(SessionRow.created_at))).all()

    async def tree(self, root_id: str) -> list[SessionRow]:
        async with self.db.session(self.actor) as s:
            rows = await s.scalars(
                self._query().where(SessionRow.root_id == root_id).order_by(SessionRow.created_at)
            )
            return list(rows.all())

    # -- control: cancel requests and leases, through the store so any process can see them --

    async def request_cancel(self, root_id: str) -> None:
        await self._update(root_id, cancel_requested_at=utcnow())

    async def claim(self, root_id: str, owner: str, lease: timedelta, replacing: str | None = None) -> bool:
        """Take the lease of a root unless another owner holds it fresh (`replacing` names an
        owner known to be dead); clears old cancel requests."""
        now = utcnow()
        stale = now - lease
        live_elsewhere = (SessionRow.lease_owner.is_not(None)) & (SessionRow.lease_owner != owner)
        live_elsewhere &= SessionRow.heartbeat_at > stale
        if replacing is not None:
            live_elsewhere &= SessionRow.lease_owner != replacing

        def work(conn: Connection) -> bool:
            result = conn.execute(
                update(SessionRow)
                .where(SessionRow.id == root_id, ~live_elsewhere)
                .values(lease_owner=owner, heartbeat_at=now, cancel_requested_at=None)
            )
            return bool(result.rowcount)

        return await self.db.write(work, self.actor)

    async def heartbeat(self, root_id: str, owner: str) -> bool:
        """Renew the lease; True when a cancel has been requested."""

        def work(conn: Connection) -> bool:
            row = conn.execute(
                update(SessionRow)
                .where(SessionRow.id == root_id, SessionRow.lease_owner == owner)
                .values(heartbeat_at=utcnow())
                .returning(SessionRow.cancel_requested_at)
            ).first()
            return row is not None and row[0] is not None

        return await self.db.write(work, self.actor)

    async def cancel_requested(self, root_id: str) -> bool:
        async with self.db.reading(self.actor) as conn:
            value = await conn.scalar(select(SessionRow.cancel_requested_at).where(SessionRow.id == root_id))
        return value is not None

    async def release(self, root_id: str, owner: str) -> None:
        def work(conn: Connection) -> None:
            conn.execute(
                update(SessionRow)
                .where(SessionRow.id == root_id, SessionRow.lease_owner == owner)
                .values(lease_owner=None, heartbeat_at=None)
            )

        await self.db.write(work, self.actor)

    async def _update(self, session_id: str, **values: Any) -> None:
        def work(conn: Connection) -> None:
            conn.execute(update(SessionRow).where(SessionRow.id == session_id).values(**values))

        await self.db.write(work, self.actor)


def _new_session_values(event: Event, user_id: str | None) -> dict[str, Any]:
    d = event.data
    return dict(
        id=event.session_id,
        short_id=d.get("short_id") or event.session_id[:8],
        root_id=event.root_session_id,
        parent_id=event.parent_session_id,
        user_id=user_id,
        kind=d.get("kind", "agent"),
        branch_name=d.get("branch", ev.ROOT_BRANCH),
        git_branch=d.get("git_branch"),
        specialization=d.get("specialization"),
        depth=int(d.get("depth", 0)),
        vision=d.get("vision", ""),
        workspace=d.get("workspace", ""),
        model=d.get("model", ""),
        options=d.get("options", {}),
        status="created",
        phase=d.get("phase", "EXPLORE"),
        start_commit=d.get("start_commit"),
        created_at=event.ts,
    )


def _project(conn: Connection, event: Event) -> None:
    """Update the event's session row with what the event changes (the sessions projection)."""
    d = event.data
    t = event.type
    if t == ev.TOOL_FINISHED:
        conn.execute(_COUNT_TOOL_CALL, {"sid": event.session_id})
    elif t == ev.MODEL_RESPONDED:  # money is added in Python: SQLite has no decimals
        usage = d.get("usage", {})
        stored = conn.scalar(_SESSION_COST, {"sid": event.session_id}) or Decimal(0)
        conn.execute(
            _COUNT_MODEL_CALL,
            {
                "sid": event.session_id,
                "input_tokens": int(usage.get("input_tokens", 0)),
                "output_tokens": int(usage.get("output_tokens", 0)),
                "cache_read_tokens": int(usage.get("cache_read_tokens", 0)),
                "cache_write_tokens": int(usage.get("cache_write_tokens", 0)),
                "cost_usd": stored + Decimal(str(d.get("cost_usd", "0"))),
            },
        )
    elif t == ev.CREDITS_CHARGED:  # the agent's own credits, and its tree's on the root's row
        amount = Decimal(str(d.get("amount", "0")))
        for sid in dict.fromkeys((event.session_id, event.root_session_id)):
            stored = conn.scalar(_SESSION_CREDITS, {"sid": sid}) or Decimal(0)
            conn.execute(_SET_CREDITS, {"sid": sid, "credits": stored + amount})
    else:
        values = _projection(event)
        if values:
            conn.execute(update(SessionRow).where(SessionRow.id == event.session_id).values(**values))


def _projection(event: Event) -> dict[str, Any]:
    """The columns a rarer event sets (session start, phase, end)."""
    d = event.data
    t = event.type
    if t in (ev.SESSION_STARTED, ev.SESSION_RESUMED):
        values: dict[str, Any] = {"status": "running", "pid": d.get("pid")}
        if t == ev.SESSION_STARTED:
            values["started_at"] = event.ts
        return values
    if t == ev.PHASE_CHANGED:
        return {"phase": d["to"]}
    if t == ev.SESSION_FINISHED:
        values = {
            "status": d["status"],
            "summary": d.get("summary"),
            "error": d.get("error"),
            "finished_at": event.ts,
            "pid": None,
        }
        if d.get("credits") is not None:  # the agent's and its children's, as the ledger charged
            values["credits"] = Decimal(str(d["credits"]))
        return values
    return {}
