"""The one place prices come from: `genai-prices`, overridable per model in a JSON file.

Usage is priced by token class. keen's `Usage.input_tokens` excludes cache tokens while
genai-prices counts them inside `input_tokens`, so the conversion happens here and nowhere else.
"""

from __future__ import annotations

import json
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

from keen.errors import ConfigError
from keen.llm.base import Usage

_MTOK = Decimal(1_000_000)
_OVERRIDE_KEYS = {"input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok", "web_search_k"}


class PriceUnknown(LookupError):
    """No price is known for this model (neither in genai-prices nor in the overrides)."""


def cost_of(model: str, provider: str | None, usage: Usage) -> Decimal:
    """USD cost of one call's usage. Raises `PriceUnknown` when the model has no price."""
    override = _overrides().get(model)
    if override is not None:
        return _cost_from_override(override, usage)
    from genai_prices import Usage as PriceUsage
    from genai_prices import calc_price

    price_usage = PriceUsage(
        input_tokens=usage.total_input_tokens,
        output_tokens=usage.output_tokens,
        cache_read_tokens=usage.cache_read_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        **({"web_searches": usage.web_search_requests} if usage.web_search_requests else {}),
    )
    try:
        result = calc_price(price_usage, model_ref=model, provider_id=provider)
    except LookupError as exc:
        raise PriceUnknown(f"no price known for model {model!r}") from exc
    return Decimal(result.total_price)


def worst_case_cost(model: str, provider: str | None, input_tokens: int, output_tokens: int) -> Decimal:
    """Cost if every input token is uncached and the whole output allowance is used."""
    try:
        return cost_of(model, provider, Usage(input_tokens=input_tokens, output_tokens=output_tokens))
    except PriceUnknown:
        return Decimal(0)


def _cost_from_override(prices: dict[str, Decimal], usage: Usage) -> Decimal:
    zero = Decimal(0)
    input_price = prices.get("input_mtok", zero)
    return (
        Decimal(usage.input_tokens) * input_price
        + Decimal(usage.output_tokens) * prices.get("output_mtok", zero)
        + Decimal(usage.cache_read_tokens) * prices.get("cache_read_mtok", input_price)
        + Decimal(usage.cache_write_tokens) * prices.get("cache_write_mtok", input_price)
    ) / _MTOK + Decimal(usage.web_search_requests) * prices.get("web_search_k", zero) / 1000


def _overrides() -> dict[str, dict[str, Decimal]]:
    from keen.config import get_settings

    path = get_settings().keen_prices_file
    return _load_overrides(str(path)) if path else {}


@lru_cache(maxsize=4)
def _load_overrides(path: str) -> dict[str, dict[str, Decimal]]:
    try:
        raw = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"KEEN_PRICES_FILE {path}: cannot read prices ({exc})") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"KEEN_PRICES_FILE {path}: expected an object of model name → prices")
    out: dict[str, dict[str, Decimal]] = {}
    for model, prices in raw.items():
        if not isinstance(prices, dict) or not set(prices) <= _OVERRIDE_KEYS:
            raise ConfigError(
                f"KEEN_PRICES_FILE {path}: prices of {model!r} must use only {sorted(_OVERRIDE_KEYS)}"
            )
        out[model] = {k: Decimal(str(v)) for k, v in prices.items()}
    return out
