"""Distributed mode for real: `keen serve` replicas and `keen worker` processes as subprocesses on
the PostgreSQL of this machine, runs of the scripted model queued as procrastinate jobs."""

from __future__ import annotations

from pathlib import Path

import pytest

from clusterkit import cluster
from helpers import call, complete, turn, write_script
from runkit import events_of, execute, sign_up, wait_finished, assert_gap_free

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
        headers, user_id = sign_up(server.url, "one@example.org")
        c.grant(user_id, "10")
        started = execute(server.url, headers, steps_script(tmp_path / "s.json", 3))
        finished = wait_finished(server.url, headers, started["id"], timeout=60)
        assert finished["status"] == "completed", (finished, worker.output())
        events = events_of(server.url, headers, started["id"])
        assert_gap_free(events)
        assert [status for _, status, _ in c.jobs(started["id"])] == ["succeeded"]
        assert c.open_holds(user_id) == 0
