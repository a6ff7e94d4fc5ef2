"""What auth tests share: cheap password hashing, a clock the test moves, a migrated database,
and shortcuts for the usual steps (register, sign in, authenticate)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from keen.audit import Origin
from keen.auth import AuthPolicy, AuthService, Principal, SignIn, authenticate
from keen.auth.passwords import Passwords
from keen.store import Database
from keen.store.models import UserRow

T = TypeVar("T")
SECRET = "test-secret-" + "x" * 40
PASSWORD = "Correct-horse-9"
# ≈ 30 ms a hash instead of ≈ 0.5 s (DEPENDENCIES.md); the same Argon2id, a lower cost.
CHEAP_ARGON2_ENV = {
    "KEEN_ARGON2_TIME_COST": "1",
    "KEEN_ARGON2_MEMORY_KIB": "8192",
    "KEEN_ARGON2_PARALLELISM": "1",
}
HERE = Origin(ip="192.0.2.10", request_id="req-test")


def cheap_passwords(time_cost: int = 1) -> Passwords:
    return Passwords(time_cost=time_cost, memory_kib=8192, parallelism=1)


@dataclass
class Clock:
    """Now, as the services see it; a test moves it on."""

    now: datetime = field(default_factory=lambda: datetime(2026, 12, 10, 12, 0, 10, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class Auth:
    """A migrated database and the policy the services run with."""

    db: Database
    policy: AuthPolicy
    clock: Clock

    async def unit(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """Run `work` in one unit of work, as a request handler would."""
        async with self.db.transaction() as session:
            return await work(session)

    async def register(self, email: str, password: str = PASSWORD) -> UserRow:
        return await self.unit(lambda s: AuthService(s, self.policy).register(email, password, HERE))

    async def login(
        self, email: str, password: str = PASSWORD, mfa_code: str | None = None, origin: Origin = HERE
    ) -> SignIn:
        return await self.unit(lambda s: AuthService(s, self.policy).login(email, password, mfa_code, origin))

    async def who(self, authorization: str) -> Principal:
        return await self.unit(lambda s: authenticate(s, self.policy, authorization, HERE))

    async def acting(
        self,
        authorization: str,
        work: Callable[[AsyncSession, Principal], Awaitable[T]],
        origin: Origin = HERE,
    ) -> T:
        """Authenticate and then run `work` in the same unit of work, as a request does."""

        async def request(session: AsyncSession) -> T:
            return await work(session, await authenticate(session, self.policy, authorization, origin))

        return await self.unit(request)


async def make_auth(url: str, clock: Clock, *, passwords: Passwords | None = None) -> AsyncIterator[Auth]:
    db = Database(url)
    try:
        yield Auth(
            db, AuthPolicy(secret=SECRET, passwords=passwords or cheap_passwords(), clock=clock), clock
        )
    finally:
        await db.dispose()


async def make_user(auth: Auth, email: str, role: str = "user", privileges: tuple[str, ...] = ()) -> UserRow:
    """An account of any role, made as keen itself would (the CLI, the first admin)."""
    from keen.auth.accounts import NewUser, create_user
    from keen.store.db import set_acting_user

    async def work(session: AsyncSession) -> UserRow:
        await set_acting_user(session, None, True)
        new = NewUser(email=email, password=PASSWORD, role=role, privileges=privileges)
        return await create_user(session, auth.policy.passwords, new, actor="cli", origin=Origin())

    return await auth.unit(work)


# Over HTTP (the app in-process or `keen serve`): the same steps through the API.
API = "/api/v1/auth"
# Settings for an app under test: cheap hashing, a fixed secret, auth limits out of the way.
TEST_APP_ENV = {**CHEAP_ARGON2_ENV, "KEEN_SECRET_KEY": SECRET, "KEEN_RATE_LIMIT_AUTH": "1000/15minutes"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def http_sign_up(client: Any, email: str, password: str = PASSWORD) -> dict[str, Any]:
    """Register and log in; the login's JSON (tokens and the user)."""
    registered = await client.post(f"{API}/register", json={"email": email, "password": password})
    assert registered.status_code == 201, registered.text
    return await http_login(client, email, password)


async def http_login(client: Any, email: str, password: str = PASSWORD, **extra: Any) -> dict[str, Any]:
    response = await client.post(f"{API}/login", json={"email": email, "password": password, **extra})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body
