"""The bus across processes: PostgreSQL LISTEN/NOTIFY in front of the event table.

Several `keen serve` replicas and `keen worker` processes share one PostgreSQL; a run's events
are recorded by whichever process runs it, its watchers are connected to any replica. Every
event insert sends `pg_notify('keen_events', '<root id>:<seq>')` in the inserting transaction
(`store/repo.py`), so it reaches every listener when, and only if, the event commits. The
payload says only *that* a root has new events: `PgBus` reads them from the table, after the
last seq it offered for that root, one query per root however many notifications came in the
meantime and however many subscribers the root has, and offers them in seq order to its local
subscriptions (an `EventBus` underneath: callbacks and queues as before). The table is the
truth, so nothing a notification could lose (a dropped connection, a replica that started
listening late) makes a gap: after a reconnect every followed root is read again from its last
seq. Live deltas (streamed text, never stored) go over `keen_deltas` as small JSON, queued by
`offer` and sent from a task so the agent never waits for them (dropped when the queue is full).

Using it (a `keen serve` replica, a `keen worker`):

    from keen.events.pg_bus import bus_for, running
    bus = bus_for(db.url, SqlEventStore(db))   # PgBus on PostgreSQL, EventBus on SQLite
    async with running(bus):                    # LISTEN before anything subscribes or publishes
        ...                                     # RecordingSink(store, bus), follow(bus, ...)

or with a `PgBus` directly: `await bus.start()` (raises when PostgreSQL cannot be reached) and
`await bus.close()` (sends the deltas still queued, for up to a second, then stops).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import make_url

from keen.events.bus import Callback, EventBus, Item, LiveDelta, Subscription
from keen.events.stream import EventSource
from keen.events.types import Event

if TYPE_CHECKING:  # psycopg is the postgres extra's: imported only when a PgBus starts
    from psycopg import AsyncConnection, Notify

log = logging.getLogger("keen.events")

EVENTS_CHANNEL = "keen_events"
DELTAS_CHANNEL = "keen_deltas"
# NOTIFY refuses payloads of 8000 bytes or more. A delta's text goes in pieces of at most this
# many characters: JSON writes a character in at most 6 bytes (a \u escape), so a piece and its
# ids stay under 6,200 bytes.
DELTA_PIECE_CHARS = 1000
DELTA_QUEUE = 2000  # pieces waiting to be sent; more are dropped (deltas are never stored)
DELTA_BATCH = 200  # pieces sent in one statement
HEALTH_SECONDS = 10.0  # an idle listener checks its connection this often (a dead peer is silent)
BACKOFF_SECONDS = (0.1, 5.0)  # reconnect delay: first, and the most it doubles to
CLOSE_FLUSH_SECONDS = 1.0
APPLICATION_NAME = "keen-bus"  # how operators (and tests) tell the bus's connections apart
_SEND_DELTAS = f"SELECT pg_notify('{DELTAS_CHANNEL}', p) FROM unnest(%s::text[]) AS p"  # in array order


def libpq_url(url: str) -> str:
    """A SQLAlchemy PostgreSQL URL (`postgresql+psycopg://…`) as libpq takes it."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def bus_for(database_url: str, source: EventSource) -> EventBus:
    """The bus of a process on `database_url`: a `PgBus` reading new events through `source`
    (a store acting as keen itself, which sees every user's rows) on PostgreSQL; the in-process
    `EventBus` on SQLite, where one process runs the sessions and serves their watchers."""
    if make_url(database_url).get_backend_name() == "sqlite":
        return EventBus()
    return PgBus(libpq_url(database_url), source)


@asynccontextmanager
async def running(bus: EventBus) -> AsyncIterator[EventBus]:
    """`bus` listening for the duration of the block (nothing to start for an `EventBus`)."""
    if not isinstance(bus, PgBus):
        yield bus
        return
    await bus.start()
    try:
        yield bus
    finally:
        await bus.close()


@dataclass
class _Root:
    """What this process knows of one followed root's stream."""

    last: int | None = None  # seq of the last event offered to local subscribers (None: none yet)
    first_notified: int | None = None  # lowest seq announced while `last` is None
    notified: int = 0  # highest seq a notification announced
    read_up_to: int = 0  # highest announced seq a table read has covered
    catch_up: bool = False  # notifications may have been missed: read whatever is new
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    def behind(self) -> bool:
        # A notification of an event offered already (a local publish) costs no read.
        return self.catch_up or self.notified > max(self.read_up_to, self.last or 0)


class PgBus(EventBus):
    """An `EventBus` whose events come from the table, announced by NOTIFY (see the module).

    A local `publish` (a run in this process) is offered at once when it is the next seq of
    its root, and its notification then finds nothing new and costs no read: watchers on the
    replica running the session get it with no round trip. Any other event waits for its
    notification, whose read delivers it in order after what precedes it, so a local event
    never overtakes one written elsewhere. Deltas are offered locally at once and sent to the
    other processes, which skip their own (by `bus_id`).
    """

    def __init__(self, conninfo: str, source: EventSource, *, delta_queue: int = DELTA_QUEUE) -> None:
        super().__init__()
        self.conninfo = conninfo
        self.source = source
        self.bus_id = uuid.uuid4().hex[:12]
        self.reads = 0  # table reads made for notifications (one per root per batch)
        self.deltas_dropped = 0
        self.reconnects = 0
        self._roots: dict[str, _Root] = {}
        self._deltas: asyncio.Queue[str] = asyncio.Queue(maxsize=delta_queue)
        self._listening = asyncio.Event()
        self._closing = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """LISTEN (raises when PostgreSQL cannot be reached), then keep listening until `close`:
        events committed from now on reach the subscriptions, whenever they subscribe."""
        conn = await self._listen_connection()
        self._tasks = [
            asyncio.create_task(self._listen(conn), name="keen-bus-listen"),
            asyncio.create_task(self._send_deltas(), name="keen-bus-deltas"),
        ]

    async def close(self) -> None:
        self._closing.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._deltas.join(), CLOSE_FLUSH_SECONDS)
        tasks = self._tasks + [r.task for r in self._roots.values() if r.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks = []
        self._roots.clear()

    @property
    def listening(self) -> bool:
        """Whether the listener connection is up (False while it reconnects)."""
        return self._listening.is_set()

    # -- the Bus protocol -----------------------------------------------------------------------

    async def publish(self, item: Item) -> None:
        self.offer(item)

    def offer(self, item: Item) -> None:
        if not self._tasks:
            super().offer(item)  # not listening (not started, or closed): an in-process bus
            return
        if isinstance(item, LiveDelta):
            super().offer(item)
            self._queue_delta(item)
            return
        root = self._roots.get(item.root_session_id)
        if root is not None and root.last is not None and item.seq == root.last + 1:
            root.last = item.seq
            super().offer(item)

    def add_callback(self, callback: Callback, root_id: str | None = None) -> Callable[[], None]:
        remove = super().add_callback(callback, root_id)
        if root_id is not None:
            self._root(root_id)

        def unsubscribe() -> None:
            remove()
            self._unfollowed(root_id)

        return unsubscribe

    def subscribe(self, root_id: str | None = None, maxsize: int = 10_000) -> Subscription:
        sub = super().subscribe(root_id, maxsize)
        if root_id is not None:
            self._root(root_id)
        return sub

    def _remove(self, sub: Subscription) -> None:
        super()._remove(sub)
        self._unfollowed(sub.root_id)

    # -- events: notification → one read per root → local subscriptions ---------------------

    def _unfollowed(self, root_id: str | None) -> None:
        # The last watcher gone: drop the root's state and pump (a new watcher starts afresh).
        if root_id is not None and not self._follows(root_id):
            self._forget(root_id)

    def _follows(self, root_id: str) -> bool:
        if root_id in self._subs or None in self._subs:
            return True
        return any(wanted is None or wanted == root_id for wanted, _ in self._callbacks)

    def _followed_roots(self) -> set[str]:
        roots = {r for r in self._subs if r is not None}
        roots |= {r for r, _ in self._callbacks if r is not None}
        return roots | set(self._roots)

    def _root(self, root_id: str) -> _Root:
        root = self._roots.get(root_id)
        if root is None:
            root = self._roots[root_id] = _Root()
            root.task = asyncio.create_task(self._pump(root_id, root), name=f"keen-bus-{root_id[:8]}")
        return root

    def _forget(self, root_id: str) -> None:
        root = self._roots.pop(root_id, None)
        if root is not None:
            root.wake.set()  # its pump sees it is gone and ends

    def _notified_event(self, payload: str) -> None:
        root_id, _, seq = payload.rpartition(":")
        if not self._follows(root_id):
            # Nobody here watches it: what we knew of it goes stale from this event on.
            self._forget(root_id)
            return
        root = self._root(root_id)
        announced = int(seq)
        if root.last is None:
            root.first_notified = min(root.first_notified or announced, announced)
        root.notified = max(root.notified, announced)
        root.wake.set()

    async def _pump(self, root_id: str, root: _Root) -> None:
        """Read and offer this root's new events whenever it is behind; notifications that come
        during a read are served by the next one."""
        delay = BACKOFF_SECONDS[0]
        while self._roots.get(root_id) is root:
            if not root.behind():
                root.wake.clear()
                await root.wake.wait()
                continue
            target, root.catch_up = root.notified, False
            if root.last is not None:
                after = root.last
            elif root.first_notified is not None:
                # Nothing offered yet: every event committed after the subscription was announced
                # at or after the first notification since (NOTIFY keeps commit order).
                after = root.first_notified - 1
            else:
                after = 0  # a reconnect before any notification: the start is unknown
            try:
                events = await self.source.events(root_id, after_seq=after)
            except Exception:
                log.warning("could not read the events of %s; trying again", root_id, exc_info=True)
                root.catch_up = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, BACKOFF_SECONDS[1])
                continue
            delay = BACKOFF_SECONDS[0]
            self.reads += 1
            # Covered: what was announced before the read, and whatever it found beyond.
            root.read_up_to = max(root.read_up_to, target, events[-1].seq if events else 0)
            if self._roots.get(root_id) is not root:
                return
            try:
                self._offer_stored(root, events)
            except Exception:  # a failing callback must not stop the root's stream
                log.exception("event bus: a subscriber of %s failed", root_id)

    def _offer_stored(self, root: _Root, events: list[Event]) -> None:
        # A read returns a gap-free run of seqs (seq is taken under the root's row lock, so
        # commits come in seq order); a local publish may have offered some of it meanwhile.
        for event in events:
            if root.last is not None and event.seq <= root.last:
                continue
            root.last = event.seq
            EventBus.offer(self, event)

    # -- the listener connection ----------------------------------------------------------

    async def _listen_connection(self) -> AsyncConnection[Any]:
        import psycopg

        conn = await psycopg.AsyncConnection.connect(
            self.conninfo, autocommit=True, application_name=APPLICATION_NAME
        )
        try:
            await conn.execute(f"LISTEN {EVENTS_CHANNEL}")
            await conn.execute(f"LISTEN {DELTAS_CHANNEL}")
        except BaseException:
            await conn.close()
            raise
        return conn

    async def _listen(self, conn: AsyncConnection[Any] | None) -> None:
        import psycopg

        delay = BACKOFF_SECONDS[0]
        while not self._closing.is_set():
            if conn is None:
                try:
                    conn = await self._listen_connection()
                except (OSError, psycopg.Error) as exc:
                    log.warning("event bus: cannot listen (%s); again in %.1f s", exc, delay)
                    await self._pause(delay)
                    delay = min(delay * 2, BACKOFF_SECONDS[1])
                    continue
                self.reconnects += 1
                self._catch_up()
            delay = BACKOFF_SECONDS[0]
            self._listening.set()
            try:
                while True:
                    async for notify in conn.notifies(timeout=HEALTH_SECONDS):
                        self._notified(notify)
                    await conn.execute("SELECT 1")  # a connection that died quietly raises here
            except (OSError, psycopg.Error) as exc:
                log.warning("event bus: the listener connection was lost (%s); reconnecting", exc)
            finally:
                self._listening.clear()
                with contextlib.suppress(Exception):
                    await conn.close()
                conn = None

    def _catch_up(self) -> None:
        """After a reconnect: notifications sent while it was down are lost, the table is not."""
        for root_id in self._followed_roots():
            if not self._follows(root_id):
                self._forget(root_id)
                continue
            root = self._root(root_id)
            root.catch_up = True
            root.wake.set()

    def _notified(self, notify: Notify) -> None:
        try:
            if notify.channel == EVENTS_CHANNEL:
                self._notified_event(notify.payload)
            elif notify.channel == DELTAS_CHANNEL:
                self._notified_delta(notify.payload)
        except (ValueError, KeyError, TypeError):
            log.warning("event bus: ignored a malformed %s notification", notify.channel)
        except Exception:  # a failing callback must not stop the listener
            log.exception("event bus: a subscriber failed on a %s notification", notify.channel)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), seconds)

    # -- deltas ---------------------------------------------------------------------------------

    def _queue_delta(self, delta: LiveDelta) -> None:
        if not self._tasks:
            return  # not started: nothing listens for what we would send
        text = delta.text
        pieces = [text[i : i + DELTA_PIECE_CHARS] for i in range(0, len(text), DELTA_PIECE_CHARS)] or [""]
        for piece in pieces:
            payload = {"b": self.bus_id, "s": delta.session_id, "r": delta.root_session_id, "k": delta.kind}
            try:
                self._deltas.put_nowait(json.dumps({**payload, "t": piece}, ensure_ascii=False))
            except asyncio.QueueFull:
                self.deltas_dropped += 1

    def _notified_delta(self, payload: str) -> None:
        data = json.loads(payload)
        if data["b"] == self.bus_id:
            return  # offered locally when it was offered
        EventBus.offer(self, LiveDelta(data["s"], data["r"], data["k"], data["t"]))

    async def _send_deltas(self) -> None:
        """Send queued deltas in batches (one statement each; NOTIFY keeps their order)."""
        import psycopg

        conn: AsyncConnection[Any] | None = None
        try:
            while True:
                batch = [await self._deltas.get()]
                while len(batch) < DELTA_BATCH and not self._deltas.empty():
                    batch.append(self._deltas.get_nowait())
                try:
                    if conn is None or conn.closed:
                        conn = await psycopg.AsyncConnection.connect(
                            self.conninfo, autocommit=True, application_name=APPLICATION_NAME
                        )
                    await conn.execute(_SEND_DELTAS, (batch,))
                except (OSError, psycopg.Error) as exc:
                    self.deltas_dropped += len(batch)
                    log.warning("event bus: dropped %d deltas (%s)", len(batch), exc)
                    if conn is not None:
                        await conn.close()
                    conn = None
                finally:
                    for _ in batch:
                        self._deltas.task_done()
        finally:
            if conn is not None:
                await conn.close()
