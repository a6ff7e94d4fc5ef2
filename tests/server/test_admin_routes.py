"""`/api/v1/admin` over HTTP: admins only (everyone else 403, audited), users listed, read and
changed, the audit log listed and verified, the system's health; every admin action audited."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update

from authkit import PASSWORD, TEST_APP_ENV, bearer, http_login, http_sign_up
from keen.auth import ensure_first_admin
from keen.store.models import AuditLogRow

ADMIN = "/api/v1/admin"
ROOT = "root@example.org"


@pytest.fixture
async def admin_app(make_app: Callable[..., FastAPI]) -> FastAPI:
    app = make_app(**TEST_APP_ENV, KEEN_ADMIN_EMAIL=ROOT, KEEN_ADMIN_PASSWORD=PASSWORD)
    assert await ensure_first_admin(app.state.settings, app.state.db)
    return app


@pytest.fixture
async def api(
    admin_app: FastAPI, client_for: Callable[..., httpx.AsyncClient]
) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(admin_app) as client:
        yield client


async def _root(api: httpx.AsyncClient) -> dict[str, str]:
    tokens = await http_login(api, ROOT)
    assert tokens["expires_in"] == 3600  # admins' access tokens last 60 minutes
    return bearer(tokens["access_token"])


async def test_every_admin_route_is_403_for_a_user_and_401_without_credentials(
    api: httpx.AsyncClient,
) -> None:
    user = bearer((await http_sign_up(api, "ada@example.org"))["access_token"])
    schema = (await api.get("/openapi.json")).json()
    routes = [(m.upper(), p) for p, item in schema["paths"].items() if p.startswith(ADMIN) for m in item]
    assert len(routes) == 9  # 6 of accounts and the audit log, 3 of credits
    for method, path in routes:
        url = path.replace("{user_id}", "0" * 32)
        body = {"status": "active"} if method == "PATCH" else None
        denied = await api.request(method, url, headers=user, json=body)
        assert denied.status_code == 403 and denied.json()["error"]["message"] == "admins only", (
            method,
            path,
        )
        assert (await api.request(method, url, json=body)).status_code == 401


async def test_users_are_listed_read_and_changed_and_each_action_is_audited(api: httpx.AsyncClient) -> None:
    root = await _root(api)
    ada = await http_sign_up(api, "ada@example.org")
    for n in range(3):
        await http_sign_up(api, f"user{n}@example.org")
    page = (await api.get(f"{ADMIN}/users", params={"limit": 2, "offset": 1}, headers=root)).json()
    assert page["total"] == 5 and [u["email"] for u in page["items"]] == [
        "ada@example.org",
        "user0@example.org",
    ]
    found = (await api.get(f"{ADMIN}/users", params={"email": "user2"}, headers=root)).json()
    assert [u["email"] for u in found["items"]] == ["user2@example.org"]
    one = await api.get(f"{ADMIN}/users/{ada['user']['id']}", headers=root)
    assert one.status_code == 200 and one.json()["email"] == "ada@example.org"
    assert (await api.get(f"{ADMIN}/users/{'0' * 32}", headers=root)).status_code == 404
    suspended = await api.patch(
        f"{ADMIN}/users/{ada['user']['id']}", json={"status": "suspended"}, headers=root
    )
    assert suspended.status_code == 200 and suspended.json()["status"] == "suspended"
    assert (await api.get("/api/v1/auth/profile", headers=bearer(ada["access_token"]))).status_code == 401
    bad = await api.patch(f"{ADMIN}/users/{ada['user']['id']}", json={"status": "gone"}, headers=root)
    assert bad.status_code == 422 and "status" in str(bad.json()["error"])
    unknown = await api.patch(f"{ADMIN}/users/{ada['user']['id']}", json={"karma": 1}, headers=root)
    assert unknown.status_code == 422
    logs = (await api.get(f"{ADMIN}/audit-logs", params={"action": "admin."}, headers=root)).json()
    assert [e["action"] for e in logs["items"]] == [
        "admin.users.listed",
        "admin.users.listed",
        "admin.user.viewed",
        "admin.user.changed",
    ]
    changed = logs["items"][-1]
    assert changed["risk"] == "high" and changed["target"] == f"user:{ada['user']['id']}"
    assert changed["details"]["changes"] == {"status": ["active", "suspended"]}
    assert changed["ip"] == "127.0.0.1" and changed["request_id"]


async def test_audit_logs_page_by_seq_and_filter(api: httpx.AsyncClient) -> None:
    root = await _root(api)
    for n in range(3):
        await http_sign_up(api, f"user{n}@example.org")
    first = (await api.get(f"{ADMIN}/audit-logs", params={"limit": 3}, headers=root)).json()
    assert [e["seq"] for e in first["items"]] == [1, 2, 3] and first["next_after_seq"] == 3
    rest = (await api.get(f"{ADMIN}/audit-logs", params={"after_seq": 3, "limit": 500}, headers=root)).json()
    assert rest["items"][0]["seq"] == 4 and rest["next_after_seq"] is None
    logins = (
        await api.get(f"{ADMIN}/audit-logs", params={"action": "auth.login.success"}, headers=root)
    ).json()
    assert len(logins["items"]) == 4 and {e["risk"] for e in logins["items"]} == {"low"}
    high = (await api.get(f"{ADMIN}/audit-logs", params={"risk": "high"}, headers=root)).json()
    assert [e["action"] for e in high["items"]] == ["account.created"]  # the admin's own account
    future = (
        await api.get(f"{ADMIN}/audit-logs", params={"since": "2999-01-01T00:00:00Z"}, headers=root)
    ).json()
    assert future["items"] == []
    naive = await api.get(f"{ADMIN}/audit-logs", params={"since": "2026-01-01T00:00:00"}, headers=root)
    assert naive.status_code == 422


async def test_verify_names_the_first_entry_that_was_edited(
    api: httpx.AsyncClient, admin_app: FastAPI
) -> None:
    root = await _root(api)
    await http_sign_up(api, "ada@example.org")
    intact = (await api.get(f"{ADMIN}/audit-logs/verify", headers=root)).json()
    assert intact["intact"] is True and intact["message"] == f"chain intact ({intact['entries']} entries)"
    async with admin_app.state.db.transaction() as session:
        await session.execute(update(AuditLogRow).where(AuditLogRow.seq == 3).values(actor="someone"))
    broken: dict[str, Any] = (await api.get(f"{ADMIN}/audit-logs/verify", headers=root)).json()
    assert (broken["intact"], broken["first_bad"]) == (False, 3)
    assert broken["message"].startswith("chain broken at entry 3")


async def test_system_health_counts_users_and_entries(api: httpx.AsyncClient) -> None:
    root = await _root(api)
    health = await api.get(f"{ADMIN}/system/health", headers=root)
    assert health.status_code == 200
    body = health.json()
    assert body["users"] == {"active": 1, "suspended": 0, "banned": 0}
    assert body["checks"]["database"]["ok"] is True and body["audit_entries"] >= 2


async def test_an_admin_without_a_privilege_gets_403_naming_the_scope(api: httpx.AsyncClient) -> None:
    root = await _root(api)
    helper = await http_sign_up(api, "helper@example.org")
    promoted = await api.patch(
        f"{ADMIN}/users/{helper['user']['id']}",
        json={"role": "admin", "privileges": ["admin:users:read"]},
        headers=root,
    )
    assert promoted.json()["privileges"] == ["admin:users:read"]
    helper_bearer = bearer((await http_login(api, "helper@example.org"))["access_token"])
    assert (await api.get(f"{ADMIN}/users", headers=helper_bearer)).status_code == 200
    denied = await api.get(f"{ADMIN}/audit-logs", headers=helper_bearer)
    assert denied.status_code == 403 and denied.json()["error"]["details"]["scope"] == "admin:audit:read"
