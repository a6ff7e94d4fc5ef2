"""`keen serve` for real: a uvicorn subprocess on a free port, and `keen db status|upgrade`."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from helpers import run_keen
from keen.store.db import HEAD_REVISION, run_migrations
from serverkit import Server, free_port

pytestmark = pytest.mark.slow


@pytest.fixture
def fresh_home(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "fresh-home"


def test_serve_on_a_fresh_home_starts_writes_the_secret_and_says_how_to_make_an_admin(
    fresh_home: Path,
) -> None:
    server = Server(fresh_home)
    try:
        server.wait_live()
        response = httpx.get(f"{server.url}/health/live", headers={"X-Request-ID": "from-the-test-1"})
        unknown = httpx.get(f"{server.url}/no/such/route")
        summary = httpx.get(f"{server.url}/health")
        ready = httpx.get(f"{server.url}/health/ready")
    finally:
        graceful = server.stop()
    assert graceful, server.stderr
    assert response.headers["X-Request-ID"] == "from-the-test-1"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    assert "server" not in response.headers
    assert unknown.status_code == 404 and unknown.json()["request_id"] == unknown.headers["X-Request-ID"]
    assert summary.json()["checks"]["migrations"]["ok"] is True
    # No model key is configured: not ready, and the envelope says why.
    assert ready.status_code == 503 and list(ready.json()["error"]["details"]["failed"]) == ["model"]
    secret = fresh_home / "secret.key"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert len(secret.read_text().strip()) >= 48
    assert "keen admin create-user --email EMAIL --admin" in server.stderr
    assert "KEEN_ADMIN_EMAIL" in server.stderr and "KEEN_ADMIN_PASSWORD" in server.stderr
    assert "wrote a new server secret" in server.stderr
    assert "[from-the-test-1]" in server.stdout  # the access log line


def test_serve_with_a_configured_secret_writes_none(fresh_home: Path) -> None:
    server = Server(fresh_home, {"KEEN_SECRET_KEY": "x" * 48})
    try:
        server.wait_live()
    finally:
        assert server.stop(), server.stderr
    assert not (fresh_home / "secret.key").exists()
    assert "server secret" not in server.stderr


def test_serve_refuses_a_database_behind_this_keen(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    run_migrations(f"sqlite:///{home / 'keen.db'}", "0001")
    result = run_keen(
        "serve", "--port", str(free_port()), cwd=tmp_path, env={"KEEN_HOME": str(home)}, timeout=60
    )
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "keen db upgrade" in lines[0] and "0001" in lines[0]
    assert not (home / "secret.key").exists()

    status = run_keen("db", "status", "--json", cwd=tmp_path, env={"KEEN_HOME": str(home)})
    assert status.returncode == 1 and '"current": "0001"' in status.stdout
    upgrade = run_keen("db", "upgrade", cwd=tmp_path, env={"KEEN_HOME": str(home)})
    assert upgrade.returncode == 0 and f"at revision {HEAD_REVISION} (was 0001)" in upgrade.stdout
    status = run_keen("db", "status", cwd=tmp_path, env={"KEEN_HOME": str(home)})
    assert status.returncode == 0 and "up to date" in status.stdout


def test_serve_refuses_a_bad_port_and_a_short_secret(tmp_path: Path) -> None:
    env = {"KEEN_HOME": str(tmp_path / "home")}
    bad_port = run_keen("serve", "--port", "70000", cwd=tmp_path, env=env)
    assert bad_port.returncode == 2 and "--port 70000" in bad_port.stderr
    short = run_keen(
        "serve", "--port", str(free_port()), cwd=tmp_path, env={**env, "KEEN_SECRET_KEY": "short"}
    )
    assert short.returncode == 2 and "KEEN_SECRET_KEY is too short" in short.stderr
