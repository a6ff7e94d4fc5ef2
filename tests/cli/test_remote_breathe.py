"""`keen breathe` logged in to a real `keen serve`: the run happens on the server and its events
stream into the CLI's view and report; the stream survives a server restart without a gap or a
duplicate; access tokens that expire mid-run are refreshed; Ctrl-C cancels the server's session."""

from __future__ import annotations

import json
import signal
import time
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from helpers import call, complete, turn, write_script
from remotekit import Person, person, seqs_shown
from runkit import AGENTS, RUN_ENV, Ledger, costs, events_of, session_of, wait_events, wait_finished
from serverkit import Server

pytestmark = pytest.mark.slow
MARKUP = Decimal(5)
FAST = ("--gates", "off", "--no-web-search")


def slow_script(path: Path, steps: int, delay_ms: int = 300) -> Path:
    turns = [
        turn(call("continue_work", next_action=f"step {i}"), text=f"step {i}", delay_ms=delay_ms)
        for i in range(steps)
    ]
    return write_script(path, [*turns, complete("all steps taken")])


def test_remote_breathe_runs_on_the_server_shows_its_events_and_charges_credits(
    server: Server, server_home: Path, tmp_path: Path
) -> None:
    me = person(server, server_home, tmp_path, "builder@example.org")
    assert me.login().returncode == 0
    script = write_script(
        tmp_path / "build.json",
        [
            turn(call("write_files", files=[{"path": "app.py", "content": "print('hi')\n"}])),
            complete("app.py written"),
        ],
    )
    result = me.keen("breathe", "write app.py that prints hi", "--model", f"scripted:{script}", *FAST)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"keen breathe on {server.url}" in result.stdout
    assert "session.created" in result.stdout and "tool.finished" in result.stdout
    assert "keen report" in result.stdout and "completed" in result.stdout and "app.py" in result.stdout
    session_id = json.loads(me.keen("sessions", "list", "--json").stdout)[0]["id"]
    assert session_id in result.stdout

    workspaces = list((server_home / "workspaces" / me.user_id).iterdir())
    assert [w.name for w in workspaces] == [session_id]
    assert (workspaces[0] / "app.py").read_text() == "print('hi')\n"
    assert not (me.home.parent / "app.py").exists()  # nothing written on the CLI's side

    events = events_of(server.url, me.headers, session_id)
    assert seqs_shown(result.stdout) == [e["seq"] for e in events]
    charged = sum(costs(events), Decimal(0)) * MARKUP
    assert charged > 0 and Ledger(server_home).usage(me.user_id) == charged

    as_json = me.keen(
        "breathe", "write app.py that prints hi", "--model", f"scripted:{script}", "--json", *FAST
    )
    assert as_json.returncode == 0, as_json.stderr
    document = json.loads(as_json.stdout)
    assert document["status"] == "completed" and document["summary"] == "app.py written"
    assert set(document) >= {"session_id", "files_created", "iterations", "cost_usd", "duration_ms"}

    shown = json.loads(me.keen("sessions", "show", document["session_id"], "--json").stdout)
    assert shown["status"] == "completed" and shown["events"][-1]["type"] == "session.finished"
    logs = me.keen("sessions", "logs", document["session_id"])
    assert logs.returncode == 0 and "session.finished" in logs.stdout


def test_local_options_are_refused_on_the_server_and_local_runs_here(
    server: Server, server_home: Path, tmp_path: Path
) -> None:
    me = person(server, server_home, tmp_path, "dirs@example.org")
    assert me.login().returncode == 0
    result = me.keen("breathe", "a vision long enough", "--dir", "somewhere")
    assert result.returncode == 2 and "--dir is for local runs" in result.stderr, result.stderr
    assert not (me.home.parent / "somewhere").exists()

    script = write_script(tmp_path / "done.json", [complete("done here")])
    local = me.keen(
        "breathe", "a local vision here", "--local", "--dir", "here", "--model", f"scripted:{script}"
    )
    assert local.returncode == 0, local.stderr
    assert (me.home.parent / "here" / ".git").is_dir() and (me.home / "keen.db").exists()
    assert json.loads(me.keen("sessions", "list", "--json").stdout) == []  # the server has none


def test_a_run_the_server_refuses_for_credits_is_exit_2_saying_so(
    server: Server, server_home: Path, tmp_path: Path
) -> None:
    me = person(server, server_home, tmp_path, "broke@example.org", credits="")
    assert me.login().returncode == 0
    script = write_script(tmp_path / "done.json", [complete("never")])
    result = me.keen("breathe", "a vision it cannot pay", "--model", f"scripted:{script}", *FAST)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {server.url} refused the run:"), result.stderr
    assert "keen credits balance" in lines[0]


def test_a_server_restart_mid_stream_is_resumed_without_gap_or_duplicate(
    server: Server, server_home: Path, tmp_path: Path
) -> None:
    me = person(server, server_home, tmp_path, "steady@example.org")
    assert me.login().returncode == 0
    script = slow_script(tmp_path / "slow.json", steps=10)
    cli = me.start("breathe", "take ten slow steps", "--model", f"scripted:{script}", *FAST)
    wait_events(server.url, me.headers, _only_session(server, me), "model.responded", count=3)
    server.kill()  # a graceful stop would let the stream finish first: the connection dies here
    again = Server(server_home, RUN_ENV, port=server.port)
    again.wait_live()
    try:
        stdout, stderr = cli.communicate(timeout=120)
        assert cli.returncode == 0, stdout + stderr
        assert "resuming the stream" in stderr
        session_id = _only_session(again, me)
        events = events_of(again.url, me.headers, session_id)
        assert [e["type"] for e in events].count("session.resumed") == 1
        assert seqs_shown(stdout) == [e["seq"] for e in events] == list(range(1, len(events) + 1))
    finally:
        again.stop()


def _only_session(server: Server, me: Person) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        items = httpx.get(f"{server.url}{AGENTS}/sessions", headers=me.headers, timeout=30).json()["items"]
        if items:
            return str(items[0]["id"])
        time.sleep(0.1)
    raise AssertionError("no session started")


def test_access_tokens_expiring_mid_run_are_refreshed_and_two_clis_refreshing_at_once_both_work(
    tmp_path: Path,
) -> None:
    server_home = tmp_path / "server-home"
    server = Server(server_home, {**RUN_ENV, "KEEN_ACCESS_TOKEN_TTL_SECONDS": "3"})
    server.wait_live()
    try:
        me = person(server, server_home, tmp_path, "patient@example.org")
        assert me.login().returncode == 0
        first = json.loads((me.home / "auth.json").read_text())
        script = slow_script(tmp_path / "slow.json", steps=8, delay_ms=1000)
        run = me.start("breathe", "take eight slow steps", "--model", f"scripted:{script}", *FAST)
        rounds = 0
        while run.poll() is None:  # another CLI at the same time, its token expired each round
            time.sleep(3.2)
            pair = [me.start("sessions", "list", "--json") for _ in "ab"]  # both refresh at once
            for cli in pair:
                stdout, stderr = cli.communicate(timeout=60)
                assert cli.returncode == 0, stderr
                assert json.loads(stdout)[0]["vision"] == "take eight slow steps"
            rounds += 1
        stdout, stderr = run.communicate(timeout=60)
        assert run.returncode == 0, stdout + stderr
        assert "keen report" in stdout and "completed" in stdout
        assert rounds >= 2
        after = json.loads((me.home / "auth.json").read_text())
        assert after["refresh_token"] != first["refresh_token"]  # rotated while they ran
        status = json.loads(me.keen("status", "--json").stdout)
        assert status["user"] == "patient@example.org" and status["problems"] == []
    finally:
        server.stop()


def test_ctrl_c_cancels_the_remote_session_and_exits_130(
    server: Server, server_home: Path, tmp_path: Path
) -> None:
    me = person(server, server_home, tmp_path, "hasty@example.org")
    assert me.login().returncode == 0
    script = slow_script(tmp_path / "slow.json", steps=30)
    cli = me.start("breathe", "take many slow steps", "--model", f"scripted:{script}", *FAST)
    session_id = _only_session(server, me)
    wait_events(server.url, me.headers, session_id, "model.responded", count=1)
    cli.send_signal(signal.SIGINT)
    stdout, stderr = cli.communicate(timeout=60)
    assert cli.returncode == 130, stdout + stderr
    assert f"cancelled session {session_id}" in stderr
    assert wait_finished(server.url, me.headers, session_id)["status"] == "cancelled"
    assert session_of(server.url, me.headers, session_id)["status"] == "cancelled"


def test_a_run_beyond_the_running_sessions_allowed_is_exit_2_naming_them(tmp_path: Path) -> None:
    server_home = tmp_path / "server-home"
    server = Server(server_home, {**RUN_ENV, "KEEN_MAX_RUNNING_SESSIONS": "1"})
    server.wait_live()
    try:
        me = person(server, server_home, tmp_path, "busy@example.org")
        assert me.login().returncode == 0
        script = slow_script(tmp_path / "slow.json", steps=30)
        first = me.start("breathe", "take many slow steps", "--model", f"scripted:{script}", *FAST)
        session_id = _only_session(server, me)
        wait_events(server.url, me.headers, session_id, "model.responded", count=1)
        second = me.keen("breathe", "one more vision please", "--model", f"scripted:{script}", *FAST)
        assert second.returncode == 2, second.stdout + second.stderr
        assert f"error: {server.url} refused the run:" in second.stderr
        assert "keen sessions cancel ID" in second.stderr
        first.send_signal(signal.SIGINT)
        assert first.wait(timeout=60) == 130
    finally:
        server.stop()
