"""Fan-out across processes: one run executed by a `keen worker`, N subscribers (200 by default)
split across two `keen serve` replicas, over the WebSocket (`--transport mix`: half over SSE).

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

Seen here (2 cores, shared by the replicas, the workers and this script's 200 clients): over the
WebSocket alone p50 ≈ 45 ms, p99 ≈ 250 ms; with half the clients on SSE everything slows to
seconds (the SSE clients' parsing and streams cost far more CPU), so the default is the WebSocket.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
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
from fanout import ADMIN, KEEN, PASSWORD, Subscriber, free_port, script, server_env, start_server

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


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


class Watcher(Subscriber):
    """A subscriber of one replica, over the WebSocket (as in fanout.py) or SSE."""

    def __init__(self, base: str, transport: str) -> None:
        super().__init__()
        self.base = base
        self.transport = transport

    async def watch(self, token: str, session_id: str, since: list[float], http: httpx.AsyncClient) -> None:
        if self.transport == "ws":
            await self.run(self.base.replace("http://", "ws://") + "/api/v1/ws", token, session_id, since)
            return
        url = f"{self.base}/api/v1/agents/sessions/{session_id}/stream"
        async with http.stream(
            "GET", url, headers={"Authorization": f"Bearer {token}"}, timeout=None
        ) as response:
            response.raise_for_status()
            self.subscribed.set()  # the stream is open: it sends what is stored, then live
            frame: dict[str, str] = {}
            async for line in response.aiter_lines():
                if line:
                    field, _, value = line.partition(":")
                    frame[field] = value.removeprefix(" ")
                    continue
                if "id" in frame:  # a stored event (deltas and heartbeats carry no id)
                    arrived = time.time()
                    event = json.loads(frame["data"])
                    self.seqs.append(event["seq"])
                    recorded = datetime.fromisoformat(event["ts"]).timestamp()
                    if since and recorded > since[0]:
                        self.latencies.append(arrived - recorded)
                frame = {}


async def measure(
    bases: list[str], subscribers: int, transports: list[str], steps: int, delay_ms: int, workdir: Path
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
            Watcher(bases[i % len(bases)], transports[(i // len(bases)) % len(transports)])
            for i in range(subscribers)
        ]
        since: list[float] = []
        tasks = [asyncio.create_task(c.watch(token, session_id, since, client)) for c in clients]
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
    groups: dict[str, list[Watcher]] = {"all": clients}
    for transport in ("ws", "sse"):
        groups[transport] = [c for c in clients if c.transport == transport]
    for index, base in enumerate(bases):
        groups[f"replica_{index + 1}"] = [c for c in clients if c.base == base]
    figures["latency_ms"] = {name: _latency(group) for name, group in groups.items() if group}
    return figures


def _latency(clients: list[Watcher]) -> dict[str, float | int]:
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
    parser.add_argument(
        "--transport", choices=["ws", "mix", "sse"], default="ws", help="mix: half WebSocket, half SSE"
    )
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
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the replicas and workers too
    mode = "inprocess" if args.inprocess else "distributed"
    with tempfile.TemporaryDirectory(prefix="keen-fanout-distributed-") as tmp, ExitStack() as stack:
        _owner_url, app_url = stack.enter_context(database(args.pg_admin_url))
        home = Path(tmp) / "home"  # shared: every worker must see the workspaces
        extra = {"KEEN_DATABASE_URL": app_url, "KEEN_RUN_MODE": mode}
        bases = []
        for _ in range(args.replicas):  # one at a time: the first creates the admin
            port = free_port()
            stack.callback(_stop, start_server(home, port, extra))
            bases.append(f"http://127.0.0.1:{port}")
        if not args.inprocess:
            for _ in range(args.workers):
                start_worker({**server_env(home), **extra}, args.concurrency, stack)
        transports = ["ws", "sse"] if args.transport == "mix" else [args.transport]
        figures = asyncio.run(
            measure(bases, args.subscribers, transports, args.steps, args.step_delay_ms, Path(tmp))
        )
        figures["run_mode"] = mode
        figures["transport"] = args.transport
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
