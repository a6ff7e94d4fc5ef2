"""Distributed mode for real: `keen serve` replicas and `keen worker` processes as subprocesses on
the PostgreSQL of this machine, runs of the scripted model queued as procrastinate jobs."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psycopg
import pytest
from websockets.sync.client import connect

from clusterkit import Cluster, Worker, cluster
from helpers import call, complete, sleeping, turn, unique_sleep, wait_sleeping, write_script
from runkit import (
    AGENTS,
    FAST,
    assert_gap_free,
    events_of,
    execute,
    session_of,
    sign_up,
    wait_events,
    wait_finished,
)

pytestmark = pytest.mark.slow


def steps_script(path: Path, steps: int, delay_ms: int = 200) -> Path:
    turns = [
        turn(call("continue_work", next_action=f"step {i}"), text=f"step {i}", delay_ms=delay_ms)
        for i in range(steps)
    ]
    return write_script(path, [*turns, complete("all steps taken")])


def test_a_run_executed_on_a_replica_is_run_by_a_worker(tmp_path: Path) -> None:
    with cluster(tmp_path) as c:
        server = c.server()
        worker = c.worker()
        headers, user_id = c.user(server, "one@example.org")
        started = execute(server.url, headers, steps_script(tmp_path / "s.json", 3))
        finished = wait_finished(server.url, headers, started["id"], timeout=60)
        assert finished["status"] == "completed", (finished, worker.output())
        events = events_of(server.url, headers, started["id"])
        assert_gap_free(events)
        assert [status for _, status, _ in c.jobs(started["id"])] == ["succeeded"]
        assert c.open_holds(user_id) == 0


def _worker_running(c: Cluster, session_id: str) -> Worker:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        owner = c.one("select lease_owner from sessions where id = %s", session_id) or ""
        pid = owner.split(":")[1] if owner.count(":") >= 2 else ""
        for worker in c.workers:
            if str(worker.pid) == pid:
                return worker
        time.sleep(0.05)
    raise AssertionError(f"no worker holds the lease of {session_id}")


def test_a_worker_killed_mid_run_is_taken_over_within_15_s_losing_and_charging_nothing_twice(
    tmp_path: Path,
) -> None:
    with cluster(tmp_path) as c:
        server = c.server()
        c.worker()
        c.worker()
        headers, user_id = c.user(server, "survivor@example.org")
        started = execute(server.url, headers, steps_script(tmp_path / "long.json", 14, delay_ms=300))
        wait_events(server.url, headers, started["id"], "model.responded", count=4)
        victim = _worker_running(c, started["id"])
        victim.kill()
        killed = time.monotonic()
        wait_events(server.url, headers, started["id"], "session.resumed", timeout=30)
        took_over = time.monotonic() - killed
        survivor = _worker_running(c, started["id"])
        assert survivor is not victim
        finished = wait_finished(server.url, headers, started["id"], timeout=60)
        assert finished["status"] == "completed", survivor.output()
        assert took_over < 15, f"taken over after {took_over:.1f} s"

        events = events_of(server.url, headers, started["id"])
        assert_gap_free(events)
        responded = [e for e in events if e["type"] == "model.responded"]
        steps = [e["data"].get("text") for e in responded]
        assert len(steps) == len(set(steps)) == 15, steps  # each scripted reply once
        charges, _ = c.usage(user_id)
        assert charges == len(responded)  # each model call charged once
        assert c.open_holds(user_id) == 0
        assert [status for _, status, _ in c.jobs(started["id"])] == ["succeeded"]


def test_cancel_through_another_replica_ends_a_running_session_within_3_s_and_kills_its_command(
    tmp_path: Path,
) -> None:
    with cluster(tmp_path) as c:
        first, second = c.server(), c.server()
        c.worker()
        headers, user_id = c.user(first, "canceller@example.org")
        token = unique_sleep()
        script = write_script(
            tmp_path / "sleepy.json",
            [turn(call("run_command", command=f"sleep {token}", timeout_seconds=600)), complete()],
        )
        started = execute(first.url, headers, script, vision="wait a long time")
        wait_sleeping(token)
        asked = time.monotonic()
        response = httpx.post(
            f"{second.url}{AGENTS}/sessions/{started['id']}/cancel", headers=headers, timeout=30
        )
        assert response.status_code == 202, response.text
        while session_of(second.url, headers, started["id"])["status"] != "cancelled":
            assert time.monotonic() - asked < 3, "not cancelled within 3 s"
            time.sleep(0.05)
        assert not sleeping(token), "the command outlived the cancel"
        assert c.open_holds(user_id) == 0
        events = events_of(first.url, headers, started["id"])
        assert_gap_free(events)
        assert events[-1]["type"] == "session.finished" and events[-1]["data"]["status"] == "cancelled"
        deadline = time.monotonic() + 10
        while c.jobs(started["id"])[0][1] == "doing" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [status for _, status, _ in c.jobs(started["id"])] in (["aborted"], ["succeeded"])


def test_a_queued_session_is_cancelled_without_running(tmp_path: Path) -> None:
    with cluster(tmp_path) as c:
        server = c.server()  # no worker: the run stays queued
        headers, user_id = c.user(server, "early@example.org")
        started = execute(server.url, headers, steps_script(tmp_path / "s.json", 1))
        assert [status for _, status, _ in c.jobs(started["id"])] == ["todo"]
        response = httpx.post(
            f"{server.url}{AGENTS}/sessions/{started['id']}/cancel", headers=headers, timeout=30
        )
        assert response.status_code == 202, response.text
        assert session_of(server.url, headers, started["id"])["status"] == "cancelled"
        assert [status for _, status, _ in c.jobs(started["id"])] == ["cancelled"]
        c.worker()
        time.sleep(2)  # a worker that comes up has nothing to run
        types = [e["type"] for e in events_of(server.url, headers, started["id"])]
        assert "session.started" not in types and types[-1] == "session.finished"
        assert c.open_holds(user_id) == 0


def test_a_stopping_worker_hands_its_run_back_and_another_worker_finishes_it(tmp_path: Path) -> None:
    with cluster(tmp_path) as c:
        server = c.server()
        first = c.worker(KEEN_WORKER_SHUTDOWN_GRACE_SECONDS="5")
        headers, user_id = c.user(server, "handover@example.org")
        started = execute(server.url, headers, steps_script(tmp_path / "long.json", 12, delay_ms=300))
        wait_events(server.url, headers, started["id"], "model.responded", count=3)
        assert _worker_running(c, started["id"]) is first
        second = c.worker()
        asked = time.monotonic()
        assert first.stop(timeout=30) == 0, first.output()
        assert time.monotonic() - asked < 10, "the worker did not stop within its grace period"
        finished = wait_finished(server.url, headers, started["id"], timeout=60)
        assert finished["status"] == "completed", second.output()
        events = events_of(server.url, headers, started["id"])
        assert_gap_free(events)
        types = [e["type"] for e in events]
        assert types.count("session.started") == 1 and types.count("session.resumed") == 1
        assert "session.finished" not in types[: types.index("session.resumed")]  # suspended, not ended
        responded = [e for e in events if e["type"] == "model.responded"]
        assert len(responded) == 13
        charges, _ = c.usage(user_id)
        assert charges == len(responded)
        assert c.open_holds(user_id) == 0
        assert [status for _, status, _ in c.jobs(started["id"])] == ["succeeded"]
        assert c.one("select attempts from procrastinate_jobs where lock = %s", started["id"]) == 2


def test_two_jobs_for_one_session_never_run_at_once(tmp_path: Path) -> None:
    with cluster(tmp_path) as c:
        server = c.server()
        c.worker(concurrency=2)
        c.worker(concurrency=2)
        headers, _user_id = c.user(server, "twice@example.org")
        started = execute(server.url, headers, steps_script(tmp_path / "s.json", 6, delay_ms=300))
        wait_events(server.url, headers, started["id"], "session.started")

        async def defer_again() -> list[str]:
            import procrastinate

            from keen.config import Settings
            from keen.runner.queue import defer_run, queue_app

            app = queue_app(Settings(KEEN_DATABASE_URL=c.owner_url, KEEN_RUN_MODE="distributed"))
            outcomes = []
            async with app.open_async(), await psycopg.AsyncConnection.connect(c.owner_url) as conn:
                for _ in range(2):
                    try:
                        async with conn.transaction():
                            await defer_run(app, conn, started["id"])
                        outcomes.append("deferred")
                    except procrastinate.exceptions.AlreadyEnqueued:
                        outcomes.append("already queued")
            return outcomes

        # The first run is going: one more job may wait for it, never two.
        assert asyncio.run(defer_again()) == ["deferred", "already queued"]
        assert wait_finished(server.url, headers, started["id"], timeout=60)["status"] == "completed"
        deadline = time.monotonic() + 20
        while any(status != "succeeded" for _, status, _ in c.jobs(started["id"])):
            assert time.monotonic() < deadline, c.jobs(started["id"])
            time.sleep(0.1)
        spans = c.query(
            "select job_id, min(at) filter (where type = 'started'), max(at) filter (where type = 'succeeded') "
            "from procrastinate_events where job_id in (select id from procrastinate_jobs where lock = %s) "
            "group by job_id order by job_id",
            started["id"],
        )
        assert len(spans) == 2
        (_, _, first_end), (_, second_start, _) = spans
        assert second_start >= first_end, spans
        types = [e["type"] for e in events_of(server.url, headers, started["id"])]
        assert types.count("session.started") == 1 and "session.resumed" not in types


def test_twenty_sessions_of_five_users_all_complete_within_each_users_running_limit(tmp_path: Path) -> None:
    limit = 2
    with cluster(tmp_path) as c:
        replicas = [c.server(KEEN_MAX_RUNNING_SESSIONS=str(limit)) for _ in range(2)]
        users = []
        for n in range(5):
            headers, user_id = sign_up(replicas[0].url, f"user{n}@example.org")
            c.grant(user_id, "20")
            users.append((headers, user_id))
        script = steps_script(tmp_path / "s.json", 3, delay_ms=150)

        def post(index: int) -> httpx.Response:
            body = {
                "vision": f"run session number {index}",
                "options": {"model": f"scripted:{script}", **FAST},
            }
            headers, _ = users[index % 5]
            url = f"{replicas[index % 2].url}{AGENTS}/execute"
            return httpx.post(url, json=body, headers=headers, timeout=60)

        # No worker yet, so nothing ends: three executions of each user at once, over both
        # replicas, admit exactly two.
        with ThreadPoolExecutor(max_workers=15) as pool:
            first = list(pool.map(post, range(15)))
        for n in range(5):
            codes = sorted(r.status_code for i, r in enumerate(first) if i % 5 == n)
            assert codes == [202, 202, 409], [r.text for i, r in enumerate(first) if i % 5 == n]
        ids = [str(r.json()["id"]) for r in first if r.status_code == 202]

        c.worker(concurrency=3)
        c.worker(concurrency=3)

        def submit(index: int) -> str:
            while (response := post(index)).status_code == 409:
                time.sleep(0.2)  # a place frees when one of the user's sessions ends
            assert response.status_code == 202, response.text
            return str(response.json()["id"])

        with ThreadPoolExecutor(max_workers=10) as pool:
            ids += list(pool.map(submit, range(10)))
        assert len(ids) == 20
        for session_id in ids:
            owner = c.one("select user_id from sessions where id = %s", session_id)
            headers = next(h for h, user_id in users if user_id == owner)
            assert wait_finished(replicas[0].url, headers, session_id, timeout=120)["status"] == "completed"
        for _headers, user_id in users:
            spans = c.query(
                "select min(ts) filter (where type = 'session.created'), "
                "max(ts) filter (where type = 'session.finished') "
                "from session_events where user_id = %s and session_id = root_id group by root_id",
                user_id,
            )
            assert len(spans) == 4
            for start, _ in spans:
                overlapping = sum(1 for s, e in spans if s <= start < e)
                assert overlapping <= limit, spans
            assert c.open_holds(user_id) == 0


def _sse_seqs(url: str, headers: dict[str, str]) -> list[int]:
    seqs = []
    with httpx.stream("GET", url, headers=headers, timeout=60) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("id:"):
                seqs.append(int(line.removeprefix("id:").strip()))
    return seqs


def _ws_seqs(url: str, token: str, session_id: str) -> tuple[list[int], int]:
    """The seqs of the events a WebSocket client gets, and how many live deltas."""
    seqs, deltas = [], 0
    with connect(url) as ws:
        ws.send(json.dumps({"type": "auth", "token": token}))
        assert json.loads(ws.recv(timeout=20))["type"] == "authenticated"
        ws.send(json.dumps({"type": "subscribe", "session_id": session_id, "after_seq": 0}))
        while True:
            frame = json.loads(ws.recv(timeout=60))
            if frame["type"] == "event":
                seqs.append(frame["event"]["seq"])
            elif frame["type"] == "delta":
                deltas += 1
            elif frame["type"] == "end":
                return seqs, deltas


def test_a_run_on_a_worker_streams_to_websocket_and_sse_clients_of_other_replicas(tmp_path: Path) -> None:
    with cluster(tmp_path) as c:
        first, second = c.server(), c.server()
        headers, _user_id = c.user(first, "watched@example.org")
        started = execute(first.url, headers, steps_script(tmp_path / "s.json", 8, delay_ms=100))
        token = headers["Authorization"].removeprefix("Bearer ")
        with ThreadPoolExecutor(max_workers=2) as pool:
            over_ws = pool.submit(_ws_seqs, f"ws://127.0.0.1:{second.port}/api/v1/ws", token, started["id"])
            over_sse = pool.submit(_sse_seqs, f"{first.url}{AGENTS}/sessions/{started['id']}/stream", headers)
            time.sleep(1)  # both watch before any worker runs the session: its events come live
            c.worker()
            (ws_seqs, deltas), sse_seqs = over_ws.result(timeout=90), over_sse.result(timeout=90)
        total = len(events_of(first.url, headers, started["id"]))
        assert total > 20
        assert ws_seqs == list(range(1, total + 1))
        assert sse_seqs == list(range(1, total + 1))
        assert deltas > 0, "the worker's live text never reached the other replica"


def test_the_execute_rate_limit_counts_the_requests_of_every_replica(tmp_path: Path) -> None:
    prefix = f"keen-test-{uuid.uuid4().hex[:8]}"
    limits = {"KEEN_REDIS_URL": "redis://127.0.0.1:6379/0", "KEEN_RATE_LIMIT_PREFIX": prefix}
    with cluster(tmp_path) as c:
        first, second = (c.server(KEEN_RATE_LIMIT_EXECUTE="2/hour", **limits) for _ in range(2))
        headers, _user_id = c.user(first, "hasty@example.org")
        script = steps_script(tmp_path / "s.json", 1)
        body = {"vision": "one quick step only", "options": {"model": f"scripted:{script}", **FAST}}
        codes = [
            httpx.post(f"{replica.url}{AGENTS}/execute", json=body, headers=headers, timeout=60).status_code
            for replica in (first, second, second)
        ]
        assert codes == [202, 202, 429]


def test_the_commands_of_a_killed_worker_die_with_it(tmp_path: Path) -> None:
    with cluster(tmp_path) as c:
        server = c.server()
        worker = c.worker()
        headers, _user_id = c.user(server, "orphans@example.org")
        token = unique_sleep()
        script = write_script(
            tmp_path / "sleepy.json",
            [turn(call("run_command", command=f"sleep {token}", timeout_seconds=600)), complete()],
        )
        execute(server.url, headers, script, vision="wait a long time")
        wait_sleeping(token)
        worker.kill()
        deadline = time.monotonic() + 5
        while sleeping(token) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not sleeping(token), "the command outlived its worker"


def test_many_sse_streams_on_one_replica_each_get_the_whole_run(tmp_path: Path) -> None:
    """More streams than the replica's database pool has connections: a stream holds none."""
    with cluster(tmp_path) as c:
        server = c.server()
        headers, _user_id = c.user(server, "crowd@example.org")
        started = execute(server.url, headers, steps_script(tmp_path / "s.json", 4, delay_ms=100))
        url = f"{server.url}{AGENTS}/sessions/{started['id']}/stream"
        with ThreadPoolExecutor(max_workers=40) as pool:
            streams = [pool.submit(_sse_seqs, url, headers) for _ in range(40)]
            time.sleep(2)  # every stream is open (and would hold a connection) before the run starts
            c.worker()
            seen = [stream.result(timeout=120) for stream in streams]
        total = len(events_of(server.url, headers, started["id"]))
        assert all(seqs == list(range(1, total + 1)) for seqs in seen)
