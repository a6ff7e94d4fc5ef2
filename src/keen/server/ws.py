"""WebSocket `/api/v1/ws`: live streams of session trees (SPEC 8.5).

The client authenticates with an `Authorization` header or, as its first message,
`{"type": "auth", "token": "…"}`; a token is never taken from the URL (a connection with a
query string is refused). Then:

- `{"type": "subscribe", "session_id": "…", "after_seq": N}` streams the tree's events after
  `N` (stored first, then live: no gap, no duplicate) as `{"type": "event", ...}` frames, live
  text as `delta` frames, and `{"type": "end"}` after the root's `session.finished`;
- `{"type": "unsubscribe", "session_id": "…"}`; `{"type": "ping"}` answered by `pong`.

Another user's session is not found (admins may subscribe to any). A bad message gets an
`error` frame and the connection goes on. The server sends `heartbeat` frames when quiet.
Frames wait in one bounded queue per connection: a client that reads too slowly to keep it
from filling is disconnected (close code 4008) and resumes with `after_seq`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from keen.audit import Origin
from keen.auth import Principal, authenticate
from keen.auth.scopes import SESSIONS_READ
from keen.errors import KeenError
from keen.events.bus import LiveDelta
from keen.events.stream import ends_stream
from keen.events.types import Event
from keen.runner.server_runs import ServerRuns
from keen.server.deps import get_auth_policy
from keen.server.ratelimit import client_ip
from keen.server.streams import HEARTBEAT, encoded_event, live_stream
from keen.store.actor import Actor

router = APIRouter()
log = logging.getLogger("keen.server.ws")

AUTH_TIMEOUT_SECONDS = 10.0
QUEUE_FRAMES = 1000  # frames one connection may have waiting; more means it reads too slowly
MAX_SUBSCRIPTIONS = 50
MAX_MESSAGE_BYTES = 16 * 1024
CLOSE_POLICY = 1008
CLOSE_TOO_SLOW = 4008


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class AuthMessage(_Message):
    type: str
    token: str = Field(min_length=1, max_length=4096)


class SubscribeMessage(_Message):
    type: str
    session_id: str = Field(min_length=1, max_length=64)
    after_seq: int = Field(default=0, ge=0)


class UnsubscribeMessage(_Message):
    type: str
    session_id: str = Field(min_length=1, max_length=64)


class PingMessage(_Message):
    type: str
    id: str | int | None = None


class TooSlow(Exception):
    pass


class Connection:
    """One client: who it is, its subscriptions and its outgoing frames."""

    def __init__(self, websocket: WebSocket, runs: ServerRuns, principal: Principal) -> None:
        self.websocket = websocket
        self.runs = runs
        self.principal = principal
        self.actor = Actor(principal.user_id, principal.is_admin)
        self.outgoing: asyncio.Queue[dict[str, Any] | str] = asyncio.Queue(maxsize=QUEUE_FRAMES)
        self.subscriptions: dict[str, asyncio.Task[None]] = {}
        self.too_slow = asyncio.Event()

    def send(self, frame: dict[str, Any] | str) -> None:
        """Queue a frame (a dict, or one encoded already); a full queue means the client does
        not keep up."""
        try:
            self.outgoing.put_nowait(frame)
        except asyncio.QueueFull:
            self.too_slow.set()
            raise TooSlow from None

    def error(self, code: str, message: str, **extra: Any) -> None:
        self.send({"type": "error", "code": code, "message": message, **extra})

    async def handle(self, raw: str) -> None:
        if len(raw) > MAX_MESSAGE_BYTES:
            self.error("message_too_large", f"a message is at most {MAX_MESSAGE_BYTES} bytes")
            return
        try:
            message = json.loads(raw)
        except ValueError:
            self.error("invalid_json", "a message is one JSON object")
            return
        kind = message.get("type") if isinstance(message, dict) else None
        handler = {"subscribe": self.subscribe, "unsubscribe": self.unsubscribe, "ping": self.ping}.get(
            kind if isinstance(kind, str) else ""
        )
        if handler is None:
            self.error("unknown_type", "type must be one of: subscribe, unsubscribe, ping", received=kind)
            return
        await handler(message)

    async def ping(self, message: dict[str, Any]) -> None:
        parsed = _parse(self, PingMessage, message)
        if parsed is not None:
            self.send({"type": "pong", **({"id": parsed.id} if parsed.id is not None else {})})

    async def subscribe(self, message: dict[str, Any]) -> None:
        parsed = _parse(self, SubscribeMessage, message)
        if parsed is None:
            return
        try:
            async with self.runs.service(self.actor) as service:
                root = await service.root(parsed.session_id)
        except KeenError as exc:
            self.error(exc.code, exc.message, session_id=parsed.session_id)
            return
        if root.id not in self.subscriptions and len(self.subscriptions) >= MAX_SUBSCRIPTIONS:
            self.error("too_many_subscriptions", f"at most {MAX_SUBSCRIPTIONS} subscriptions per connection")
            return
        self._stop(root.id)
        self.send({"type": "subscribed", "session_id": root.id, "after_seq": parsed.after_seq})
        self.subscriptions[root.id] = asyncio.create_task(self._forward(root.id, parsed.after_seq))

    async def unsubscribe(self, message: dict[str, Any]) -> None:
        parsed = _parse(self, UnsubscribeMessage, message)
        if parsed is None:
            return
        found = next((r for r in self.subscriptions if r.startswith(parsed.session_id)), None)
        if found is None:
            self.error("not_subscribed", "no subscription to that session", session_id=parsed.session_id)
            return
        self._stop(found)
        self.send({"type": "unsubscribed", "session_id": found})

    async def _forward(self, root_id: str, after_seq: int) -> None:
        runs = self.runs
        try:
            async with runs.service(self.actor) as service:
                # Heartbeats are the connection's own (`heartbeats`); this one never fires.
                items = live_stream(
                    runs.bus, service.events_store, root_id, after_seq, heartbeat_seconds=3600
                )
                async for item in items:
                    if item is HEARTBEAT:
                        continue
                    if isinstance(item, Event):
                        self.send(event_frame(root_id, item))
                        if ends_stream(item):
                            self.send({"type": "end", "session_id": root_id})
                    elif isinstance(item, LiveDelta):
                        delta = {"session_id": item.session_id, "kind": item.kind, "text": item.text}
                        self.send({"type": "delta", "session_id": root_id, "delta": delta})
        except TooSlow:
            return
        finally:
            if self.subscriptions.get(root_id) is asyncio.current_task():
                del self.subscriptions[root_id]

    def _stop(self, root_id: str) -> None:
        task = self.subscriptions.pop(root_id, None)
        if task is not None:
            task.cancel()

    async def close(self) -> None:
        tasks = list(self.subscriptions.values())
        self.subscriptions.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _parse(conn: Connection, model: type[_Message], message: dict[str, Any]) -> Any:
    try:
        return model.model_validate(message)
    except ValidationError as exc:
        problems = [
            {"field": ".".join(str(p) for p in e["loc"]), "problem": e["msg"]}
            for e in exc.errors(include_url=False, include_input=False)[:10]
        ]
        conn.error("invalid_message", f"invalid {message.get('type')} message", problems=problems)
        return None


async def _authenticate(websocket: WebSocket) -> Principal | None:
    """The connection's user, from its Authorization header or its first message; None (with an
    error frame sent and the socket closed) when it has none that is valid."""
    header = websocket.headers.get("authorization")
    if header is None:
        try:
            raw = await asyncio.wait_for(websocket.receive_text(), AUTH_TIMEOUT_SECONDS)
            first = AuthMessage.model_validate_json(raw)
            if first.type != "auth":
                raise ValueError("not an auth message")
        except TimeoutError:
            await _refuse(websocket, "unauthenticated", "no auth message within the time allowed")
            return None
        except (ValueError, ValidationError):
            await _refuse(
                websocket, "unauthenticated", 'the first message must be {"type": "auth", "token": "…"}'
            )
            return None
        header = f"Bearer {first.token}"
    app = websocket.app
    origin = Origin(ip=client_ip(websocket))
    try:
        async with app.state.db.transaction() as session:
            principal = await authenticate(session, get_auth_policy(websocket), header, origin)  # type: ignore[arg-type]
    except KeenError as exc:
        await _refuse(websocket, exc.code, exc.message)
        return None
    if not principal.has(SESSIONS_READ):
        await _refuse(websocket, "forbidden", f"this credential lacks the scope {SESSIONS_READ}")
        return None
    return principal


async def _refuse(websocket: WebSocket, code: str, message: str) -> None:
    with contextlib.suppress(Exception):
        await websocket.send_json({"type": "error", "code": code, "message": message})
        await websocket.close(code=CLOSE_POLICY, reason=code[:120])


@router.websocket("/api/v1/ws")
async def websocket_stream(websocket: WebSocket) -> None:
    await websocket.accept()
    if websocket.url.query:
        await _refuse(
            websocket,
            "token_in_url",
            "this endpoint takes nothing in its URL: authenticate with the Authorization header or "
            'a first message {"type": "auth", "token": "…"}',
        )
        return
    principal = await _authenticate(websocket)
    if principal is None:
        return
    runs: ServerRuns = websocket.app.state.runs
    conn = Connection(websocket, runs, principal)
    conn.send({"type": "authenticated", "user_id": principal.user_id, "admin": principal.is_admin})
    tasks = [
        asyncio.create_task(_receive(conn)),
        asyncio.create_task(_send(conn)),
        asyncio.create_task(_heartbeats(conn, runs.settings.keen_stream_heartbeat_seconds)),
        asyncio.create_task(conn.too_slow.wait()),
    ]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await conn.close()
        if conn.too_slow.is_set():
            with contextlib.suppress(Exception):
                await websocket.close(code=CLOSE_TOO_SLOW, reason="too slow: resume with after_seq")
        else:
            with contextlib.suppress(Exception):
                await websocket.close()


async def _receive(conn: Connection) -> None:
    with contextlib.suppress(WebSocketDisconnect, TooSlow):
        while True:
            message = await conn.websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is None:
                conn.error("invalid_json", "messages are JSON text frames")
                continue
            await conn.handle(text)


def event_frame(root_id: str, event: Event) -> str:
    """The frame of a stored event, around its JSON encoded once for every stream."""
    return f'{{"type":"event","session_id":{orjson.dumps(root_id).decode()},"event":{encoded_event(event)}}}'


def encode(frame: dict[str, Any]) -> str:
    return orjson.dumps(frame, default=str).decode()


async def _send(conn: Connection) -> None:
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        while True:
            frame = await conn.outgoing.get()
            await conn.websocket.send_text(frame if isinstance(frame, str) else encode(frame))


async def _heartbeats(conn: Connection, every: float) -> None:
    with contextlib.suppress(TooSlow):
        while True:
            await asyncio.sleep(every)
            conn.send({"type": "heartbeat", "ts": datetime.now(UTC).isoformat()})
