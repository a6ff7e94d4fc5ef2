"""Retries of model calls: exponential backoff honouring `retry-after`, up to 6 attempts.

Provider SDK retries are turned off so that this is the only retry policy, the same for every
provider and visible to the agent (each retry can be reported).
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Awaitable, Callable, Mapping

from keen.errors import ModelCallError
from keen.llm.base import DeltaCallback, Model, Request, Turn

MAX_ATTEMPTS = 6
MAX_DELAY_SECONDS = 60.0

RetryCallback = Callable[[int, ModelCallError, float], None]


def backoff_delay(attempt: int, error: ModelCallError, base_delay: float) -> float:
    """Delay before retry number `attempt` (1-based): the provider's `retry-after` when given."""
    if error.retry_after is not None:
        return min(max(error.retry_after, 0.0), MAX_DELAY_SECONDS)
    exponential = base_delay * (2 ** (attempt - 1))
    return min(exponential * (0.5 + random.random() / 2), MAX_DELAY_SECONDS)


def transport_error(
    exc: Exception, provider: str, timeouts: tuple[type, ...], connections: tuple[type, ...]
) -> ModelCallError | None:
    """A timeout or a failed/dropped connection as a (retryable) `ModelCallError`, or None.

    `timeouts` and `connections` are the SDK's and its HTTP library's exception classes; the
    SDK's timeout class is checked first because it subclasses its connection class."""
    if isinstance(exc, timeouts):
        return ModelCallError("timeout", f"{provider}: request timed out ({exc})")
    if isinstance(exc, connections):
        cause = exc.__cause__ or exc
        detail = str(cause) or type(cause).__name__
        return ModelCallError("connection", f"{provider}: connection failed or dropped: {detail}")
    return None


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """The wait a provider asks for in `retry-after-ms` or `retry-after` (seconds; dates ignored)."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) * scale
        except ValueError:
            continue
        if math.isfinite(seconds):
            return max(seconds, 0.0)
    return None


async def complete_with_retries(
    model: Model,
    request: Request,
    on_delta: DeltaCallback | None = None,
    *,
    base_delay: float = 1.0,
    on_retry: RetryCallback | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> Turn:
    """Call the model, retrying retryable failures; the last failure is raised unchanged."""
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            return await model.complete(request, on_delta)
        except ModelCallError as error:
            if not error.retryable or attempt == MAX_ATTEMPTS:
                raise
            delay = backoff_delay(attempt, error, base_delay)
            if on_retry is not None:
                on_retry(attempt, error, delay)
            await sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover
