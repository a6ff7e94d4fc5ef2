"""Two `keen serve` replicas on one PostgreSQL (each connected as a login role of `keen_app`,
runs in-process): a run started on replica A is watched over the WebSocket of replica B and over
the SSE stream of A; both get every event of the tree exactly once and in seq order, and B, which
does not run it, gets its live text deltas too (only the bus across processes carries those)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from helpers import call, complete, turn, write_script
from keen.store import Database
from keen.store.db import run_migrations
from ledgerkit import grant
from pgdb import app_login_role, pg_url
from runkit import AGENTS, RUN_ENV, events_of, execute, sign_up, wait_finished
from server.test_streams_e2e import sse_frames
from serverkit import Server

__all__ = ["pg_url"]
pytestmark = pytest.mark.slow
WAIT = 30.0


@pytest.fixture
def replicas(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Server, Server, str]]:
    """Replicas A and B (each its own KEEN_HOME) on one migrated database; and the owner's URL."""
    owner_url = request.getfixturevalue("pg_url")
    run_migrations(owner_url)
    with app_login_role(owner_url) as url:
        env = {
            **RUN_ENV,
            "KEEN_DATABASE_URL": url.replace("postgresql://", "postgresql+psycopg://", 1),
            "KEEN_RUN_MODE": "inprocess",
        }
        started: list[Server] = []
        try:
            for name in ("a", "b"):
                server = Server(tmp_path / f"home-{name}", env)
                started.append(server)
                server.wait_live()
            yield started[0], started[1], owner_url
        finally:
            for server in started:
                server.stop()


def run_script(path: Path, steps: int = 8, delay_ms: int = 250) -> Path:
    turns = [
        turn(call("continue_work", next_action=f"step {i}"), text=f"working on step {i}", delay_ms=delay_ms)
        for i in range(steps)
    ]
    return write_script(path, [*turns, complete("all steps taken")])


def watch_websocket(base_url: str, token: str, session_id: str) -> tuple[list[int], list[str]]:
    """Seqs and delta texts one WebSocket subscriber gets, from seq 0 to the stream's end."""
    seqs: list[int] = []
    deltas: list[str] = []
    with connect(base_url.replace("http://", "ws://") + "/api/v1/ws") as ws:
        ws.send(json.dumps({"type": "auth", "token": token}))
        ws.send(json.dumps({"type": "subscribe", "session_id": session_id, "after_seq": 0}))
        while True:
            frame: dict[str, Any] = json.loads(ws.recv(timeout=WAIT))
            if frame["type"] == "event":
                seqs.append(frame["event"]["seq"])
            elif frame["type"] == "delta":
                deltas.append(frame["delta"]["text"])
            elif frame["type"] == "end":
                return seqs, deltas
            elif frame["type"] == "error":
                raise AssertionError(frame)


def watch_sse(base_url: str, headers: dict[str, str], session_id: str) -> list[int]:
    url = f"{base_url}{AGENTS}/sessions/{session_id}/stream"
    with httpx.stream("GET", url, headers=headers, timeout=WAIT) as response:
        assert response.status_code == 200
        return [int(frame["id"]) for frame in sse_frames(response) if "id" in frame]


def test_a_run_on_one_replica_streams_every_event_once_in_order_to_watchers_of_both(
    replicas: tuple[Server, Server, str], tmp_path: Path
) -> None:
    a, b, owner_url = replicas
    headers, user_id = sign_up(a.url, "watcher@example.org")
    asyncio.run(_grant(owner_url, user_id))
    token = headers["Authorization"].removeprefix("Bearer ")
    started = execute(a.url, headers, run_script(tmp_path / "run.json"))
    with ThreadPoolExecutor(2) as pool:
        on_b = pool.submit(watch_websocket, b.url, token, started["id"])
        on_a = pool.submit(watch_sse, a.url, headers, started["id"])
        (ws_seqs, ws_deltas), sse_seqs = on_b.result(timeout=120), on_a.result(timeout=120)
    assert wait_finished(a.url, headers, started["id"])["status"] == "completed"
    stored = [e["seq"] for e in events_of(b.url, headers, started["id"])]
    assert stored == list(range(1, len(stored) + 1)) and len(stored) > 20
    assert ws_seqs == stored
    assert sse_seqs == stored
    assert "working on step 7" in "".join(ws_deltas), ws_deltas  # streamed on A, in order


async def _grant(owner_url: str, user_id: str) -> None:
    db = Database(owner_url)
    try:
        await grant(db, user_id, "10")
    finally:
        await db.dispose()
