"""Repositories: the event log (with the sessions projection) and session queries.

`append` inserts an event and updates its session's row in the same transaction, so the
sessions table is always exactly what its events say.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, func, insert, or_, select, update

from keen.errors import InputError, NotFoundError
from keen.events import types as ev
from keen.events.types import Event
from keen.store.db import Database
from keen.store.models import EventRow, SessionRow


class SqlEventStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        # Each session's cost as last written: a session has one writer (the process running
        # it), so the running total need not be read back before every model call's update.
        self._costs: dict[str, Decimal] = {}

    async def append(self, event: Event) -> None:
        cost = await self.db.write(lambda conn: self._append(conn, event))
        if cost is not None:  # only once the transaction committed
            self._costs[event.session_id] = cost

    def _append(self, conn: Connection, event: Event) -> Decimal | None:
        """Insert the event and update its session's projection; returns the new running cost."""
        if event.type == ev.SESSION_CREATED:
            conn.execute(insert(SessionRow).values(**_new_session_values(event)))
        conn.execute(
            insert(EventRow).values(
                root_id=event.root_session_id,
                seq=event.seq,
                session_id=event.session_id,
                parent_id=event.parent_session_id,
                type=event.type,
                ts=event.ts,
                data=event.data,
            )
        )
        values = _projection(event)
        if event.type == ev.MODEL_RESPONDED:  # money is added in Python: SQLite has no decimals
            current = self._costs.get(event.session_id)
            if current is None:
                stored = conn.scalar(select(SessionRow.cost_usd).where(SessionRow.id == event.session_id))
                current = stored or Decimal(0)
            values["cost_usd"] = current + Decimal(str(event.data.get("cost_usd", "0")))
        if values:
            conn.execute(update(SessionRow).where(SessionRow.id == event.session_id).values(**values))
        return values.get("cost_usd")

    async def max_seq(self, root_session_id: str) -> int:
        async with self.db.session() as s:
            value = await s.scalar(select(func.max(EventRow.seq)).where(EventRow.root_id == root_session_id))
        return int(value or 0)

    async def events(
        self,
        root_session_id: str,
        *,
        after_seq: int = 0,
        session_id: str | None = None,
        limit: int | None = None,
    ) -> list[Event]:
        query = (
            select(EventRow)
            .where(EventRow.root_id == root_session_id, EventRow.seq > after_seq)
            .order_by(EventRow.seq)
        )
        if session_id is not None:
            query = query.where(EventRow.session_id == session_id)
        if limit is not None:
            query = query.limit(limit)
        async with self.db.session() as s:
            rows = (await s.scalars(query)).all()
        return [_to_event(r) for r in rows]


class SessionRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, session_id: str) -> SessionRow:
        """A session by full id or by an unambiguous prefix of its id or short id."""
        ident = session_id.strip()
        if not ident:
            raise InputError("session id is empty")
        async with self.db.session() as s:
            row = await s.get(SessionRow, ident)
            if row is not None:
                return row
            rows = (
                await s.scalars(
                    select(SessionRow)
                    .where(or_(SessionRow.id.startswith(ident), SessionRow.short_id.startswith(ident)))
                    .limit(2)
                )
            ).all()
        if not rows:
            raise NotFoundError(f"no session {ident!r}")
        if len(rows) > 1:
            raise InputError(f"session id {ident!r} is ambiguous; give more characters")
        return rows[0]

    async def recent(
        self, *, limit: int = 20, status: str | None = None, roots_only: bool = True
    ) -> Sequence[SessionRow]:
        query = select(SessionRow).order_by(SessionRow.created_at.desc()).limit(limit)
        if roots_only:
            query = query.where(SessionRow.parent_id.is_(None))
        if status:
            query = query.where(SessionRow.status == status)
        async with self.db.session() as s:
            return (await s.scalars(query)).all()

    async def tree(self, root_id: str) -> list[SessionRow]:
        async with self.db.session() as s:
            rows = await s.scalars(
                select(SessionRow).where(SessionRow.root_id == root_id).order_by(SessionRow.created_at)
            )
            return list(rows.all())

    async def set_pid(self, session_id: str, pid: int | None) -> None:
        async with self.db.session() as s, s.begin():
            await s.execute(update(SessionRow).where(SessionRow.id == session_id).values(pid=pid))


def _new_session_values(event: Event) -> dict[str, Any]:
    d = event.data
    return dict(
        id=event.session_id,
        short_id=d.get("short_id") or event.session_id[:8],
        root_id=event.root_session_id,
        parent_id=event.parent_session_id,
        user_id=d.get("user_id"),
        kind=d.get("kind", "agent"),
        branch_name=d.get("branch", "main"),
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


def _projection(event: Event) -> dict[str, Any]:
    d = event.data
    t = event.type
    if t in (ev.SESSION_STARTED, ev.SESSION_RESUMED):
        values: dict[str, Any] = {"status": "running", "pid": d.get("pid")}
        if t == ev.SESSION_STARTED:
            values["started_at"] = event.ts
        return values
    if t == ev.PHASE_CHANGED:
        return {"phase": d["to"]}
    if t == ev.MODEL_RESPONDED:
        usage = d.get("usage", {})
        return {
            "iterations": SessionRow.iterations + 1,
            "input_tokens": SessionRow.input_tokens + int(usage.get("input_tokens", 0)),
            "output_tokens": SessionRow.output_tokens + int(usage.get("output_tokens", 0)),
            "cache_read_tokens": SessionRow.cache_read_tokens + int(usage.get("cache_read_tokens", 0)),
            "cache_write_tokens": SessionRow.cache_write_tokens + int(usage.get("cache_write_tokens", 0)),
        }
    if t == ev.TOOL_FINISHED:
        return {"tool_calls": SessionRow.tool_calls + 1}
    if t == ev.SESSION_FINISHED:
        return {
            "status": d["status"],
            "summary": d.get("summary"),
            "error": d.get("error"),
            "finished_at": event.ts,
            "pid": None,
        }
    return {}


def _to_event(row: EventRow) -> Event:
    ts: datetime = row.ts
    return Event(
        seq=row.seq,
        session_id=row.session_id,
        root_session_id=row.root_id,
        parent_session_id=row.parent_id,
        type=row.type,
        ts=ts,
        data=row.data,
    )
