"""`keen login`, `status`, `logout` against a real `keen serve`: with and without MFA, the
credentials file's modes, the refresh token refused after logout, and each way a login fails
(wrong password, wrong MFA code, no server) as exit 2 naming the problem."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from authkit import API, PASSWORD
from keen.auth.mfa import totp_code
from remotekit import Person, enable_mfa, person
from serverkit import Server, free_port

pytestmark = pytest.mark.slow


def test_login_stores_private_credentials_and_status_shows_the_user_then_logout_ends_it(
    server: Server, server_home: Path, tmp_path: Path
) -> None:
    me = person(server, server_home, tmp_path, "ada@example.org", credits="7")
    login = me.login()
    assert login.returncode == 0, login.stderr
    assert f"logged in to {server.url} as ada@example.org (user)" in login.stdout
    auth = me.home / "auth.json"
    assert stat.S_IMODE(auth.stat().st_mode) == 0o600
    assert stat.S_IMODE(me.home.stat().st_mode) == 0o700
    stored = json.loads(auth.read_text())
    assert stored["server"] == server.url and stored["user"]["email"] == "ada@example.org"

    status = me.keen("status", "--json")
    assert status.returncode == 0, status.stderr
    data = json.loads(status.stdout)
    assert (data["mode"], data["server"], data["user"], data["role"]) == (
        "server",
        server.url,
        "ada@example.org",
        "user",
    )
    assert Decimal(data["credits"]) == Decimal(7)
    shown = me.keen("whoami")
    assert "ada@example.org" in shown.stdout and server.url in shown.stdout and "server" in shown.stdout

    refresh_token = stored["refresh_token"]
    out = me.keen("logout")
    assert out.returncode == 0, out.stderr
    assert not auth.exists()
    refused = httpx.post(f"{server.url}{API}/refresh", json={"refresh_token": refresh_token}, timeout=30)
    assert refused.status_code == 401
    after = json.loads(me.keen("status", "--json").stdout)
    assert after["mode"] == "local" and after["user"] is None


def test_login_with_mfa_asks_for_the_code_and_a_wrong_code_is_refused(
    server: Server, server_home: Path, tmp_path: Path
) -> None:
    me = person(server, server_home, tmp_path, "grace@example.org", credits="")
    secret = enable_mfa(server, me.headers)

    wrong = me.login(mfa_code="000000")
    assert wrong.returncode == 2
    assert "error: login to" in wrong.stderr and "mfa" in wrong.stderr.lower()
    assert not (me.home / "auth.json").exists()

    missing = me.login()
    assert missing.returncode == 2 and "needs its MFA code" in missing.stderr

    code = totp_code(secret, datetime.now(UTC))
    good = me.login(mfa_code=code)
    assert good.returncode == 0, good.stderr
    assert json.loads(me.keen("status", "--json").stdout)["user"] == "grace@example.org"


def test_a_wrong_password_is_exit_2_naming_it(server: Server, server_home: Path, tmp_path: Path) -> None:
    me = person(server, server_home, tmp_path, "alan@example.org", credits="")
    result = me.login(password="Not-the-password-1")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: login to {server.url} refused:"), result.stderr
    assert "password" in lines[0]
    assert not (me.home / "auth.json").exists()


def test_an_unreachable_server_is_exit_2_naming_its_url(tmp_path: Path) -> None:
    from helpers import run_keen

    url = f"http://127.0.0.1:{free_port()}"
    home = tmp_path / "home"
    result = run_keen(
        "login",
        "--server",
        url,
        "--email",
        "a@example.org",
        "--password-stdin",
        cwd=tmp_path,
        env={"KEEN_HOME": str(home)},
        input=PASSWORD + "\n",
    )
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: cannot reach the keen server at {url}"), result.stderr
    assert "Traceback" not in result.stderr


def test_commands_of_a_server_need_a_login(tmp_path: Path) -> None:
    from helpers import run_keen

    for args in (("credits", "balance"), ("keys", "list")):
        result = run_keen(*args, cwd=tmp_path)
        assert result.returncode == 2 and "run keen login --server URL first" in result.stderr, result.stderr


def test_logout_without_a_login_says_so(server: Server, server_home: Path, tmp_path: Path) -> None:
    me: Person = person(server, server_home, tmp_path, "nobody@example.org", credits="")
    result = me.keen("logout")
    assert result.returncode == 0 and "not logged in" in result.stdout


def test_a_client_whose_token_another_process_rotated_takes_the_new_one(
    server: Server, server_home: Path, tmp_path: Path
) -> None:
    """Two processes loaded the same login; the first refreshes (rotating the refresh token), the
    second then finds the rotated tokens in auth.json instead of presenting the used one (which
    would revoke the whole family: the session lost for both)."""
    from keen.cli.client import ServerClient

    me = person(server, server_home, tmp_path, "twins@example.org", credits="")
    assert me.login().returncode == 0
    first = ServerClient.from_login(me.home)
    second = ServerClient.from_login(me.home)
    assert first is not None and second is not None
    stale = first.credentials.access_token if first.credentials else ""
    renewed = first.refresh(stale=stale)
    assert json.loads((me.home / "auth.json").read_text())["refresh_token"] == renewed.refresh_token
    taken = second.refresh(stale=stale)
    assert taken.refresh_token == renewed.refresh_token  # not refreshed again
    for client in (first, second):
        assert client.get("/auth/profile")["email"] == "twins@example.org"
        client.close()
    assert json.loads(me.keen("status", "--json").stdout)["problems"] == []
