"""What tests of agent runs on the server share: the server's settings for them, signing a user
up, giving credits, starting a scripted run and waiting for it, and reading the ledger."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from authkit import API, CHEAP_ARGON2_ENV, PASSWORD, TEST_APP_ENV, bearer
from keen.store import Database

AGENTS = "/api/v1/agents"
# A server that runs scripted models, with limits out of the way and quick heartbeats.
RUN_ENV = {
    **TEST_APP_ENV,
    "KEEN_ALLOW_SCRIPTED_MODELS": "1",
    "KEEN_RATE_LIMIT": "100000/hour",
    "KEEN_RATE_LIMIT_EXECUTE": "1000/hour",
    "KEEN_STREAM_HEARTBEAT_SECONDS": "1",
}
__all__ = ["AGENTS", "CHEAP_ARGON2_ENV", "RUN_ENV"]
ACTIVE = ("created", "running")
MICRO = Decimal(1_000_000)
FAST = {"gates": "off", "web_search": False}


def sign_up(base_url: str, email: str) -> tuple[dict[str, str], str]:
    """Register and log in over HTTP; the Authorization header and the user id."""
    with httpx.Client(base_url=base_url, timeout=30) as client:
        registered = client.post(f"{API}/register", json={"email": email, "password": PASSWORD})
        assert registered.status_code == 201, registered.text
        login = client.post(f"{API}/login", json={"email": email, "password": PASSWORD})
        assert login.status_code == 200, login.text
        body = login.json()
    return bearer(body["access_token"]), body["user"]["id"]


def grant(home: Path, user_id: str, amount: str) -> None:
    """An admin's adjustment of `amount` credits to the user, straight in the server's database."""
    from ledgerkit import grant as ledger_grant

    async def work() -> None:
        db = Database(f"sqlite:///{home / 'keen.db'}")
        try:
            await ledger_grant(db, user_id, amount)
        finally:
            await db.dispose()

    asyncio.run(work())


def execute(
    base_url: str,
    headers: dict[str, str],
    script: Path,
    vision: str = "do what the script says",
    **options: Any,
) -> dict[str, Any]:
    body = {"vision": vision, "options": {"model": f"scripted:{script}", **FAST, **options}}
    response = httpx.post(f"{base_url}{AGENTS}/execute", json=body, headers=headers, timeout=60)
    assert response.status_code == 202, response.text
    session: dict[str, Any] = response.json()
    return session


def session_of(base_url: str, headers: dict[str, str], session_id: str) -> dict[str, Any]:
    response = httpx.get(f"{base_url}{AGENTS}/sessions/{session_id}", headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def wait_finished(
    base_url: str, headers: dict[str, str], session_id: str, timeout: float = 60
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        session = session_of(base_url, headers, session_id)
        if session["status"] not in ACTIVE:
            return session
        time.sleep(0.1)
    raise AssertionError(f"session {session_id} did not finish: {session}")


def events_of(
    base_url: str, headers: dict[str, str], session_id: str, after_seq: int = 0
) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    while True:
        response = httpx.get(
            f"{base_url}{AGENTS}/sessions/{session_id}/events",
            params={"after_seq": after_seq, "limit": 1000},
            headers=headers,
            timeout=30,
        )
        assert response.status_code == 200, response.text
        page = response.json()
        if not page["items"]:
            return found
        found += page["items"]
        after_seq = page["after_seq"]


def wait_events(
    base_url: str, headers: dict[str, str], session_id: str, type_: str, count: int = 1, timeout: float = 30
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [e for e in events_of(base_url, headers, session_id) if e["type"] == type_]
        if len(found) >= count:
            return found
        time.sleep(0.05)
    raise AssertionError(f"fewer than {count} {type_} events in time")


class Ledger:
    """The credit tables of a server's SQLite database, read directly (amounts in micro-credits)."""

    def __init__(self, home: Path) -> None:
        self.path = home / "keen.db"

    def _one(self, sql: str, *args: Any) -> Any:
        with sqlite3.connect(self.path) as conn:
            return conn.execute(sql, args).fetchone()[0]

    def usage(self, user_id: str) -> Decimal:
        """The credits the user's usage transactions took (a positive amount)."""
        total = self._one(
            "select coalesce(sum(amount), 0) from credit_transactions where user_id = ? and type = 'usage'",
            user_id,
        )
        return -Decimal(total) / MICRO

    def usage_count(self, user_id: str) -> int:
        return int(
            self._one(
                "select count(*) from credit_transactions where user_id = ? and type = 'usage'", user_id
            )
        )

    def balance(self, user_id: str) -> Decimal:
        return Decimal(self._one("select balance from credit_accounts where user_id = ?", user_id)) / MICRO

    def held(self, user_id: str) -> Decimal:
        return Decimal(self._one("select held from credit_accounts where user_id = ?", user_id)) / MICRO

    def open_holds(self, user_id: str) -> int:
        return int(
            self._one("select count(*) from credit_holds where user_id = ? and status = 'open'", user_id)
        )


def costs(events: list[dict[str, Any]]) -> list[Decimal]:
    return [Decimal(e["data"]["cost_usd"]) for e in events if e["type"] == "model.responded"]


def assert_gap_free(events: list[dict[str, Any]]) -> None:
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(1, len(seqs) + 1)), f"seq is not gap-free: {seqs}"
