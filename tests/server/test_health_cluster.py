"""`/health/ready` of a real distributed deployment: a `keen serve` replica and `keen worker`
processes on one PostgreSQL. Ready while a worker lives; a worker stopped with SIGTERM leaves at
once, a killed one once its heartbeat is older than the stall time."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from clusterkit import cluster
from helpers import complete, write_script

pytestmark = pytest.mark.slow


def ready_until(url: str, done: Callable[[httpx.Response], bool], timeout: float = 30) -> httpx.Response:
    """`/health/ready` once `done` holds for its answer (the last answer after `timeout`)."""
    deadline = time.monotonic() + timeout
    while True:
        response = httpx.get(f"{url}/health/ready", timeout=10)
        if done(response) or time.monotonic() > deadline:
            return response
        time.sleep(0.2)


def live_workers(response: httpx.Response) -> int | None:
    body = response.json()
    queue = body["queue"] if response.status_code == 200 else body["error"]["details"]["queue"]
    return None if queue is None else int(queue["workers"])


def test_ready_follows_the_workers_that_live(tmp_path: Path) -> None:
    with cluster(tmp_path) as c:
        model = f"scripted:{write_script(tmp_path / 's.json', [complete()])}"
        server = c.server(KEEN_WORKER_STALL_SECONDS="5", KEEN_MODEL=model)
        nobody = httpx.get(f"{server.url}/health/ready", timeout=10)
        stopped = c.worker(KEEN_WORKER_STALL_SECONDS="5")
        killed = c.worker(KEEN_WORKER_STALL_SECONDS="5")
        both = ready_until(server.url, lambda r: live_workers(r) == 2)
        assert stopped.stop() == 0, stopped.output()
        one = ready_until(server.url, lambda r: live_workers(r) == 1, timeout=5)
        killed.kill()
        started = time.monotonic()
        none = ready_until(server.url, lambda r: r.status_code == 503)
        noticed_after = time.monotonic() - started
    assert nobody.status_code == 503
    assert nobody.json()["error"]["details"]["failed"]["workers"].startswith("no live worker")
    assert both.status_code == 200, both.text
    assert both.json()["checks"]["workers"]["detail"] == "2 live (heartbeat within 5 s)"
    assert one.status_code == 200 and live_workers(one) == 1  # a stopped worker leaves at once
    assert none.status_code == 503 and live_workers(none) == 0
    assert 2.5 < noticed_after < 15, noticed_after  # live until its last heartbeat (<= 2 s before) is 5 s old
