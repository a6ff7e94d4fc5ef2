"""One model call the way every agent makes it (the tree's agents and the conversation agent).

Condense the conversation if it nears the context window, hold the call's worst case against
the budget, call with retries while streaming deltas live (each retry is a `model.retrying`
event as it happens; giving up names the endpoint and the attempts), condense harder and try
once more if the provider still says the request is too long, charge the actual cost (releasing
the hold on every failure), and record the reply as one `model.responded` event in the same
transaction as whatever the meter's charge writes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from keen.agent.budget import Meter
from keen.errors import ModelCallError
from keen.events import types as ev
from keen.events.bus import WAITING
from keen.events.sink import EventSink, TransactionalWrite
from keen.events.types import Event, SessionRef
from keen.llm.base import Delta, Model, Request, Turn, reply_record
from keen.llm.factory import Endpoint, endpoint_of
from keen.llm.retry import MAX_ATTEMPTS, complete_with_retries

Emit = Callable[[str, dict[str, Any], Sequence[TransactionalWrite]], Awaitable[Event]]
Condense = Callable[[bool], Awaitable[None]]  # force: condense even below the threshold


@dataclass
class Caller:
    model: Model
    meter: Meter
    sink: EventSink
    ref: SessionRef
    emit: Emit
    retry_base_delay: float = 1.0

    async def respond(
        self,
        build: Callable[[], Request],
        condense: Condense | None,
        *,
        iteration: int,
        stream: bool = True,
        extra: dict[str, Any] | None = None,
    ) -> Turn:
        """Make the call; `condense` None means a one-off request with no history to condense."""
        if condense is not None:
            await condense(False)
        request = build()
        side = (extra or {}).get("side_call")
        call_id = f"{self.ref.session_id}:{iteration}" + (f":{side}" if side else "")
        hold = await self.meter.reserve(self.model.worst_case_cost(request), ref=self.ref, call_id=call_id)
        retries: list[dict[str, Any]] = []
        started = time.perf_counter()
        try:
            if stream:
                self.sink.delta(self.ref, WAITING, "")  # live views can show that a reply is awaited
            try:
                turn = await self._complete(request, retries, stream)
            except ModelCallError as exc:
                if exc.kind != "context_length" or condense is None:
                    raise
                await condense(True)
                turn = await self._complete(build(), retries, stream)
        except BaseException:
            await self.meter.release(hold)
            raise
        writes = await self.meter.charge(hold, turn.cost_usd)
        await self.emit(
            ev.MODEL_RESPONDED,
            {
                "iteration": iteration,
                "text": turn.text,
                "thinking": turn.thinking,
                "stop_reason": turn.stop_reason,
                "usage": turn.usage.model_dump(),
                "cost_usd": turn.cost_usd,
                "priced": turn.priced,
                "duration_ms": int((time.perf_counter() - started) * 1000),
                "model": turn.model,
                **reply_record(turn.parts),
                "model_state": self.model.state(),
                "retries": retries,
                **(extra or {}),
            },
            writes,
        )
        return turn

    async def _complete(self, request: Request, retries: list[dict[str, Any]], stream: bool) -> Turn:
        endpoint = endpoint_of(self.model)
        failed: list[dict[str, Any]] = []  # this call's failed attempts
        unrecorded: list[dict[str, Any]] = []

        def on_retry(attempt: int, error: ModelCallError, delay: float) -> None:
            retry = {"attempt": attempt, "kind": error.kind, "message": error.message, "delay_s": delay}
            retries.append(retry)
            failed.append(retry)
            unrecorded.append(retry)

        async def record_then_sleep(delay: float) -> None:
            # Each retry is an event before its wait, so a live view says what is going on.
            while unrecorded:
                retry = unrecorded.pop(0)
                await self.emit(ev.MODEL_RETRYING, _retrying(retry, endpoint), ())
            await asyncio.sleep(delay)

        def on_delta(delta: Delta) -> None:
            if stream:
                self.sink.delta(self.ref, delta.kind, delta.text)

        try:
            return await complete_with_retries(
                self.model,
                request,
                on_delta,
                base_delay=self.retry_base_delay,
                on_retry=on_retry,
                sleep=record_then_sleep,
            )
        except ModelCallError as exc:
            if not (exc.retryable and failed):
                raise
            attempts = len(failed) + 1
            raise ModelCallError(
                exc.kind,
                f"{_problem(exc.kind, endpoint, full=True)} after {attempts} attempts: {exc.message}",
                status=exc.status,
                retry_after=exc.retry_after,
            ) from exc


_PROBLEMS = {
    "connection": "model unreachable at",
    "timeout": "model timed out at",
    "rate_limit": "model rate-limited at",
    "overloaded": "model overloaded at",
    "server_error": "model server error at",
}


def _problem(kind: str, endpoint: Endpoint | None, *, full: bool = False) -> str:
    """What went wrong, and where: `model unreachable at http://127.0.0.1:9`."""
    what = _PROBLEMS.get(kind, f"model call failed ({kind}) at")
    if endpoint is None:
        return what.removesuffix(" at")
    return f"{what} {endpoint.describe() if full else endpoint.url}"


def _retrying(retry: dict[str, Any], endpoint: Endpoint | None) -> dict[str, Any]:
    return {
        **retry,
        "next_attempt": retry["attempt"] + 1,
        "max_attempts": MAX_ATTEMPTS,
        "endpoint": endpoint.url if endpoint else None,
        "endpoint_variable": endpoint.variable if endpoint and not endpoint.default else None,
        "problem": _problem(retry["kind"], endpoint),
    }
