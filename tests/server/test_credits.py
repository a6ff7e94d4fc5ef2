"""`/api/v1/credits` and the admin credit routes over HTTP, on SQLite and on PostgreSQL as the
application role: balance, entries, analytics from the data, purchases with `Idempotency-Key`
(replayed, refused with another body, one movement under concurrency), a failing payment,
estimates, settings, adjustments and platform analytics, and one user never reaching another's
credits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from authkit import PASSWORD, TEST_APP_ENV, bearer, http_login, http_sign_up
from keen.auth import ensure_first_admin
from keen.billing import Ledger, LedgerConfig, TestPaymentProvider
from keen.config import Settings
from keen.server import create_app
from keen.store.db import run_migrations, set_acting_user
from keen.store.models import AuditLogRow, CreditTransactionRow
from pgdb import app_login_role, pg_url

__all__ = ["pg_url"]
CREDITS = "/api/v1/credits"
ADMIN = "/api/v1/admin"
ROOT = "root@example.org"
D = Decimal


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/keen.db"
        run_migrations(url)
        yield url
        return
    owner_url = request.getfixturevalue("pg_url")
    run_migrations(owner_url)
    with app_login_role(owner_url) as url:
        yield url


@pytest.fixture
async def app(database_url: str, keen_home: Path) -> AsyncIterator[FastAPI]:
    settings = Settings(
        KEEN_HOME=keen_home,
        KEEN_DATABASE_URL=database_url,
        KEEN_ADMIN_EMAIL=ROOT,
        KEEN_ADMIN_PASSWORD=PASSWORD,
        **TEST_APP_ENV,
    )
    application = create_app(settings)
    assert await ensure_first_admin(settings, application.state.db)
    yield application
    await application.state.db.dispose()


@pytest.fixture
async def api(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        yield client


async def _user(api: httpx.AsyncClient, email: str) -> tuple[str, dict[str, str]]:
    signed = await http_sign_up(api, email)
    return signed["user"]["id"], bearer(signed["access_token"])


async def _root(api: httpx.AsyncClient) -> dict[str, str]:
    return bearer((await http_login(api, ROOT))["access_token"])


async def _entries(app: FastAPI, user_id: str) -> list[CreditTransactionRow]:
    async with app.state.db.transaction() as session:
        await set_acting_user(session, None, True)
        query = select(CreditTransactionRow).where(CreditTransactionRow.user_id == user_id)
        return list((await session.scalars(query.order_by(CreditTransactionRow.id))).all())


async def _audited(app: FastAPI, user_id: str) -> list[str]:
    async with app.state.db.transaction() as session:
        await set_acting_user(session, None, True)
        query = select(AuditLogRow.action).where(AuditLogRow.user_id == user_id).order_by(AuditLogRow.seq)
        return [a for a in (await session.scalars(query)).all() if a.startswith("credits.")]


async def _use(app: FastAPI, user_id: str, key: str, cost: str, model: str) -> None:
    """A model call charged through the ledger, as a metered run would."""
    async with app.state.db.transaction() as session:
        await set_acting_user(session, user_id, False)
        ledger = Ledger(session, LedgerConfig.from_settings(app.state.settings))
        await ledger.hold(user_id, D(cost), key=key, model=model)
        await ledger.charge(user_id, key, D(cost))


async def test_a_new_account_has_nothing_and_the_default_limits(api: httpx.AsyncClient) -> None:
    _, ada = await _user(api, "ada@example.org")
    body = (await api.get(f"{CREDITS}/balance", headers=ada)).json()
    assert (body["balance"], body["available"], body["unlimited"]) == ("0.000000", "0.000000", False)
    assert body["limits"] == {
        "daily": "100.000000",
        "monthly": "1000.000000",
        "used_today": "0.000000",
        "used_this_month": "0.000000",
    }
    assert body["auto_recharge"]["enabled"] is False and body["auto_recharge"]["amount"] == "50.000000"
    assert (await api.get(f"{CREDITS}/balance")).status_code == 401


async def test_a_purchase_with_a_key_is_made_once_and_replayed(app: FastAPI, api: httpx.AsyncClient) -> None:
    ada_id, ada = await _user(api, "ada@example.org")
    keyed = {**ada, "Idempotency-Key": "buy-1"}
    first = await api.post(f"{CREDITS}/purchase", json={"amount": "25.5"}, headers=keyed)
    again = await api.post(f"{CREDITS}/purchase", json={"amount": "25.5"}, headers=keyed)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["Idempotency-Replayed"] == "true"
    assert first.json()["balance"]["balance"] == "25.500000"
    other = await api.post(f"{CREDITS}/purchase", json={"amount": "30"}, headers=keyed)
    assert other.status_code == 409 and other.json()["error"]["code"] == "conflict"
    unkeyed = await api.post(f"{CREDITS}/purchase", json={"amount": "1"}, headers=ada)
    assert unkeyed.status_code == 201
    assert [(e.type, e.amount) for e in await _entries(app, ada_id)] == [
        ("purchase", D("25.5")),
        ("purchase", D(1)),
    ]
    assert await _audited(app, ada_id) == ["credits.purchase", "credits.purchase"]


async def test_concurrent_requests_with_one_key_make_one_purchase(
    app: FastAPI, api: httpx.AsyncClient
) -> None:
    ada_id, ada = await _user(api, "ada@example.org")
    keyed = {**ada, "Idempotency-Key": "together"}
    answers = await asyncio.gather(
        *(api.post(f"{CREDITS}/purchase", json={"amount": "10"}, headers=keyed) for _ in range(6))
    )
    assert {a.status_code for a in answers} == {201}
    assert len({a.text for a in answers}) == 1
    assert len(await _entries(app, ada_id)) == 1
    assert (await api.get(f"{CREDITS}/balance", headers=ada)).json()["balance"] == "10.000000"


async def test_the_same_key_of_two_users_is_two_purchases(app: FastAPI, api: httpx.AsyncClient) -> None:
    ada_id, ada = await _user(api, "ada@example.org")
    bob_id, bob = await _user(api, "bob@example.org")
    for headers in (ada, bob):
        answer = await api.post(
            f"{CREDITS}/purchase", json={"amount": "3"}, headers={**headers, "Idempotency-Key": "k"}
        )
        assert answer.status_code == 201 and "Idempotency-Replayed" not in answer.headers
    assert len(await _entries(app, ada_id)) == len(await _entries(app, bob_id)) == 1


async def test_a_failed_payment_is_402_credits_nothing_and_is_audited(
    app: FastAPI, api: httpx.AsyncClient
) -> None:
    ada_id, ada = await _user(api, "ada@example.org")
    app.state.payment_provider = TestPaymentProvider(fail=True)
    failed = await api.post(
        f"{CREDITS}/purchase", json={"amount": "20"}, headers={**ada, "Idempotency-Key": "f"}
    )
    assert failed.status_code == 402
    assert failed.json()["error"]["code"] == "payment_failed" and failed.json()["success"] is False
    assert (await api.get(f"{CREDITS}/balance", headers=ada)).json()["balance"] == "0.000000"
    assert await _entries(app, ada_id) == []
    assert await _audited(app, ada_id) == ["credits.payment_failed"]


@pytest.mark.parametrize("amount", [20, 20.5, "20.1234567", "-5", "0", "1e3", True])
async def test_amounts_must_be_positive_decimal_strings(api: httpx.AsyncClient, amount: Any) -> None:
    _, ada = await _user(api, "ada@example.org")
    refused = await api.post(f"{CREDITS}/purchase", json={"amount": amount}, headers=ada)
    assert refused.status_code == 422, refused.text


async def test_transactions_are_filtered_and_paged_and_analytics_come_from_the_data(
    app: FastAPI, api: httpx.AsyncClient
) -> None:
    ada_id, ada = await _user(api, "ada@example.org")
    await api.post(f"{CREDITS}/purchase", json={"amount": "50"}, headers=ada)
    await _use(app, ada_id, "c1", "0.1", "anthropic:m1")
    await _use(app, ada_id, "c2", "0.2", "anthropic:m2")
    await _use(app, ada_id, "c3", "0.3", "anthropic:m1")
    page = (
        await api.get(f"{CREDITS}/transactions", params={"type": "usage", "limit": 2}, headers=ada)
    ).json()
    assert page["total"] == 3 and [e["amount"] for e in page["items"]] == ["-1.500000", "-1.000000"]
    assert page["items"][0]["markup"] == "5.000000" and page["items"][0]["provider_cost"] == "0.300000"
    rest = (
        await api.get(f"{CREDITS}/transactions", params={"type": "usage", "offset": 2}, headers=ada)
    ).json()
    assert [e["amount"] for e in rest["items"]] == ["-0.500000"]
    both = await api.get(
        f"{CREDITS}/transactions", params=[("type", "usage"), ("type", "purchase")], headers=ada
    )
    assert both.json()["total"] == 4
    future = await api.get(f"{CREDITS}/transactions", params={"since": "2999-01-01T00:00:00Z"}, headers=ada)
    assert future.json()["total"] == 0
    report = (await api.get(f"{CREDITS}/analytics", headers=ada)).json()
    assert (report["spent"], report["purchased"], report["calls"]) == ("3.000000", "50.000000", 3)
    assert [(m["model"], m["spent"], m["calls"]) for m in report["by_model"]] == [
        ("anthropic:m1", "2.000000", 2),
        ("anthropic:m2", "1.000000", 1),
    ]
    assert len(report["by_day"]) == 1 and report["by_day"][0]["spent"] == "3.000000"


async def test_an_estimate_is_a_range_stated_as_an_estimate(api: httpx.AsyncClient) -> None:
    _, ada = await _user(api, "ada@example.org")
    body = {
        "vision": "a CLI that converts CSV to JSON",
        "model": "anthropic:claude-sonnet-5-5",
        "max_iterations": 40,
    }
    answer = await api.post(f"{CREDITS}/estimate", json=body, headers=ada)
    assert answer.status_code == 200, answer.text
    found = answer.json()
    assert found["estimate"] is True and D(0) < D(found["low"]) < D(found["high"])
    assert "estimate" in found["basis"] and found["markup"] == "5.000000"
    unknown = await api.post(f"{CREDITS}/estimate", json={**body, "model": "nope"}, headers=ada)
    assert unknown.status_code == 400 and unknown.json()["error"]["code"] == "config_error"


async def test_settings_change_limits_and_auto_recharge(app: FastAPI, api: httpx.AsyncClient) -> None:
    ada_id, ada = await _user(api, "ada@example.org")
    change = {"daily_limit": "5", "auto_recharge": {"enabled": True, "threshold": "2", "amount": "20"}}
    changed = await api.patch(f"{CREDITS}/settings", json=change, headers=ada)
    assert changed.status_code == 200, changed.text
    assert (
        changed.json()["limits"]["daily"] == "5.000000" and changed.json()["auto_recharge"]["enabled"] is True
    )
    assert (await api.patch(f"{CREDITS}/settings", json={"daily_limit": 5}, headers=ada)).status_code == 422
    assert (await api.patch(f"{CREDITS}/settings", json={"limit": "5"}, headers=ada)).status_code == 422
    assert await _audited(app, ada_id) == ["credits.settings"]


async def test_an_admin_adjusts_with_a_reason_once_per_key_and_sees_the_platform(
    app: FastAPI, api: httpx.AsyncClient
) -> None:
    root = await _root(api)
    ada_id, ada = await _user(api, "ada@example.org")
    url = f"{ADMIN}/users/{ada_id}/credits"
    keyed = {**root, "Idempotency-Key": "grant-1"}
    granted = await api.post(url, json={"amount": "40", "reason": "welcome"}, headers=keyed)
    replay = await api.post(url, json={"amount": "40", "reason": "welcome"}, headers=keyed)
    assert granted.status_code == 201, granted.text
    assert replay.json() == granted.json() and granted.json()["entry"]["reason"] == "welcome"
    taken = await api.post(url, json={"amount": "-50", "reason": "too much"}, headers=root)
    assert taken.status_code == 409
    assert (await api.post(url, json={"amount": "5"}, headers=root)).status_code == 422  # no reason
    assert (
        await api.post(f"{ADMIN}/users/{'0' * 32}/credits", json={"amount": "5", "reason": "x"}, headers=root)
    ).status_code == 404
    assert (await api.get(url, headers=root)).json()["balance"] == "40.000000"
    await api.post(f"{CREDITS}/purchase", json={"amount": "10"}, headers=ada)
    await _use(app, ada_id, "c1", "0.2", "anthropic:m1")  # 1 credit for $0.20
    figures = (await api.get(f"{ADMIN}/analytics", headers=root)).json()
    assert (figures["revenue"], figures["spend"], figures["provider_cost"], figures["markup_earned"]) == (
        "10.000000",
        "1.000000",
        "0.200000",
        "0.800000",
    )
    assert figures["adjustments"] == "40.000000" and figures["outstanding_balance"] == "49.000000"
    assert figures["by_day"][0]["revenue"] == "10.000000"
    assert await _audited(app, ada_id) == ["credits.adjustment", "credits.purchase", "credits.usage"]


async def test_an_admin_is_charged_nothing_and_shows_as_unlimited(
    app: FastAPI, api: httpx.AsyncClient
) -> None:
    root = await _root(api)
    me = (await api.get("/api/v1/auth/profile", headers=root)).json()["id"]
    await _use(app, me, "admin-call", "0.4", "anthropic:m1")
    body = (await api.get(f"{CREDITS}/balance", headers=root)).json()
    assert body["unlimited"] is True and body["balance"] == "0.000000"
    assert [(e.type, e.amount, e.unbilled) for e in await _entries(app, me)] == [("admin_bypass", D(0), D(2))]
    figures = (await api.get(f"{ADMIN}/analytics", headers=root)).json()
    assert (figures["admin_bypass"], figures["spend"]) == ("2.000000", "0.000000")


async def test_a_user_reaches_no_other_users_credits_through_any_route(
    app: FastAPI, api: httpx.AsyncClient
) -> None:
    ada_id, ada = await _user(api, "ada@example.org")
    _, bob = await _user(api, "bob@example.org")
    await api.post(f"{CREDITS}/purchase", json={"amount": "30"}, headers={**ada, "Idempotency-Key": "mine"})
    await _use(app, ada_id, "c1", "0.2", "anthropic:m1")
    # Bob's view of every credits route is Bob's own (empty) account...
    assert (await api.get(f"{CREDITS}/balance", headers=bob)).json()["balance"] == "0.000000"
    assert (await api.get(f"{CREDITS}/transactions", headers=bob)).json()["total"] == 0
    assert (await api.get(f"{CREDITS}/analytics", headers=bob)).json()["calls"] == 0
    # ...Ada's idempotency key replays nothing of Ada's for him...
    his = await api.post(
        f"{CREDITS}/purchase", json={"amount": "30"}, headers={**bob, "Idempotency-Key": "mine"}
    )
    assert his.status_code == 201 and his.json()["balance"]["user_id"] != ada_id
    # ...and every route that names an account is an admin's (403 for him, audited).
    for method, body in (("GET", None), ("POST", {"amount": "5", "reason": "mine now"})):
        refused = await api.request(method, f"{ADMIN}/users/{ada_id}/credits", json=body, headers=bob)
        assert refused.status_code == 403
    assert (await api.get(f"{ADMIN}/analytics", headers=bob)).status_code == 403
    assert (await api.get(f"{CREDITS}/balance", headers=ada)).json()["balance"] == "29.000000"


async def test_the_server_sweeps_stale_holds_while_it_runs(app: FastAPI, api: httpx.AsyncClient) -> None:
    ada_id, ada = await _user(api, "ada@example.org")
    await api.post(f"{CREDITS}/purchase", json={"amount": "5"}, headers=ada)
    async with app.state.db.transaction() as session:
        await set_acting_user(session, ada_id, False)
        ledger = Ledger(session, LedgerConfig.from_settings(app.state.settings))
        await ledger.hold(ada_id, D("0.2"), key="abandoned", ttl=timedelta(0))
    assert (await api.get(f"{CREDITS}/balance", headers=ada)).json()["held"] == "1.000000"
    async with app.router.lifespan_context(app):  # as `keen serve` runs it
        for _ in range(100):
            if (await api.get(f"{CREDITS}/balance", headers=ada)).json()["held"] == "0.000000":
                break
            await asyncio.sleep(0.05)
    assert (await api.get(f"{CREDITS}/balance", headers=ada)).json()["held"] == "0.000000"
    assert "credits.hold_expired" in await _audited(app, ada_id)
