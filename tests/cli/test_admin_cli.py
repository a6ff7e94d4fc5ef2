"""`keen admin create-user` (password from stdin, or asked twice without echo on a terminal) and
`keen admin audit verify` (exit 0 when intact, 1 naming the first bad entry)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from pathlib import Path

from authkit import CHEAP_ARGON2_ENV, PASSWORD
from helpers import run_keen
from ptykit import on_pty, read_until, wait_for_no_echo

ENV = {**CHEAP_ARGON2_ENV}


def _users(home: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(home / "keen.db") as conn:
        return conn.execute("SELECT email, username, role FROM users ORDER BY created_at").fetchall()


def _create(cwd: Path, email: str, password: str = PASSWORD, *flags: str) -> subprocess.CompletedProcess[str]:
    return run_keen(
        "admin", "create-user", "--email", email, "--password-stdin", *flags, cwd=cwd, env=ENV, input=password
    )


def test_create_user_with_the_password_on_stdin(tmp_path: Path, keen_home: Path) -> None:
    made = _create(tmp_path, "Root@Example.org", PASSWORD + "\n", "--admin", "--json")
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["role"] == "super_admin"
    plain = _create(tmp_path, "ada@example.org")
    assert plain.returncode == 0 and plain.stdout.startswith("created user ada@example.org (username ada")
    assert _users(keen_home) == [
        ("root@example.org", "root", "super_admin"),
        ("ada@example.org", "ada", "user"),
    ]
    with sqlite3.connect(keen_home / "keen.db") as conn:
        stored = conn.execute("SELECT password_hash FROM users").fetchall()
    assert all(h.startswith("$argon2id$") and PASSWORD not in h for (h,) in stored)


def test_create_user_refuses_a_weak_password_a_taken_email_and_no_terminal(
    tmp_path: Path, keen_home: Path
) -> None:
    weak = _create(tmp_path, "a@example.org", "weak")
    assert weak.returncode == 2 and "the password needs at least 8 characters" in weak.stderr
    assert _create(tmp_path, "a@example.org").returncode == 0
    taken = _create(tmp_path, "A@example.org")
    assert taken.returncode == 2 and "an account with this email exists" in taken.stderr
    no_tty = run_keen("admin", "create-user", "--email", "b@example.org", cwd=tmp_path, env=ENV, input="")
    assert no_tty.returncode == 2 and "--password-stdin" in no_tty.stderr
    assert [u[0] for u in _users(keen_home)] == ["a@example.org"]


def test_create_user_asks_twice_without_echo_on_a_terminal(tmp_path: Path, keen_home: Path) -> None:
    seen = b""
    with on_pty(["admin", "create-user", "--email", "tty@example.org"], tmp_path, ENV) as (process, master):
        for prompt in (b"Password:", b"Repeat for confirmation:"):
            seen = read_until(master, prompt, seen)
            wait_for_no_echo(master)
            os.write(master, PASSWORD.encode() + b"\n")
        seen = read_until(master, b"created user", seen)
        assert process.wait(timeout=60) == 0
    assert PASSWORD.encode() not in seen  # never echoed
    assert [u[0] for u in _users(keen_home)] == ["tty@example.org"]


def test_audit_verify_says_intact_then_names_the_edited_entry(tmp_path: Path, keen_home: Path) -> None:
    for n in range(3):
        assert _create(tmp_path, f"u{n}@example.org").returncode == 0
    intact = run_keen("admin", "audit", "verify", cwd=tmp_path, env=ENV)
    assert (intact.returncode, intact.stdout.strip()) == (0, "chain intact (3 entries)")
    with sqlite3.connect(keen_home / "keen.db") as conn:
        conn.execute('UPDATE audit_logs SET details = \'{"email": "someone@else.org"}\' WHERE seq = 2')
    broken = run_keen("admin", "audit", "verify", cwd=tmp_path, env=ENV)
    assert broken.returncode == 1 and broken.stdout.startswith("chain broken at entry 2:"), broken.stdout
    as_json = json.loads(run_keen("admin", "audit", "verify", "--json", cwd=tmp_path, env=ENV).stdout)
    assert as_json == {"intact": False, "entries": 1, "first_bad": 2}
