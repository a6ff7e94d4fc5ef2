"""`keen serve` for real: a uvicorn subprocess on a free port, and `keen db status|upgrade`."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from helpers import KEEN_BIN, run_keen
from keen.store.db import HEAD_REVISION, run_migrations

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    def __init__(self, home: Path, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [str(KEEN_BIN), "serve", "--port", str(self.port)],
            env={**os.environ, "KEEN_HOME": str(home), "NO_COLOR": "1", "COLUMNS": "200", **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.stdout = ""
        self.stderr = ""

    def wait_live(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.stop()
                raise AssertionError(f"keen serve exited {self.process.returncode}: {self.stderr}")
            try:
                if httpx.get(f"{self.url}/health/live", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError("keen serve did not come up")

    def stop(self) -> bool:
        """Stop the server with SIGTERM; True when it shut down gracefully (uvicorn then ends by
        the same signal it was sent)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        self.stdout, self.stderr = self.process.communicate(timeout=30)
        return self.process.returncode in (0, -signal.SIGTERM) and "Finished server process" in self.stderr


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
