"""Agent runs through a real `keen serve`: a scripted vision run to completion with exact credit
arithmetic, a cancel that kills a running command, and a server killed with `kill -9` in the
middle of a run that resumes it when it starts again."""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from helpers import call, complete, sleeping, turn, unique_sleep, wait_sleeping, write_script
from runkit import (
    AGENTS,
    RUN_ENV,
    Ledger,
    assert_gap_free,
    costs,
    events_of,
    execute,
    grant,
    session_of,
    sign_up,
    wait_events,
    wait_finished,
)
from serverkit import Server

pytestmark = pytest.mark.slow
MARKUP = Decimal(5)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def server(home: Path) -> Iterator[Server]:
    running = Server(home, RUN_ENV)
    running.wait_live()
    yield running
    running.stop()


def test_a_user_with_10_credits_runs_a_vision_to_completion_and_pays_exactly_cost_times_markup(
    server: Server, home: Path, tmp_path: Path
) -> None:
    headers, user_id = sign_up(server.url, "builder@example.org")
    grant(home, user_id, "10")
    script = write_script(
        tmp_path / "build.json",
        [
            turn(call("write_files", files=[{"path": "app.py", "content": "print('hi')\n"}])),
            turn(call("run_command", command="python3 app.py > out.txt && cat out.txt")),
            complete("app.py written and run"),
        ],
    )
    started = execute(server.url, headers, script, vision="write app.py and run it")
    assert started["status"] in ("created", "running")
    finished = wait_finished(server.url, headers, started["id"])
    assert finished["status"] == "completed", finished

    events = events_of(server.url, headers, started["id"])
    assert_gap_free(events)
    types = [e["type"] for e in events]
    assert types.count("model.responded") == 3
    assert types.count("credits.reserved") == 3 and types.count("credits.charged") == 3
    run_output = next(
        e for e in events if e["type"] == "tool.finished" and "stdout" in (e["data"].get("output") or {})
    )
    assert run_output["data"]["output"]["stdout"] == "hi\n"

    spent = sum(costs(events), Decimal(0)) * MARKUP
    ledger = Ledger(home)
    assert spent > 0
    assert ledger.usage(user_id) == spent
    assert ledger.balance(user_id) == Decimal(10) - spent
    assert ledger.open_holds(user_id) == 0 and ledger.held(user_id) == 0
    end = next(e for e in events if e["type"] == "session.finished")
    assert Decimal(end["data"]["credits"]) == spent
    assert Decimal(finished["totals"]["credits"]) == spent
    charged = [Decimal(e["data"]["amount"]) for e in events if e["type"] == "credits.charged"]
    assert sum(charged, Decimal(0)) == spent

    files = httpx.get(f"{server.url}{AGENTS}/sessions/{started['id']}/files", headers=headers).json()
    assert {f["path"] for f in files["items"]} >= {"app.py", "out.txt"}
    content = httpx.get(f"{server.url}{AGENTS}/sessions/{started['id']}/files/app.py", headers=headers)
    assert content.content == b"print('hi')\n"
    assert (home / "workspaces" / user_id / started["id"] / "app.py").is_file()


def test_cancel_during_a_long_command_ends_the_session_kills_the_command_and_releases_every_hold(
    server: Server, home: Path, tmp_path: Path
) -> None:
    headers, user_id = sign_up(server.url, "canceller@example.org")
    grant(home, user_id, "10")
    token = unique_sleep()
    script = write_script(
        tmp_path / "sleepy.json",
        [turn(call("run_command", command=f"sleep {token}", timeout_seconds=600)), complete()],
    )
    started = execute(server.url, headers, script, vision="wait for a long time, then finish")
    wait_events(server.url, headers, started["id"], "tool.started")
    wait_sleeping(token)

    asked = time.monotonic()
    response = httpx.post(
        f"{server.url}{AGENTS}/sessions/{started['id']}/cancel", headers=headers, timeout=30
    )
    assert response.status_code == 202, response.text
    while session_of(server.url, headers, started["id"])["status"] != "cancelled":
        assert time.monotonic() - asked < 3, "not cancelled within 3 s"
        time.sleep(0.05)
    assert time.monotonic() - asked < 3
    assert not sleeping(token), "the command outlived the cancel"
    ledger = Ledger(home)
    assert ledger.open_holds(user_id) == 0 and ledger.held(user_id) == 0
    events = events_of(server.url, headers, started["id"])
    assert_gap_free(events)
    assert events[-1]["type"] == "session.finished" and events[-1]["data"]["status"] == "cancelled"
    again = httpx.post(f"{server.url}{AGENTS}/sessions/{started['id']}/cancel", headers=headers, timeout=30)
    assert again.status_code == 409


def test_a_server_killed_mid_run_resumes_it_at_its_next_start_losing_and_charging_nothing_twice(
    home: Path, tmp_path: Path
) -> None:
    first = Server(home, RUN_ENV)
    first.wait_live()
    headers, user_id = sign_up(first.url, "survivor@example.org")
    grant(home, user_id, "10")
    steps = [turn(call("continue_work", next_action=f"step {i}"), delay_ms=250) for i in range(8)]
    script = write_script(
        tmp_path / "long.json",
        [*steps, turn(call("write_files", files=[{"path": "done.txt", "content": "done\n"}])), complete()],
    )
    started = execute(first.url, headers, script, vision="take several steps, then write done.txt")
    wait_events(first.url, headers, started["id"], "model.responded", count=3)
    first.kill()

    second = Server(home, RUN_ENV)
    try:
        second.wait_live()
        finished = wait_finished(second.url, headers, started["id"])
        events = events_of(second.url, headers, started["id"])
    finally:
        second.stop()
    assert finished["status"] == "completed", finished
    assert_gap_free(events)
    types = [e["type"] for e in events]
    assert "session.resumed" in types
    iterations = [e["data"]["iteration"] for e in events if e["type"] == "model.responded"]
    assert iterations == list(range(1, len(steps) + 3)), iterations  # each call recorded once
    assert (home / "workspaces" / user_id / started["id"] / "done.txt").read_text() == "done\n"

    ledger = Ledger(home)
    spent = sum(costs(events), Decimal(0)) * MARKUP
    assert ledger.usage_count(user_id) == len(iterations)  # charged once per recorded call
    assert ledger.usage(user_id) == spent
    assert ledger.balance(user_id) == Decimal(10) - spent
    assert ledger.open_holds(user_id) == 0 and ledger.held(user_id) == 0
    end = next(e for e in events if e["type"] == "session.finished")
    assert Decimal(end["data"]["credits"]) == spent
