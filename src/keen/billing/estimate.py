"""What a vision may cost before it runs: a range, from the model's prices and the iteration
limit. It is an estimate, not a quote: what a run really costs depends on what the agent does,
and each model call is held at its own worst case when it is made.

The range is built from two runs of the same shape: every call sends the base context (system
prompt and tools), the vision and the history so far (growing by `HISTORY_PER_CALL` tokens a
call, kept under the context the agent condenses at), and writes some output.
- low: the run finishes early (`LOW_CALLS` calls, or fewer when the limit is lower), most of
  each call's input read from the provider's cache, short replies;
- high: every iteration is used, nothing is cached, long replies.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from keen.billing.money import charge_credits, usd
from keen.config import DEFAULT_MODEL
from keen.llm.base import Usage
from keen.llm.factory import parse_model_spec
from keen.llm.pricing import Price, require_price

BASE_CONTEXT_TOKENS = 6_000
HISTORY_PER_CALL = 1_500
CONTEXT_CAP_TOKENS = 150_000
CHARS_PER_TOKEN = 4
LOW_CALLS = 8
LOW_CACHED_FRACTION = Decimal("0.8")
LOW_OUTPUT_TOKENS = 500
HIGH_OUTPUT_TOKENS = 2_000


@dataclass(frozen=True)
class Estimate:
    model: str
    max_iterations: int
    low: Decimal  # credits
    high: Decimal
    low_usd: Decimal
    high_usd: Decimal
    markup: Decimal
    basis: str


def estimate(vision: str, model: str, max_iterations: int, markup: Decimal) -> Estimate:
    """The credits range of a run of `vision` on `model` with at most `max_iterations` calls."""
    price = _price(model)
    vision_tokens = len(vision) // CHARS_PER_TOKEN + 1
    low_usd = _run_cost(price, vision_tokens, min(LOW_CALLS, max_iterations), cached=True)
    high_usd = _run_cost(price, vision_tokens, max_iterations, cached=False)
    return Estimate(
        model=model,
        max_iterations=max_iterations,
        low=charge_credits(low_usd, markup),
        high=charge_credits(high_usd, markup),
        low_usd=usd(low_usd),
        high_usd=usd(high_usd),
        markup=markup,
        basis=(
            f"an estimate: {min(LOW_CALLS, max_iterations)} calls mostly cached with short replies "
            f"to {max_iterations} uncached calls with long replies, each sending the vision and the "
            "history so far; every call is held at its own worst case when it is made"
        ),
    )


def _price(model: str) -> Price:
    provider, name = parse_model_spec(model)
    if provider == "scripted":  # a script is priced as the default model (SPEC 12)
        provider, name = parse_model_spec(DEFAULT_MODEL)
    return require_price(name, provider, mode="server")


def _run_cost(price: Price, vision_tokens: int, calls: int, *, cached: bool) -> Decimal:
    total = Decimal(0)
    for call in range(calls):
        tokens = min(BASE_CONTEXT_TOKENS + vision_tokens + HISTORY_PER_CALL * call, CONTEXT_CAP_TOKENS)
        if cached:
            read = int(tokens * LOW_CACHED_FRACTION)
            usage = Usage(input_tokens=tokens - read, output_tokens=LOW_OUTPUT_TOKENS, cache_read_tokens=read)
        else:
            usage = Usage(input_tokens=tokens, output_tokens=HIGH_OUTPUT_TOKENS)
        total += price.cost(usage)
    return total
