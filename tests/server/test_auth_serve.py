"""The auth journey over real HTTP against `keen serve` run as a subprocess, on a SQLite file and
on PostgreSQL connected as the app role: register → login → profile → create an API key → profile
with it → revoke it → the key is refused; the first admin from the settings verifies the chain."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from authkit import API, CHEAP_ARGON2_ENV, PASSWORD, bearer
from keen.store.db import run_migrations
from pgdb import app_login_role, pg_url
from server.test_serve import Server

__all__ = ["pg_url"]
pytestmark = pytest.mark.slow
ROOT = "root@example.org"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_env(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """No KEEN_DATABASE_URL (the SQLite file in KEEN_HOME, made at start), or a PostgreSQL
    database migrated by its owner and served as a login role of `keen_app`."""
    if request.param == "sqlite":
        yield {}
        return
    owner_url = request.getfixturevalue("pg_url")
    run_migrations(owner_url)
    with app_login_role(owner_url) as url:
        yield {"KEEN_DATABASE_URL": url.replace("postgresql://", "postgresql+psycopg://", 1)}


def test_register_login_profile_key_revoke_over_real_http(
    tmp_path: Path, database_env: dict[str, str]
) -> None:
    env = {**CHEAP_ARGON2_ENV, **database_env, "KEEN_ADMIN_EMAIL": ROOT, "KEEN_ADMIN_PASSWORD": PASSWORD}
    server = Server(tmp_path / "home", env)
    try:
        server.wait_live()
        with httpx.Client(base_url=server.url, timeout=30) as http:
            registered = http.post(f"{API}/register", json={"email": "ada@example.org", "password": PASSWORD})
            assert registered.status_code == 201, registered.text
            tokens = http.post(f"{API}/login", json={"email": "ada@example.org", "password": PASSWORD}).json()
            profile = http.get(f"{API}/profile", headers=bearer(tokens["access_token"]))
            assert profile.status_code == 200 and profile.json()["id"] == registered.json()["id"]
            created = http.post(
                f"{API}/api-keys", json={"name": "laptop"}, headers=bearer(tokens["access_token"])
            )
            assert created.status_code == 201, created.text
            key = {"Authorization": f"ApiKey {created.json()['key']}"}
            with_key = http.get(f"{API}/profile", headers=key)
            assert with_key.status_code == 200 and with_key.json()["email"] == "ada@example.org"
            revoked = http.delete(
                f"{API}/api-keys/{created.json()['id']}", headers=bearer(tokens["access_token"])
            )
            assert revoked.status_code == 204
            refused = http.get(f"{API}/profile", headers=key)
            assert (
                refused.status_code == 401
                and refused.json()["error"]["message"] == "this API key was revoked"
            )
            assert refused.headers["X-Request-ID"] == refused.json()["request_id"]
            root = http.post(f"{API}/login", json={"email": ROOT, "password": PASSWORD}).json()
            verified = http.get(
                "/api/v1/admin/audit-logs/verify", headers=bearer(root["access_token"])
            ).json()
            entries = http.get(
                "/api/v1/admin/audit-logs",
                params={"action": "auth.api_key."},
                headers=bearer(root["access_token"]),
            ).json()["items"]
    finally:
        assert server.stop(), server.stderr
    assert verified["intact"] is True and verified["entries"] >= 7
    assert [e["action"] for e in entries] == [
        "auth.api_key.created",
        "auth.api_key.revoked",
        "auth.api_key.refused",
    ]
    assert all(e["ip"] == "127.0.0.1" and e["request_id"] for e in entries)
    assert "keen admin create-user" not in server.stderr  # an admin exists: no hint
