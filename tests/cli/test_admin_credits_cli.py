"""`keen admin grant-credits USER AMOUNT [--reason]` (a ledger entry and an audit entry, by id,
email or username; negative takes credits back, never below nothing) and `keen admin sweep-holds`
(a stale hold left by a dead process expired once)."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from authkit import CHEAP_ARGON2_ENV, PASSWORD
from helpers import run_keen

ENV = {**CHEAP_ARGON2_ENV}


def _ada(cwd: Path) -> None:
    made = run_keen(
        "admin",
        "create-user",
        "--email",
        "ada@example.org",
        "--password-stdin",
        cwd=cwd,
        env=ENV,
        input=PASSWORD,
    )
    assert made.returncode == 0, made.stderr


def _query(home: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(home / "keen.db") as conn:
        return conn.execute(sql).fetchall()


def test_grant_credits_writes_an_adjustment_with_its_reason_and_an_audit_entry(
    tmp_path: Path, keen_home: Path
) -> None:
    _ada(tmp_path)
    granted = run_keen(
        "admin", "grant-credits", "ada@example.org", "12.5", "--reason", "welcome", cwd=tmp_path
    )
    assert granted.returncode == 0, granted.stderr
    assert granted.stdout.strip() == "granted 12.500000 credits to ada@example.org: balance 12.500000"
    taken = run_keen(
        "admin", "grant-credits", "ada", "-2.5", "--reason", "correction", "--json", cwd=tmp_path
    )
    assert taken.returncode == 0, taken.stderr
    assert json.loads(taken.stdout)["balance"] == "10.000000"
    too_much = run_keen("admin", "grant-credits", "ada", "-10.000001", cwd=tmp_path)
    assert too_much.returncode == 2 and "less than nothing available" in too_much.stderr
    assert _query(keen_home, "SELECT type, amount, reason, actor FROM credit_transactions ORDER BY id") == [
        ("adjustment", 12_500_000, "welcome", "cli"),
        ("adjustment", -2_500_000, "correction", "cli"),
    ]
    actions = [a for (a,) in _query(keen_home, "SELECT action FROM audit_logs ORDER BY seq")]
    assert actions.count("credits.adjustment") == 2
    assert run_keen("admin", "audit", "verify", cwd=tmp_path).returncode == 0


def test_grant_credits_refuses_an_unknown_user_and_an_inexact_amount(tmp_path: Path, keen_home: Path) -> None:
    _ada(tmp_path)
    unknown = run_keen("admin", "grant-credits", "bob@example.org", "5", cwd=tmp_path)
    assert unknown.returncode == 2 and "no user 'bob@example.org'" in unknown.stderr
    for amount in ("1.0000001", "lots", "0"):
        refused = run_keen("admin", "grant-credits", "ada", amount, cwd=tmp_path)
        assert refused.returncode == 2, amount
    assert _query(keen_home, "SELECT count(*) FROM credit_transactions") == [(0,)]


def test_sweep_holds_expires_a_stale_hold_once(tmp_path: Path, keen_home: Path) -> None:
    _ada(tmp_path)
    assert run_keen("admin", "grant-credits", "ada", "5", cwd=tmp_path).returncode == 0
    (user_id,) = _query(keen_home, "SELECT id FROM users")[0]
    long_ago = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%d %H:%M:%S.%f")
    with sqlite3.connect(keen_home / "keen.db") as conn:  # a hold its dead process never ended
        conn.execute(
            "INSERT INTO credit_holds (id, user_id, key, amount, provider_cost, day_key, month_key, created_at, "
            "expires_at) VALUES ('h1', ?, 'dead-call', 2000000, 400000, '2026-12-10', '2026-12', ?, ?)",
            (user_id, long_ago, long_ago),
        )
        conn.execute("UPDATE credit_accounts SET held = 2000000")
    first = run_keen("admin", "sweep-holds", "--json", cwd=tmp_path)
    second = run_keen("admin", "sweep-holds", "--json", cwd=tmp_path)
    assert first.returncode == second.returncode == 0, first.stderr
    assert [h["key"] for h in json.loads(first.stdout)["expired"]] == ["dead-call"]
    assert json.loads(second.stdout)["expired"] == []
    assert _query(keen_home, "SELECT status FROM credit_holds") == [("expired",)]
    assert _query(keen_home, "SELECT held, balance FROM credit_accounts") == [(0, 5_000_000)]
