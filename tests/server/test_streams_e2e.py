"""Live streams of a run through a real `keen serve`: SSE resumed by `Last-Event-ID` and the
WebSocket resumed by `after_seq`, each giving every later event exactly once; live text
deltas and heartbeats; another user refused; a token in the URL refused; an admin may watch
any session."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from authkit import API, PASSWORD, bearer
from helpers import call, complete, turn, write_script
from runkit import AGENTS, RUN_ENV, events_of, execute, grant, sign_up, wait_finished
from serverkit import Server

pytestmark = pytest.mark.slow
ADMIN_EMAIL = "root@example.org"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def server(home: Path) -> Iterator[Server]:
    env = {**RUN_ENV, "KEEN_ADMIN_EMAIL": ADMIN_EMAIL, "KEEN_ADMIN_PASSWORD": PASSWORD}
    running = Server(home, env)
    running.wait_live()
    yield running
    running.stop()


def slow_script(path: Path, steps: int = 8, delay_ms: int = 300) -> Path:
    """A run long enough to disconnect from in its middle, whose replies stream text."""
    turns = [
        turn(
            call("continue_work", next_action=f"step {i}"), text=f"working on step {i} now", delay_ms=delay_ms
        )
        for i in range(steps)
    ]
    return write_script(path, [*turns, complete("all steps taken")])


def sse_frames(response: httpx.Response) -> Iterator[dict[str, Any]]:
    """The frames of an event stream: {"id"?, "event"?, "data"?, "comment"?}."""
    frame: dict[str, Any] = {}
    for line in response.iter_lines():
        if line == "":
            if frame:
                yield frame
            frame = {}
        elif line.startswith(":"):
            yield {"comment": line[1:].strip()}
        else:
            field, _, value = line.partition(":")
            frame[field] = value.removeprefix(" ")


def test_sse_resumed_from_last_event_id_gives_each_later_event_exactly_once(
    server: Server, home: Path, tmp_path: Path
) -> None:
    headers, user_id = sign_up(server.url, "watcher@example.org")
    grant(home, user_id, "10")
    started = execute(server.url, headers, slow_script(tmp_path / "slow.json"))
    url = f"{server.url}{AGENTS}/sessions/{started['id']}/stream"
    first: list[int] = []
    deltas = 0
    with httpx.stream("GET", url, headers=headers, timeout=30) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for frame in sse_frames(response):
            if frame.get("event") == "delta":
                deltas += 1
            elif "id" in frame:
                event = json.loads(frame["data"])
                assert event["seq"] == int(frame["id"]) and event["type"] == frame["event"]
                first.append(event["seq"])
                if len(first) == 6:
                    break  # the client goes away in the middle of the run
    assert first == [1, 2, 3, 4, 5, 6]
    second: list[int] = []
    with httpx.stream("GET", url, headers={**headers, "Last-Event-ID": "6"}, timeout=30) as response:
        for frame in sse_frames(response):
            if frame.get("event") == "delta":
                deltas += 1
            elif "id" in frame:
                second.append(int(frame["id"]))
    # The stream ends after the root's session.finished: every later event, once.
    total = len(events_of(server.url, headers, started["id"]))
    assert wait_finished(server.url, headers, started["id"])["status"] == "completed"
    assert second == list(range(7, total + 1))
    assert deltas > 0, "no live text deltas"
    replay = httpx.get(url, headers={**headers, "Last-Event-ID": str(total - 1)}, timeout=30)
    assert [int(f["id"]) for f in sse_frames(replay) if "id" in f] == [total]
    quiet = execute(server.url, headers, slow_script(tmp_path / "quiet.json", steps=1, delay_ms=2500))
    with httpx.stream(
        "GET", f"{server.url}{AGENTS}/sessions/{quiet['id']}/stream", headers=headers
    ) as response:
        comments = [f["comment"] for f in sse_frames(response) if "comment" in f]
    assert "heartbeat" in comments
    refused = httpx.get(url, headers={**headers, "Last-Event-ID": "seven"})
    assert refused.status_code == 422


def _receive(ws: ClientConnection, timeout: float = 20) -> dict[str, Any]:
    frame: dict[str, Any] = json.loads(ws.recv(timeout=timeout))
    return frame


def _events_until(ws: ClientConnection, stop: Any) -> tuple[list[int], list[str]]:
    seqs: list[int] = []
    kinds: list[str] = []
    while True:
        frame = _receive(ws)
        kinds.append(frame["type"])
        if frame["type"] == "event":
            seqs.append(frame["event"]["seq"])
        if stop(frame, seqs):
            return seqs, kinds


def test_websocket_resumed_by_after_seq_gives_each_later_event_exactly_once_and_refuses_others(
    server: Server, home: Path, tmp_path: Path
) -> None:
    headers, user_id = sign_up(server.url, "owner@example.org")
    other, _other_id = sign_up(server.url, "other@example.org")
    grant(home, user_id, "10")
    started = execute(server.url, headers, slow_script(tmp_path / "slow.json"))
    ws_url = f"ws://127.0.0.1:{server.port}/api/v1/ws"
    token = headers["Authorization"].removeprefix("Bearer ")

    with connect(ws_url) as ws:  # authenticated by its first message
        ws.send(json.dumps({"type": "auth", "token": token}))
        assert _receive(ws)["type"] == "authenticated"
        ws.send("not json")
        assert _receive(ws)["code"] == "invalid_json"
        ws.send(json.dumps({"type": "dance"}))
        assert _receive(ws)["code"] == "unknown_type"
        ws.send(json.dumps({"type": "subscribe", "session_id": started["id"], "after_seq": "0"}))
        assert _receive(ws)["code"] == "invalid_message"
        ws.send(json.dumps({"type": "ping", "id": 7}))
        assert _receive(ws) == {"type": "pong", "id": 7}
        ws.send(json.dumps({"type": "subscribe", "session_id": started["id"], "after_seq": 0}))
        assert _receive(ws)["type"] == "subscribed"
        first, _ = _events_until(ws, lambda frame, seqs: len(seqs) == 5)
    assert first == [1, 2, 3, 4, 5]

    with connect(ws_url, additional_headers=headers) as ws:  # authenticated by its header
        assert _receive(ws)["type"] == "authenticated"
        ws.send(json.dumps({"type": "subscribe", "session_id": started["id"], "after_seq": 5}))
        assert _receive(ws)["type"] == "subscribed"
        second, kinds = _events_until(ws, lambda frame, seqs: frame["type"] == "end")
    total = len(events_of(server.url, headers, started["id"]))
    assert second == list(range(6, total + 1))
    assert "delta" in kinds and "heartbeat" in kinds

    with connect(ws_url, additional_headers=other) as ws:
        assert _receive(ws)["type"] == "authenticated"
        ws.send(json.dumps({"type": "subscribe", "session_id": started["id"]}))
        refused = _receive(ws)
        assert refused["type"] == "error" and refused["code"] == "not_found"
        ws.send(json.dumps({"type": "ping"}))
        assert _receive(ws)["type"] == "pong"  # a refusal does not end the connection

    admin = _login(server.url, ADMIN_EMAIL)
    with connect(ws_url, additional_headers=admin) as ws:
        assert _receive(ws)["admin"] is True
        ws.send(json.dumps({"type": "subscribe", "session_id": started["id"], "after_seq": total - 1}))
        assert _receive(ws)["type"] == "subscribed"
        seqs, _ = _events_until(ws, lambda frame, seqs: frame["type"] == "end")
    assert seqs == [total]

    for query in (f"?token={token}", f"?access_token={token}"):
        with connect(ws_url + query) as ws:
            refusal = _receive(ws)
            assert refusal["code"] == "token_in_url"
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=10)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    with connect(ws_url) as ws:
        ws.send(json.dumps({"type": "auth", "token": "not-a-token"}))
        assert _receive(ws)["type"] == "error"
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=10)


def _login(base_url: str, email: str) -> dict[str, str]:
    response = httpx.post(f"{base_url}{API}/login", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return bearer(response.json()["access_token"])
