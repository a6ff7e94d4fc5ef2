"""Fan-out of a live session: one session emitting events, N WebSocket subscribers (200 by
default) on one `keen serve`.

The server runs in its own process (a real `keen serve` on a temp home, the scripted model, an
admin's run so no credits are needed); every subscriber connects, authenticates and subscribes
from seq 0 while the run's first reply is still pending, then receives the whole stream. Delivery
latency is the time from an event's timestamp (taken by the server as it records the event) to
its arrival at a subscriber, over the events recorded after everyone subscribed; the client and
server share the machine's clock. It checks that every subscriber got every event of the tree,
in seq order, exactly once, and prints p50/p99 (and max) of the latency.

    python bench/fanout.py [--subscribers 200] [--steps 60] [--record]
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
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from _common import add_record_flag, percentile, write_results
from websockets.asyncio.client import connect

KEEN = Path(sys.executable).parent / "keen"
ADMIN, PASSWORD = "bench@example.org", "Bench-password-1"
FIRST_REPLY_DELAY_MS = 4000  # time for every subscriber to connect before the run goes on


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


def server_env(home: Path) -> dict[str, str]:
    """The environment of a benchmarked `keen serve`: scripted models, an admin, no limits in the way."""
    env = {
        **os.environ,
        "KEEN_HOME": str(home),
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


def start_server(home: Path, port: int, extra_env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [str(KEEN), "serve", "--port", str(port)],
        env={**server_env(home), **(extra_env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health/live", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("keen serve did not come up")


class Subscriber:
    def __init__(self) -> None:
        self.seqs: list[int] = []
        self.latencies: list[float] = []  # seconds, of events recorded after `since`
        self.subscribed = asyncio.Event()

    async def run(self, url: str, token: str, session_id: str, since: list[float]) -> None:
        async with connect(url, max_size=2**22, open_timeout=60) as ws:
            await ws.send(json.dumps({"type": "auth", "token": token}))
            await ws.send(json.dumps({"type": "subscribe", "session_id": session_id, "after_seq": 0}))
            async for raw in ws:
                arrived = time.time()
                frame = json.loads(raw)
                kind = frame["type"]
                if kind == "subscribed":
                    self.subscribed.set()
                elif kind == "event":
                    event = frame["event"]
                    self.seqs.append(event["seq"])
                    recorded = datetime.fromisoformat(event["ts"]).timestamp()
                    if since and recorded > since[0]:
                        self.latencies.append(arrived - recorded)
                elif kind == "end":
                    return
                elif kind == "error":
                    raise RuntimeError(f"error frame: {frame}")


async def measure(base: str, subscribers: int, steps: int, delay_ms: int, workdir: Path) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        login = await client.post("/api/v1/auth/login", json={"email": ADMIN, "password": PASSWORD})
        login.raise_for_status()
        token = login.json()["access_token"]
        body = {
            "vision": "take many small steps for the watchers",
            "options": {
                "model": f"scripted:{script(workdir / 'fanout.json', steps, delay_ms)}",
                "max_iterations": steps + 10,
                "gates": "off",
                "web_search": False,
            },
        }
        started = await client.post(
            "/api/v1/agents/execute", json=body, headers={"Authorization": f"Bearer {token}"}
        )
        started.raise_for_status()
        session_id = started.json()["id"]
        url = base.replace("http://", "ws://") + "/api/v1/ws"
        clients = [Subscriber() for _ in range(subscribers)]
        since: list[float] = []
        tasks = [asyncio.create_task(c.run(url, token, session_id, since)) for c in clients]
        connect_started = time.perf_counter()
        await asyncio.wait_for(asyncio.gather(*(c.subscribed.wait() for c in clients)), 120)
        since.append(time.time())
        connected_s = time.perf_counter() - connect_started
        await asyncio.gather(*tasks)
        events = (
            await client.get(
                f"/api/v1/agents/sessions/{session_id}/events",
                params={"limit": 1000},
                headers={"Authorization": f"Bearer {token}"},
            )
        ).json()["items"]
    expected = [e["seq"] for e in events]
    complete = sum(1 for c in clients if c.seqs == expected)
    latencies = sorted(x * 1000 for c in clients for x in c.latencies)
    return {
        "subscribers": subscribers,
        "events": len(expected),
        "subscribers_with_every_event_in_order": complete,
        "all_complete_and_in_order": complete == subscribers
        and expected == list(range(1, len(expected) + 1)),
        "connect_and_subscribe_s": round(connected_s, 3),
        "deliveries_measured": len(latencies),
        "latency_ms": {
            "p50": round(percentile(latencies, 0.50), 2),
            "p99": round(percentile(latencies, 0.99), 2),
            "max": round(latencies[-1], 2),
        },
        "step_delay_ms": delay_ms,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=200)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--step-delay-ms", type=int, default=20)
    add_record_flag(parser)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="keen-fanout-") as tmp:
        port = free_port()
        server = start_server(Path(tmp) / "home", port)
        try:
            figures = asyncio.run(
                measure(
                    f"http://127.0.0.1:{port}", args.subscribers, args.steps, args.step_delay_ms, Path(tmp)
                )
            )
        finally:
            server.terminate()
            server.wait(timeout=30)
    latency = figures["latency_ms"]
    print(
        f"{figures['subscribers']} subscribers × {figures['events']} events: delivery p50 {latency['p50']} ms, "
        f"p99 {latency['p99']} ms, max {latency['max']} ms; every subscriber got every event in order: "
        f"{figures['all_complete_and_in_order']} ({figures['subscribers_with_every_event_in_order']}/{figures['subscribers']})"
    )
    print(f"wrote {write_results('fanout', figures, record=args.record)}")
    if not figures["all_complete_and_in_order"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
