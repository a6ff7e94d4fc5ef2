"""On a terminal: `keen login` asks for the password and the MFA code without echo, and a remote
`keen breathe` draws the live panel and the report."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from authkit import PASSWORD
from helpers import call, complete, turn, write_script
from keen.auth.mfa import totp_code
from ptykit import on_pty, read_until, wait_for_no_echo
from remotekit import enable_mfa, person
from serverkit import Server

pytestmark = pytest.mark.slow


def test_login_asks_without_echo_and_breathe_draws_the_live_view(
    server: Server, server_home: Path, tmp_path: Path
) -> None:
    me = person(server, server_home, tmp_path, "tty@example.org")
    secret = enable_mfa(server, me.headers)
    env = {"KEEN_HOME": str(me.home), "COLUMNS": "120"}
    code = totp_code(secret, datetime.now(UTC))
    seen = b""
    login = ["login", "--server", server.url, "--email", me.email]
    with on_pty(login, me.home.parent, env) as (process, master):
        for prompt, answer in ((b"password:", PASSWORD), (b"MFA code:", code)):
            seen = read_until(master, prompt, seen)
            wait_for_no_echo(master)
            os.write(master, answer.encode() + b"\n")
        seen = read_until(master, b"logged in to", seen)
        assert process.wait(timeout=60) == 0
    assert PASSWORD.encode() not in seen and code.encode() not in seen

    script = write_script(
        tmp_path / "s.json", [turn(call("continue_work", next_action="go")), complete("drawn")]
    )
    model = f"scripted:{script}"
    args = ["breathe", "a vision drawn live", "--model", model, "--gates", "off", "--no-web-search"]
    with on_pty(args, me.home.parent, env) as (process, master):
        seen = read_until(master, b"keen report", b"")
        seen = read_until(master, b"drawn", seen)
        assert process.wait(timeout=60) == 0
    text = seen.decode(errors="replace")
    assert f"keen breathe on {server.url}" in text and "╭" in text  # the live panel
    assert "iteration" in text and "completed" in text
