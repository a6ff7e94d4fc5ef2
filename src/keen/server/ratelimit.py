"""Rate limits with the `limits` library: a moving window per (limit name, key), in memory or,
with `KEEN_REDIS_URL`, in Redis so that every replica counts the same requests.

- `rate_limit(name, limit, key=...)` makes a dependency for a route or a router.
- `auth_rate_limit`: the auth routes' limit (`KEEN_RATE_LIMIT_AUTH`, per IP).
- `global_rate_limit`: every request (`KEEN_RATE_LIMIT`), per user when authenticated, else per
  IP. The user is known only once the auth layer has authenticated the request, which happens
  after this dependency: a request that carries credentials is counted by `rate_limit_user`,
  called by the auth layer when it knows the user; when nothing did (no auth on the route, bad
  credentials), it is counted against its IP when the handler is done.

Responses carry `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` and
`RateLimit-Policy` of the tightest limit met; a request over a limit is a `RateLimitedError`
(429 with `Retry-After`). When the storage fails (Redis down) requests are let through and the
failure is logged: a rate limiter must not take the API down with it.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from functools import lru_cache

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from starlette.datastructures import MutableHeaders
from starlette.requests import HTTPConnection
from starlette.types import Scope

from keen.config import Settings
from keen.errors import ConfigError, RateLimitedError
from keen.server.middleware import ResponseHeadersMiddleware

logger = logging.getLogger("keen.server.ratelimit")

Key = Callable[[HTTPConnection], str]
LimitSpec = str | Callable[[Settings], str]
EXEMPT_PREFIXES = ("/health",)  # probes must never be limited (nor use up a client's budget)
MEMORY = "async+memory://"
# A Redis that stops answering delays a request by this much at most (then it is let through).
STORAGE_TIMEOUT_SECONDS = 2.0
STATE_KEY = "rate_limit"  # in the ASGI scope's state: the tightest `Usage` of this request


def client_ip(request: HTTPConnection) -> str:
    return request.client.host if request.client else "unknown"


def has_credentials(request: HTTPConnection) -> bool:
    """The request may be a user's: a token or key in `Authorization`, or a session cookie."""
    return "authorization" in request.headers or "cookie" in request.headers


def per_ip(request: HTTPConnection) -> str:
    return f"ip:{client_ip(request)}"


def per_user_or_ip(request: HTTPConnection) -> str:
    """The user the auth layer put on `request.state.user_id`, else the client's IP."""
    user_id = getattr(request.state, "user_id", None)
    return f"user:{user_id}" if user_id else per_ip(request)


@dataclass(frozen=True)
class Usage:
    limit: int
    remaining: int
    reset_at: float
    window: int

    def headers(self, now: float) -> dict[str, str]:
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(max(0, self.remaining)),
            "RateLimit-Reset": str(max(0, math.ceil(self.reset_at - now))),
            "RateLimit-Policy": f"{self.limit};w={self.window}",
        }


@lru_cache(maxsize=64)
def parse_limit(text: str) -> RateLimitItem:
    try:
        return parse(text)
    except ValueError:
        raise ConfigError(f"{text!r} is not a rate limit like `1000/hour` or `20/15minutes`") from None


def storage_uri(settings: Settings) -> str:
    """`async+memory://`, or the Redis of `KEEN_REDIS_URL` (`redis://`, `rediss://` or the
    `async+` forms `limits` uses)."""
    if settings.keen_redis_url is None or not settings.keen_redis_url.get_secret_value():
        return MEMORY
    url = settings.keen_redis_url.get_secret_value()
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme in {"redis", "rediss", "redis+unix"}:
        return f"async+{url}"
    if scheme in {"async+redis", "async+rediss", "async+redis+unix"}:
        return url
    raise ConfigError("KEEN_REDIS_URL must be a redis:// or rediss:// URL")


class RateLimiter:
    """The app's limiter (`app.state.rate_limiter`): one storage, the moving-window strategy."""

    def __init__(self, settings: Settings) -> None:
        uri = storage_uri(settings)
        self.uses_redis = uri != MEMORY
        self.storage: Storage = (
            RedisStorage(
                uri,
                key_prefix=settings.keen_rate_limit_prefix,
                connect_timeout=STORAGE_TIMEOUT_SECONDS,
                stream_timeout=STORAGE_TIMEOUT_SECONDS,
            )
            if self.uses_redis
            else MemoryStorage()
        )
        self.strategy = MovingWindowRateLimiter(self.storage)
        self.settings = settings

    def resolve(self, spec: LimitSpec) -> RateLimitItem:
        return parse_limit(spec(self.settings) if callable(spec) else spec)

    async def hit(
        self, request: HTTPConnection, name: str, item: RateLimitItem, key: str, *, enforce: bool = True
    ) -> None:
        """Count one request against `item` for `key`; over the limit, raise (when `enforce`)."""
        try:
            async with asyncio.timeout(STORAGE_TIMEOUT_SECONDS):
                allowed = await self.strategy.hit(item, name, key)
                stats = await self.strategy.get_window_stats(item, name, key)
        except Exception as exc:  # the storage's own errors (connection refused, timeouts…)
            logger.warning("rate limit storage failed, request let through: %s", exc or type(exc).__name__)
            return
        usage = Usage(item.amount, stats.remaining, stats.reset_time, item.get_expiry())
        _record(request, usage)
        if not allowed and enforce:
            retry_after = max(1, math.ceil(stats.reset_time - time.time()))
            raise RateLimitedError(
                f"too many requests: the limit is {item.amount} per {_window(item)}; retry in {retry_after} s",
                retry_after=retry_after,
                details={"limit": name},
            )

    async def check(self) -> bool:
        try:
            async with asyncio.timeout(STORAGE_TIMEOUT_SECONDS):
                return bool(await self.storage.check())
        except Exception:
            return False


def limiter_of(request: HTTPConnection) -> RateLimiter:
    limiter: RateLimiter = request.app.state.rate_limiter
    return limiter


def rate_limit(
    name: str, limit: LimitSpec, *, key: Key = per_user_or_ip
) -> Callable[[HTTPConnection], Awaitable[None]]:
    """A dependency counting each request against `limit` (a `limits` string, or a function of
    the settings giving one) under `name`, per `key(request)`."""

    async def dependency(request: HTTPConnection) -> None:
        limiter = limiter_of(request)
        await limiter.hit(request, name, limiter.resolve(limit), key(request))

    dependency.__name__ = f"rate_limit_{name}"
    return dependency


auth_rate_limit = rate_limit("auth", lambda s: s.keen_rate_limit_auth, key=per_ip)


async def rate_limit_user(request: HTTPConnection, user_id: str) -> None:
    """Called by the auth layer once it knows who made the request: marks the request as that
    user's and counts it against the user's global limit."""
    request.state.user_id = user_id
    if getattr(request.state, "global_counted", True):
        return  # not deferred (no credentials, an exempt path) or counted already
    request.state.global_counted = True
    limiter = limiter_of(request)
    await limiter.hit(request, "global", limiter.resolve(_global), per_user_or_ip(request))


async def global_rate_limit(request: HTTPConnection) -> AsyncIterator[None]:
    """The overall limit of every request (see the module's docstring for who counts what)."""
    if request.scope["type"] != "http" or request.url.path.startswith(EXEMPT_PREFIXES):
        yield  # WebSocket routes limit their own connections (an error there is not a response)
        return
    limiter = limiter_of(request)
    if not has_credentials(request):
        await limiter.hit(request, "global", limiter.resolve(_global), per_ip(request))
        yield
        return
    request.state.global_counted = False
    try:
        yield
    finally:
        if not request.state.global_counted:
            request.state.global_counted = True
            await limiter.hit(request, "global", limiter.resolve(_global), per_ip(request), enforce=False)


def _global(settings: Settings) -> str:
    return settings.keen_rate_limit


def _window(item: RateLimitItem) -> str:
    unit = item.GRANULARITY.name
    return unit if item.multiples == 1 else f"{item.multiples} {unit}s"


def _record(request: HTTPConnection, usage: Usage) -> None:
    current: Usage | None = request.scope.setdefault("state", {}).get(STATE_KEY)
    if current is None or usage.remaining < current.remaining:
        request.scope["state"][STATE_KEY] = usage


class RateLimitHeadersMiddleware(ResponseHeadersMiddleware):
    """Puts the `RateLimit-*` headers of the tightest limit a request met on its response."""

    def add_headers(self, scope: Scope, headers: MutableHeaders) -> None:
        usage: Usage | None = scope.get("state", {}).get(STATE_KEY)
        if usage is not None:
            for name, value in usage.headers(time.time()).items():
                headers.setdefault(name, value)
