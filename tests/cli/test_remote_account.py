"""`keen sessions`, `keen credits` and `keen keys` logged in to a real `keen serve`: the
server's sessions (and `--local` this machine's), the balance and history after a run, and an
API key printed once, listed without its secret, working, and refused once revoked."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from authkit import API
from helpers import call, complete, turn, write_script
from remotekit import person
from runkit import Ledger
from serverkit import Server

pytestmark = pytest.mark.slow
FAST = ("--gates", "off", "--no-web-search")


def test_sessions_and_credits_are_the_servers_after_a_remote_run(
    server: Server, server_home: Path, tmp_path: Path
) -> None:
    me = person(server, server_home, tmp_path, "reader@example.org", credits="10")
    assert me.login().returncode == 0
    script = write_script(
        tmp_path / "s.json", [turn(call("continue_work", next_action="go")), complete("ok")]
    )
    run = json.loads(
        me.keen("breathe", "a remote vision to list", "--model", f"scripted:{script}", "--json", *FAST).stdout
    )
    session_id = run["session_id"]

    listed = json.loads(me.keen("sessions", "list", "--json").stdout)
    assert [r["id"] for r in listed] == [session_id] and listed[0]["status"] == "completed"
    assert json.loads(me.keen("sessions", "list", "--local", "--json").stdout) == []
    table = me.keen("sessions", "list")
    assert session_id[:8] in table.stdout and "completed" in table.stdout

    shown = me.keen("sessions", "show", session_id[:8], "--tree", "--events")
    assert shown.returncode == 0 and "keen report" in shown.stdout and "session.finished" in shown.stdout
    followed = me.keen("sessions", "logs", session_id, "--follow", timeout=60)
    assert followed.returncode == 0 and followed.stdout.rstrip().endswith("completed: ok")

    cancel = me.keen("sessions", "cancel", session_id)
    assert cancel.returncode == 2 and "error:" in cancel.stderr  # it had finished: a 409, said so

    balance = json.loads(me.keen("credits", "balance", "--json").stdout)
    spent = Ledger(server_home).usage(me.user_id)
    assert spent > 0 and Decimal(balance["balance"]) == Decimal(10) - spent
    history = json.loads(me.keen("credits", "history", "--json").stdout)
    assert {e["type"] for e in history["items"]} >= {"usage", "adjustment"}
    assert "usage" in me.keen("credits", "history").stdout


def test_an_api_key_is_printed_once_listed_without_it_and_refused_once_revoked(
    server: Server, server_home: Path, tmp_path: Path
) -> None:
    me = person(server, server_home, tmp_path, "keys@example.org", credits="")
    assert me.login().returncode == 0
    created = me.keen("keys", "create", "ci")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("keen_") and "shown this once" in created.stderr
    profile = httpx.get(f"{server.url}{API}/profile", headers={"Authorization": f"ApiKey {key}"}, timeout=30)
    assert profile.status_code == 200 and profile.json()["email"] == "keys@example.org"

    listed = json.loads(me.keen("keys", "list", "--json").stdout)
    assert [k["name"] for k in listed] == ["ci"] and key not in json.dumps(listed)
    assert key not in me.keen("keys", "list").stdout

    revoked = me.keen("keys", "revoke", listed[0]["id"])
    assert revoked.returncode == 0, revoked.stderr
    refused = httpx.get(f"{server.url}{API}/profile", headers={"Authorization": f"ApiKey {key}"}, timeout=30)
    assert refused.status_code == 401
    missing = me.keen("keys", "revoke", listed[0]["id"] + "x")
    assert missing.returncode == 2 and "error:" in missing.stderr
