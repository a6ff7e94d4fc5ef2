"""A session on a keen server followed from the CLI: its events from the SSE stream into the same
live view and report as a local run, the stream resumed after the last seq it delivered when the
connection drops (no gap, no duplicate), and Ctrl-C cancelling the session on the server."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

import httpx

from keen.cli.client import ServerClient, Unreachable
from keen.errors import ConfigError, ConflictError, KeenError
from keen.events import types as ev
from keen.events.bus import Item, LiveDelta
from keen.events.types import Event

# How long the CLI keeps trying to reach a server that went away (a restart) before giving up.
RECONNECT_SECONDS = 90.0
RECONNECT_PAUSE = 0.5
EVENT_PAGE = 1000


def event_of(data: dict[str, Any]) -> Event:
    """An event from its envelope (SPEC 5) as the API sends it."""
    return Event(
        seq=int(data["seq"]),
        session_id=str(data["session_id"]),
        root_session_id=str(data["root_session_id"]),
        parent_session_id=data.get("parent_session_id"),
        type=str(data["type"]),
        ts=datetime.fromisoformat(str(data["ts"])),
        data=dict(data.get("data") or {}),
    )


def stored_events(client: ServerClient, session_id: str, after_seq: int = 0) -> list[Event]:
    """Every stored event of the session's tree after `after_seq`, page by page."""
    found: list[Event] = []
    while True:
        page = client.get(f"/agents/sessions/{session_id}/events", after_seq=after_seq, limit=EVENT_PAGE)
        items = [event_of(item) for item in page["items"]]
        if not items:
            return found
        found += items
        after_seq = items[-1].seq


class RemoteFollower:
    """The items of a root session's tree, in seq order, each event once, until the root ends."""

    def __init__(
        self,
        client: ServerClient,
        root_id: str,
        *,
        after_seq: int = 0,
        on_reconnecting: Callable[[str], None] | None = None,
    ) -> None:
        self.client = client
        self.root_id = root_id
        self.last_seq = after_seq
        self.on_reconnecting = on_reconnecting

    def items(self) -> Iterator[Item]:
        lost_since: float | None = None
        while True:
            try:
                for item in self._stream():
                    lost_since = None
                    yield item
                    if isinstance(item, Event) and _root_finished(item):
                        return
                reason = "the server closed the stream"  # before the root's end: it is stopping
            except (httpx.TransportError, Unreachable) as exc:
                reason = str(exc) or type(exc).__name__
            if lost_since is None:
                lost_since = time.monotonic()
                if self.on_reconnecting is not None:
                    self.on_reconnecting(reason)
            elif time.monotonic() - lost_since > RECONNECT_SECONDS:
                raise ConfigError(
                    f"lost the connection to {self.client.server} for {RECONNECT_SECONDS:.0f} s "
                    f"(session {self.root_id} may still be running: keen sessions show {self.root_id[:8]})"
                )
            time.sleep(RECONNECT_PAUSE)

    def _stream(self) -> Iterator[Item]:
        path = f"/agents/sessions/{self.root_id}/stream"
        for kind, data, _ident in self.client.stream(path, self.last_seq):
            if kind == "delta":
                yield LiveDelta(
                    session_id=str(data.get("session_id", "")),
                    root_session_id=self.root_id,
                    kind=str(data.get("kind", "text")),
                    text=str(data.get("text", "")),
                )
                continue
            if "seq" not in data:
                continue
            event = event_of(data)
            if event.seq <= self.last_seq:
                continue  # already delivered before a reconnect
            if event.seq > self.last_seq + 1:  # never expected: filled from the store
                for missing in stored_events(self.client, self.root_id, self.last_seq):
                    if missing.seq >= event.seq:
                        break
                    self.last_seq = missing.seq
                    yield missing
            self.last_seq = event.seq
            yield event


def _root_finished(event: Event) -> bool:
    return event.type == ev.SESSION_FINISHED and event.parent_session_id is None


def execute_body(
    vision: str,
    *,
    model: str | None,
    max_iterations: int,
    budget: Decimal,
    phase: str,
    max_depth: int,
    gates: str,
    web_search: bool,
) -> dict[str, Any]:
    options: dict[str, Any] = {
        "max_iterations": max_iterations,
        "budget": str(budget),
        "phase": phase,
        "max_depth": max_depth,
        "gates": gates,
        "web_search": web_search,
    }
    if model:
        options["model"] = model
    return {"vision": vision, "options": options}


def start(client: ServerClient, body: dict[str, Any]) -> dict[str, Any]:
    """`POST /agents/execute`; a refusal (credits, running sessions, rate) is a clear message."""
    from keen.errors import InputError, InsufficientCredits, RateLimitedError

    try:
        session: dict[str, Any] = client.post("/agents/execute", body)
        return session
    except InsufficientCredits as exc:
        raise InputError(
            f"{client.server} refused the run: {exc.message} (keen credits balance shows what you have)"
        ) from None
    except ConflictError as exc:
        raise InputError(
            f"{client.server} refused the run: {exc.message} (keen sessions list; keen sessions cancel ID)"
        ) from None
    except RateLimitedError as exc:
        raise InputError(f"{client.server} refused the run: {exc.message}") from None


def cancel_remote(client: ServerClient, session_id: str) -> str | None:
    """Ask the server to cancel; a message when it could not be asked."""
    try:
        client.post(f"/agents/sessions/{session_id}/cancel")
        return None
    except ConflictError:
        return None  # it had already finished
    except KeenError as exc:
        return exc.message


class SigtermAsInterrupt:
    """SIGTERM handled as Ctrl-C while a remote session is followed, and Ctrl-C handled even
    when keen was started with SIGINT ignored (a background job of a script), as a local run
    handles it."""

    def __enter__(self) -> SigtermAsInterrupt:
        self.previous = {
            signal.SIGTERM: signal.signal(signal.SIGTERM, self._raise),
            signal.SIGINT: signal.signal(signal.SIGINT, self._raise),
        }
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)

    @staticmethod
    def _raise(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt
