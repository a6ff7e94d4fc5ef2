"""Fan-out across processes: one run executed by a `keen worker`, N subscribers (200 by default)
split across two `keen serve` replicas, half over the WebSocket and half over SSE.

Everything runs for real on the PostgreSQL of this machine: a fresh database upgraded by `keen db
upgrade` as its owner, replicas and workers connected as a login role of `keen_app` (filtered by
row-level security, as a deployment is), KEEN_RUN_MODE=distributed on all of them (with
`--inprocess`: no workers, replica 1 runs the session itself). The run is an admin's with the
scripted model; every subscriber connects and subscribes from seq 0 while its first reply is
still pending. An event goes from the worker's commit (its NOTIFY) to each replica's bus, which
reads it once from the table and hands it to every local subscriber. Latency is the time from an
event's timestamp (taken by the worker as it records it) to its arrival at a subscriber, over
the events recorded after everyone subscribed; all processes share the machine's clock. It checks
that every subscriber got every event of the tree, in seq order, exactly once.

    python bench/fanout_distributed.py [--subscribers 200] [--steps 60] [--inprocess] [--record]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
from _common import add_record_flag, percentile, write_results
from websockets.asyncio.client import connect

KEEN = Path(sys.executable).parent / "keen"
ADMIN, PASSWORD = "bench@example.org", "Bench-password-1"
FIRST_REPLY_DELAY_MS = 6000  # time for every subscriber to connect before the run goes on
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def script(path: Path, steps: int, delay_ms: int) -> Path:
    turns: list[dict[str, Any]] = [
        {
            "tool_calls": [{"name": "continue_work", "input": {"next_action": "wait for the watchers"}}],
            "delay_ms": FIRST_REPLY_DELAY_MS,
        }
    ]
    turns += [
        {
            "text": f"step {i}",
            "tool_calls": [{"name": "continue_work", "input": {"next_action": f"step {i}"}}],
            "delay_ms": delay_ms,
        }
        for i in range(steps)
    ]
    turns.append({"tool_calls": [{"name": "report_complete", "input": {"summary": "done"}}]})
    path.write_text(json.dumps(turns))
    return path


@contextmanager
def database(pg_admin: str) -> Iterator[tuple[str, str]]:
    """A fresh database upgraded by `keen db upgrade` as its owner, and a login role of
    `keen_app` for the processes: (owner URL, application URL); both dropped afterwards."""
    name = f"keen_bench_{uuid.uuid4().hex[:10]}"
    role = f"keen_bench_app_{uuid.uuid4().hex[:8]}"
    base = pg_admin.rsplit("/", 1)[0]
    owner_url = f"{base}/{name}"
    with psycopg.connect(pg_admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        upgraded = subprocess.run(
            [str(KEEN), "db", "upgrade"],
            env={**os.environ, "KEEN_DATABASE_URL": owner_url},
            capture_output=True,
            text=True,
        )
        if upgraded.returncode != 0:
            raise SystemExit(f"keen db upgrade failed: {upgraded.stderr}")
        with psycopg.connect(pg_admin, autocommit=True) as conn:
            conn.execute(f'CREATE ROLE "{role}" LOGIN IN ROLE keen_app')
        app_url = owner_url.replace("://postgres@", f"://{role}@", 1).replace(
            "postgresql://", "postgresql+psycopg://"
        )
        yield owner_url, app_url
    finally:
        with psycopg.connect(pg_admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'DROP ROLE IF EXISTS "{role}"')


def keen_env(home: Path, database_url: str, run_mode: str) -> dict[str, str]:
    env = {
        **os.environ,
        "KEEN_HOME": str(home),  # shared: every worker must see the workspaces
        "KEEN_DATABASE_URL": database_url,
        "KEEN_RUN_MODE": run_mode,
        "KEEN_ALLOW_SCRIPTED_MODELS": "1",
        "KEEN_ADMIN_EMAIL": ADMIN,
        "KEEN_ADMIN_PASSWORD": PASSWORD,
        "KEEN_SECRET_KEY": "bench-secret-" + "x" * 40,
        "KEEN_ARGON2_TIME_COST": "1",
        "KEEN_ARGON2_MEMORY_KIB": "8192",
        "KEEN_ARGON2_PARALLELISM": "1",
        "KEEN_RATE_LIMIT": "100000/hour",
        "KEEN_RATE_LIMIT_AUTH": "100000/hour",
    }
    if shutil.which("bwrap") is None:
        env["KEEN_SANDBOX"] = "none"  # the run's commands are none but continue_work
    return env


def start_server(env: dict[str, str], port: int, stack: ExitStack) -> str:
    process = subprocess.Popen(
        [str(KEEN), "serve", "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    stack.callback(_stop, process)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"keen serve exited: {process.stderr.read().decode() if process.stderr else ''}")
        try:
            if httpx.get(f"{base}/health/live", timeout=1).status_code == 200:
                return base
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit("keen serve did not come up")


def start_worker(env: dict[str, str], concurrency: int, stack: ExitStack) -> None:
    process = subprocess.Popen(
        [str(KEEN), "worker", "--concurrency", str(concurrency)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    stack.callback(_stop, process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=30)


class Subscriber:
    def __init__(self, base: str, transport: str) -> None:
        self.base = base
        self.transport = transport
        self.seqs: list[int] = []
        self.latencies: list[float] = []  # seconds, of events recorded after `since`
        self.subscribed = asyncio.Event()

    def received(self, event: dict[str, Any], since: list[float]) -> None:
        arrived = time.time()
        self.seqs.append(event["seq"])
        recorded = datetime.fromisoformat(event["ts"]).timestamp()
        if since and recorded > since[0]:
            self.latencies.append(arrived - recorded)

    async def run(self, token: str, session_id: str, since: list[float], http: httpx.AsyncClient) -> None:
        if self.transport == "ws":
            await self._websocket(token, session_id, since)
        else:
            await self._sse(token, session_id, since, http)

    async def _websocket(self, token: str, session_id: str, since: list[float]) -> None:
        url = self.base.replace("http://", "ws://") + "/api/v1/ws"
        async with connect(url, max_size=2**22, open_timeout=60) as ws:
            await ws.send(json.dumps({"type": "auth", "token": token}))
            await ws.send(json.dumps({"type": "subscribe", "session_id": session_id, "after_seq": 0}))
            async for raw in ws:
                frame = json.loads(raw)
                kind = frame["type"]
                if kind == "subscribed":
                    self.subscribed.set()
                elif kind == "event":
                    self.received(frame["event"], since)
                elif kind == "end":
                    return
                elif kind == "error":
                    raise RuntimeError(f"error frame: {frame}")

    async def _sse(self, token: str, session_id: str, since: list[float], http: httpx.AsyncClient) -> None:
        url = f"{self.base}/api/v1/agents/sessions/{session_id}/stream"
        headers = {"Authorization": f"Bearer {token}"}
        async with http.stream("GET", url, headers=headers, timeout=None) as response:
            response.raise_for_status()
            self.subscribed.set()  # the stream is open: it sends what is stored, then live
            frame: dict[str, str] = {}
            async for line in response.aiter_lines():
                if line:
                    field, _, value = line.partition(":")
                    frame[field] = value.removeprefix(" ")
                    continue
                if "id" in frame:  # a stored event (deltas and heartbeats carry no id)
                    self.received(json.loads(frame["data"]), since)
                frame = {}


async def measure(
    bases: list[str], subscribers: int, steps: int, delay_ms: int, workdir: Path
) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    async with httpx.AsyncClient(base_url=bases[0], timeout=60, limits=limits) as client:
        login = await client.post("/api/v1/auth/login", json={"email": ADMIN, "password": PASSWORD})
        login.raise_for_status()
        token = login.json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        body = {
            "vision": "take many small steps for the watchers",
            "options": {
                "model": f"scripted:{script(workdir / 'fanout.json', steps, delay_ms)}",
                "max_iterations": steps + 10,
                "gates": "off",
                "web_search": False,
            },
        }
        started = await client.post("/api/v1/agents/execute", json=body, headers=auth)
        started.raise_for_status()
        session_id = started.json()["id"]
        clients = [
            Subscriber(bases[i % len(bases)], "ws" if (i // len(bases)) % 2 == 0 else "sse")
            for i in range(subscribers)
        ]
        since: list[float] = []
        tasks = [asyncio.create_task(c.run(token, session_id, since, client)) for c in clients]
        connect_started = time.perf_counter()
        await asyncio.wait_for(asyncio.gather(*(c.subscribed.wait() for c in clients)), 120)
        since.append(time.time())
        connected_s = time.perf_counter() - connect_started
        await asyncio.wait_for(asyncio.gather(*tasks), 600)
        events = (
            await client.get(
                f"/api/v1/agents/sessions/{session_id}/events", params={"limit": 1000}, headers=auth
            )
        ).json()["items"]
        session = (await client.get(f"/api/v1/agents/sessions/{session_id}", headers=auth)).json()
    expected = [e["seq"] for e in events]
    complete = sum(1 for c in clients if c.seqs == expected)
    gap_free = expected == list(range(1, len(expected) + 1))
    figures: dict[str, Any] = {
        "subscribers": subscribers,
        "replicas": len(bases),
        "events": len(expected),
        "session_status": session.get("status"),
        "subscribers_with_every_event_once_in_order": complete,
        "all_complete_and_in_order": complete == subscribers and gap_free,
        "duplicates": sum(len(c.seqs) - len(set(c.seqs)) for c in clients),
        "connect_and_subscribe_s": round(connected_s, 3),
        "step_delay_ms": delay_ms,
    }
    groups: dict[str, list[Subscriber]] = {"all": clients}
    for transport in ("ws", "sse"):
        groups[transport] = [c for c in clients if c.transport == transport]
    for index, base in enumerate(bases):
        groups[f"replica_{index + 1}"] = [c for c in clients if c.base == base]
    figures["latency_ms"] = {name: _latency(group) for name, group in groups.items() if group}
    return figures


def _latency(clients: list[Subscriber]) -> dict[str, float | int]:
    latencies = sorted(x * 1000 for c in clients for x in c.latencies)
    if not latencies:
        return {"deliveries": 0}
    return {
        "deliveries": len(latencies),
        "p50": round(percentile(latencies, 0.50), 2),
        "p99": round(percentile(latencies, 0.99), 2),
        "max": round(latencies[-1], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=200)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--step-delay-ms", type=int, default=20)
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=2, help="runs per worker")
    parser.add_argument(
        "--inprocess",
        action="store_true",
        help="no workers: replica 1 runs the session (KEEN_RUN_MODE=inprocess)",
    )
    parser.add_argument(
        "--pg-admin-url", default=PG_ADMIN, help="a superuser's URL to make the database with"
    )
    add_record_flag(parser)
    args = parser.parse_args()
    mode = "inprocess" if args.inprocess else "distributed"
    with tempfile.TemporaryDirectory(prefix="keen-fanout-distributed-") as tmp, ExitStack() as stack:
        _owner_url, app_url = stack.enter_context(database(args.pg_admin_url))
        env = keen_env(Path(tmp) / "home", app_url, mode)
        # One at a time: the first creates the admin, the others find it.
        bases = [start_server(env, free_port(), stack) for _ in range(args.replicas)]
        if not args.inprocess:
            for _ in range(args.workers):
                start_worker(env, args.concurrency, stack)
        figures = asyncio.run(measure(bases, args.subscribers, args.steps, args.step_delay_ms, Path(tmp)))
        figures["run_mode"] = mode
        figures["workers"] = 0 if args.inprocess else args.workers
    latency = figures["latency_ms"]["all"]
    print(
        f"{figures['subscribers']} subscribers on {figures['replicas']} replicas ({mode}) × {figures['events']} "
        f"events: delivery p50 {latency.get('p50')} ms, p99 {latency.get('p99')} ms, max {latency.get('max')} ms; "
        f"every subscriber got every event once in order: {figures['all_complete_and_in_order']} "
        f"({figures['subscribers_with_every_event_once_in_order']}/{figures['subscribers']}, "
        f"{figures['duplicates']} duplicates)"
    )
    for name, group in figures["latency_ms"].items():
        if name != "all":
            print(
                f"  {name}: p50 {group.get('p50')} ms, p99 {group.get('p99')} ms, max {group.get('max')} ms"
            )
    print(f"wrote {write_results('fanout_distributed', figures, record=args.record)}")
    if not figures["all_complete_and_in_order"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
