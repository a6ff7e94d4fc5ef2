"""`/api/v1/auth` over HTTP (the app in-process on a real SQLite file): the journey, refused
tokens, refresh reuse, MFA, lockout and the auth rate limit, scopes, bad input."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import jwt
import pytest
from fastapi import FastAPI
from sqlalchemy import select, update

from authkit import API, PASSWORD, SECRET, TEST_APP_ENV, bearer, http_login, http_sign_up
from keen.auth.mfa import totp_code
from keen.store.db import set_acting_user
from keen.store.models import AuditLogRow, UserRow


@pytest.fixture
def auth_app(make_app: Callable[..., FastAPI]) -> FastAPI:
    return make_app(**TEST_APP_ENV)


@pytest.fixture
async def api(
    auth_app: FastAPI, client_for: Callable[..., httpx.AsyncClient]
) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(auth_app) as client:
        yield client


async def audit_actions(app: FastAPI) -> list[tuple[str, str]]:
    async with app.state.db.transaction() as session:
        await set_acting_user(session, None, True)
        rows = (
            await session.execute(select(AuditLogRow.action, AuditLogRow.risk).order_by(AuditLogRow.seq))
        ).all()
    return [(a, r) for a, r in rows]


def error_of(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert body["success"] is False and body["request_id"] == response.headers["X-Request-ID"]
    return dict(body["error"])


async def test_register_login_profile_key_revoke_journey(api: httpx.AsyncClient, auth_app: FastAPI) -> None:
    tokens = await http_sign_up(api, "ada@example.org")
    assert tokens["token_type"] == "bearer" and tokens["expires_in"] == 900
    profile = await api.get(f"{API}/profile", headers=bearer(tokens["access_token"]))
    assert profile.status_code == 200 and profile.json()["email"] == "ada@example.org"
    created = await api.post(
        f"{API}/api-keys",
        json={"name": "ci", "scopes": ["profile:read"]},
        headers=bearer(tokens["access_token"]),
    )
    assert created.status_code == 201, created.text
    key = created.json()["key"]
    for header in (f"ApiKey {key}", f"Bearer {key}"):
        with_key = await api.get(f"{API}/profile", headers={"Authorization": header})
        assert with_key.status_code == 200 and with_key.json()["id"] == profile.json()["id"]
    listed = await api.get(f"{API}/api-keys", headers=bearer(tokens["access_token"]))
    assert [k["name"] for k in listed.json()] == ["ci"] and "key" not in listed.json()[0]
    revoked = await api.delete(
        f"{API}/api-keys/{created.json()['id']}", headers=bearer(tokens["access_token"])
    )
    assert revoked.status_code == 204
    refused = await api.get(f"{API}/profile", headers={"Authorization": f"ApiKey {key}"})
    assert refused.status_code == 401 and error_of(refused)["message"] == "this API key was revoked"
    actions = [a for a, _risk in await audit_actions(auth_app)]
    assert actions == [
        "account.created",
        "auth.login.success",
        "auth.api_key.created",
        "auth.api_key.revoked",
        "auth.api_key.refused",
    ]


def _forged(payload: dict[str, Any]) -> dict[str, str]:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    now = int(time.time())
    return {
        "alg none": f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(payload)}.",
        "another key": jwt.encode(payload, "another-secret-" + "y" * 40, algorithm="HS256"),
        "expired": jwt.encode({**payload, "iat": now - 3600, "exp": now - 60}, SECRET, algorithm="HS256"),
    }


async def test_alg_none_another_key_expired_and_a_suspended_user_token_are_401(
    api: httpx.AsyncClient, auth_app: FastAPI
) -> None:
    tokens = await http_sign_up(api, "ada@example.org")
    payload = jwt.decode(tokens["access_token"], SECRET, algorithms=["HS256"])
    for what, token in _forged(payload).items():
        response = await api.get(f"{API}/profile", headers=bearer(token))
        assert response.status_code == 401, what
        assert error_of(response)["type"] == "authentication_error"
    async with auth_app.state.db.transaction() as session:
        await session.execute(update(UserRow).values(status="suspended"))
    suspended = await api.get(f"{API}/profile", headers=bearer(tokens["access_token"]))
    assert suspended.status_code == 401 and error_of(suspended)["code"] == "account_disabled"
    login = await api.post(f"{API}/login", json={"email": "ada@example.org", "password": PASSWORD})
    assert login.status_code == 403 and error_of(login)["message"] == "the account is suspended"
    assert ("auth.denied", "medium") in await audit_actions(auth_app)


async def test_a_reused_refresh_token_is_401_and_revokes_the_family_audited_critical(
    api: httpx.AsyncClient, auth_app: FastAPI
) -> None:
    first = await http_sign_up(api, "ada@example.org")
    second = await api.post(f"{API}/refresh", json={"refresh_token": first["refresh_token"]})
    assert second.status_code == 200 and second.json()["refresh_token"] != first["refresh_token"]
    reuse = await api.post(f"{API}/refresh", json={"refresh_token": first["refresh_token"]})
    assert reuse.status_code == 401 and "already used" in error_of(reuse)["message"]
    newest = await api.post(f"{API}/refresh", json={"refresh_token": second.json()["refresh_token"]})
    assert newest.status_code == 401
    access = await api.get(f"{API}/profile", headers=bearer(second.json()["access_token"]))
    assert access.status_code == 401
    assert ("auth.refresh.reuse", "critical") in await audit_actions(auth_app)


async def test_logout_ends_the_sign_in(api: httpx.AsyncClient) -> None:
    tokens = await http_sign_up(api, "ada@example.org")
    assert (await api.post(f"{API}/logout", headers=bearer(tokens["access_token"]))).status_code == 204
    assert (await api.get(f"{API}/profile", headers=bearer(tokens["access_token"]))).status_code == 401
    again = await api.post(f"{API}/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert again.status_code == 401


async def test_mfa_over_http_required_code_once_and_recovery_code_once(api: httpx.AsyncClient) -> None:
    tokens = await http_sign_up(api, "ada@example.org")
    headers = bearer(tokens["access_token"])
    setup = (await api.post(f"{API}/mfa/setup", headers=headers)).json()
    assert setup["provisioning_uri"].startswith("otpauth://totp/keen:")
    wrong = await api.post(f"{API}/mfa/enable", json={"code": "000000"}, headers=headers)
    assert wrong.status_code == 401
    enabled = await api.post(
        f"{API}/mfa/enable", json={"code": totp_code(setup["secret"], _now())}, headers=headers
    )
    assert enabled.status_code == 200 and len(enabled.json()["recovery_codes"]) == 10
    recovery = enabled.json()["recovery_codes"]
    no_code = await api.post(f"{API}/login", json={"email": "ada@example.org", "password": PASSWORD})
    assert no_code.status_code == 401 and error_of(no_code)["code"] == "mfa_required"
    # The code that enabled MFA was used in this step: it is refused as a replay.
    replay = await api.post(
        f"{API}/login",
        json={
            "email": "ada@example.org",
            "password": PASSWORD,
            "mfa_code": totp_code(setup["secret"], _now()),
        },
    )
    assert replay.status_code == 401 and "already used" in error_of(replay)["message"]
    await http_login(api, "ada@example.org", mfa_code=recovery[0])
    again = await api.post(
        f"{API}/login", json={"email": "ada@example.org", "password": PASSWORD, "mfa_code": recovery[0]}
    )
    assert again.status_code == 401


def _now() -> datetime:
    return datetime.now(UTC)


async def test_repeated_failures_lock_the_account_with_retry_after(api: httpx.AsyncClient) -> None:
    await http_sign_up(api, "ada@example.org")
    for _ in range(5):
        wrong = await api.post(f"{API}/login", json={"email": "ada@example.org", "password": "Wrong-pass-1"})
        assert wrong.status_code == 401
    locked = await api.post(f"{API}/login", json={"email": "ada@example.org", "password": PASSWORD})
    assert locked.status_code == 429 and locked.headers["Retry-After"] == "900"
    assert "try again in 900 seconds" in error_of(locked)["message"]


async def test_the_auth_routes_are_rate_limited_per_ip(
    make_app: Callable[..., FastAPI], client_for: Callable[..., httpx.AsyncClient]
) -> None:
    app = make_app(**{**TEST_APP_ENV, "KEEN_RATE_LIMIT_AUTH": "3/15minutes"})
    async with client_for(app) as one, client_for(app, client=("10.1.1.1", 4000)) as other:
        for _ in range(3):
            await one.post(f"{API}/login", json={"email": "x@example.org", "password": "Wrong-pass-1"})
        limited = await one.post(f"{API}/login", json={"email": "x@example.org", "password": "Wrong-pass-1"})
        assert limited.status_code == 429 and int(limited.headers["Retry-After"]) > 0
        assert (
            await other.post(f"{API}/register", json={"email": "y@example.org", "password": PASSWORD})
        ).status_code == 201


async def test_a_key_without_a_scope_gets_403_naming_it(api: httpx.AsyncClient, auth_app: FastAPI) -> None:
    tokens = await http_sign_up(api, "ada@example.org")
    created = await api.post(
        f"{API}/api-keys",
        json={"name": "runner", "scopes": ["agents:execute"]},
        headers=bearer(tokens["access_token"]),
    )
    key = {"Authorization": f"ApiKey {created.json()['key']}"}
    profile = await api.get(f"{API}/profile", headers=key)
    assert profile.status_code == 403 and error_of(profile)["details"]["scope"] == "profile:read"
    assert "profile:read" in error_of(profile)["message"]
    keys = await api.get(f"{API}/api-keys", headers=key)  # keys never manage keys
    assert keys.status_code == 403 and error_of(keys)["details"]["scope"] == "account:manage"
    assert ("access.denied", "medium") in await audit_actions(auth_app)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "a@example.org", "password": PASSWORD, "admin": True}, "admin"),
        ({"email": "a@example.org", "password": 12345678}, "password"),
        ({"email": "a@example.org"}, "password"),
        ({"email": "a@example.org", "password": "weakpass"}, "password"),
        ({"email": "nope", "password": PASSWORD}, "email"),
    ],
)
async def test_bad_registration_input_is_refused_naming_the_field_and_writes_nothing(
    api: httpx.AsyncClient, auth_app: FastAPI, body: dict[str, Any], field: str
) -> None:
    response = await api.post(f"{API}/register", json=body)
    assert response.status_code == 422
    assert field in json.dumps(error_of(response))
    assert await audit_actions(auth_app) == []


async def test_no_credentials_and_a_malformed_header_are_401(api: httpx.AsyncClient) -> None:
    for headers in (
        {},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer"},
        {"Authorization": "ApiKey keen_short"},
    ):
        response = await api.get(f"{API}/profile", headers=headers)
        assert response.status_code == 401, headers


async def test_malformed_json_and_a_huge_body_write_nothing(
    api: httpx.AsyncClient, auth_app: FastAPI
) -> None:
    headers = {"Content-Type": "application/json"}
    malformed = await api.post(
        f"{API}/register", content=b'{"email": "a@example.org", "password":', headers=headers
    )
    assert malformed.status_code == 400 and error_of(malformed)["type"] == "bad_request"
    huge = await api.post(
        f"{API}/login", content=b'{"email": "' + b"a" * (10 * 1024 * 1024) + b'"}', headers=headers
    )
    assert huge.status_code == 413
    assert await audit_actions(auth_app) == []
