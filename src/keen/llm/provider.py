"""What the real providers' adapters share: one stateless instance per session, a price resolved
once, and reading an SDK stream with its failures typed."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, NoReturn

from keen.errors import ModelCallError
from keen.llm import pricing
from keen.llm.base import DeltaCallback, Model, Request, Turn, estimate_tokens

# What an SDK raises from inside its stream parsing when the provider sent something it cannot
# read (pydantic's ValidationError is a ValueError); a dropped connection is the SDK's own error.
_MALFORMED = (AttributeError, TypeError, ValueError, KeyError, IndexError, RuntimeError, AssertionError)


class ProviderModel:
    """One instance serves every agent of a session (it holds no conversation); the worst case
    and the cost of a call come from the model's price, resolved when the model is built."""

    name: str
    provider: str
    model: str
    context_window: int
    max_output_tokens: int
    scripted = False
    price: pricing.Price
    _client: Any

    def for_agent(self, agent_key: str) -> Model:
        return self

    def state(self) -> dict[str, Any] | None:
        return None

    def restore(self, state: dict[str, Any] | None) -> None:
        return None

    async def aclose(self) -> None:
        await self._client.close()

    async def complete(self, request: Request, on_delta: DeltaCallback | None = None) -> Turn:
        raise NotImplementedError  # each provider's adapter implements the call itself

    def worst_case_cost(self, request: Request) -> Decimal:
        output = request.max_tokens or self.max_output_tokens
        return self.price.worst_case(estimate_tokens(request), output)


def protocol_violation(provider: str, what: str) -> NoReturn:
    """Fail the call: the provider broke its own protocol (not retried: it is not a transport failure)."""
    raise ModelCallError("invalid_response", f"{provider}: protocol violation: {what}")


async def next_stream_item(stream: Any, provider: str) -> Any | None:
    """The next item of an SDK stream, or None at its end; an item the SDK cannot parse is an
    invalid response (not retried), unlike a dropped connection."""
    try:
        return await stream.__anext__()
    except StopAsyncIteration:
        return None
    except _MALFORMED as exc:
        protocol_violation(provider, f"unreadable stream event ({type(exc).__name__}: {exc})")
