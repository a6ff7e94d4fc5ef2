"""How a stored session is shown, and the light read path of the CLI's read commands.

Its status (`interrupted` when it says running but no process holds it), its summary (the CLI's
JSON and the API) and its agent tree are worked out here once, for `SessionService` and for
`StoredSessions`: the read commands on local mode's SQLite file, which import neither SQLAlchemy
nor the runner (see store/sqlite_reads.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from keen.events import types as ev
from keen.events.projections import TreeProjection
from keen.events.types import Event
from keen.runner.lease import lease_alive
from keen.store.actor import LOCAL_ACTOR

if TYPE_CHECKING:
    from keen.config import Settings
    from keen.store.models import SessionRow
    from keen.store.sqlite_reads import SessionRecord, SqliteReads

    Stored = SessionRow | SessionRecord

INTERRUPTED = "interrupted"  # shown for a session left running by a process that is gone
# Every status a session can show, in the order of its life (what `recent` can filter by).
STATUSES = ("created", "running", INTERRUPTED, *sorted(ev.TERMINAL_STATUSES))


def shown_status(row: Stored, mode: str) -> str:
    """The status to show: `interrupted` when it says running but no process holds it (except in
    distributed mode, where a worker takes such a run over by itself)."""
    if (
        mode != "distributed"
        and row.status == "running"
        and row.parent_id is None
        and row.kind == "agent"
        and not lease_alive(row)
    ):
        return INTERRUPTED
    return row.status


def session_summary(row: Stored, mode: str) -> dict[str, Any]:
    """A session as the CLI's JSON and the API show it."""
    return {
        "id": row.id,
        "short_id": row.short_id,
        "status": shown_status(row, mode),
        "phase": row.phase if row.kind == "agent" else None,  # a conversation has no phases
        "vision": row.vision,
        "branch": row.branch_name,
        "git_branch": row.git_branch,
        "parent": row.parent_id,
        "root": row.root_id,
        "kind": row.kind,
        "specialization": row.specialization,
        "depth": row.depth,
        "model": row.model,
        "workspace": row.workspace,
        "totals": {
            "iterations": row.iterations,
            "tool_calls": row.tool_calls,
            "input_tokens": row.input_tokens,
            "output_tokens": row.output_tokens,
            "cache_read_tokens": row.cache_read_tokens,
            "cache_write_tokens": row.cache_write_tokens,
            "cost_usd": format(row.cost_usd, "f"),
            "credits": format(row.credits, "f"),
        },
        "created_at": row.created_at.isoformat(),
        "finished_at": row.finished_at.isoformat() if row.finished_at else None,
        "summary": row.summary,
        "error": row.error,
    }


def shown_tree(events: list[Event], root: Stored, mode: str) -> TreeProjection:
    """The agent tree from the log; when no process runs the root any more, its unfinished
    agents show as `interrupted`, as `shown_status` says."""
    projection = TreeProjection.from_events(events)
    if shown_status(root, mode) == INTERRUPTED:
        for node in projection.nodes.values():
            if node.status not in ev.TERMINAL_STATUSES:
                node.status = INTERRUPTED
    return projection


class SessionReads(Protocol):
    """What the read commands use: `SessionService`, or `StoredSessions` on a local file."""

    async def __aenter__(self) -> SessionReads: ...
    async def __aexit__(self, *exc: object) -> None: ...
    async def get(self, session_id: str) -> Any: ...
    async def root(self, session_id: str) -> Any: ...
    async def events(self, root_id: str, *, after_seq: int = 0) -> list[Event]: ...
    async def tree(self, root_id: str, events: list[Event] | None = None) -> TreeProjection: ...
    def summary(self, row: Any) -> dict[str, Any]: ...


class StoredSessions:
    """The local user's sessions read from local mode's SQLite file, read-only."""

    mode = "local"  # how `shown_status` judges a run whose process is gone

    def __init__(self, reads: SqliteReads) -> None:
        self._reads = reads

    async def __aenter__(self) -> StoredSessions:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._reads.close()

    async def get(self, session_id: str) -> SessionRecord:
        return self._reads.get(session_id)

    async def root(self, session_id: str) -> SessionRecord:
        return self._reads.root_of(session_id)

    async def events(self, root_id: str, *, after_seq: int = 0) -> list[Event]:
        return self._reads.events(root_id, after_seq=after_seq)

    async def tree(self, root_id: str, events: list[Event] | None = None) -> TreeProjection:
        log = self._reads.events(root_id) if events is None else events
        return shown_tree(log, self._reads.get(root_id), self.mode)

    def summary(self, row: SessionRecord) -> dict[str, Any]:
        return session_summary(row, self.mode)


def session_reads(settings: Settings) -> SessionReads:
    """The read path for the local user: the SQLite file directly when local mode's file is at
    this keen's schema, else the session service (which opens, and upgrades, the database)."""
    if settings.keen_database_url is None:
        from keen.store.sqlite_reads import open_local

        reads = open_local(settings.local_database, LOCAL_ACTOR)
        if reads is not None:
            return StoredSessions(reads)
    from keen.runner.sessions import SessionService

    return SessionService(settings)
