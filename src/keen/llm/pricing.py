"""The one place prices come from, and the one policy for models without a price.

Prices come from `genai-prices`, overridable per model in a JSON file (`KEEN_PRICES_FILE`).
A model's price is resolved once, when its model is built (`require_price`), and each call is
then priced by arithmetic on it. Usage is priced by token class; keen's `Usage.input_tokens`
excludes cache tokens while genai-prices counts them inside `input_tokens`, so the conversion
happens here and nowhere else.

Models without a known price:
- local mode runs them; their calls are recorded with cost 0 and `priced: false` (on the turn
  and in `model.responded`), and keen warns once per model and process on the `keen` logger;
- server and distributed modes refuse them (`ConfigError`) before any work starts, since
  credits could not be charged: the operator prices them in `KEEN_PRICES_FILE`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

from keen.errors import ConfigError
from keen.llm.base import Usage

MODES = ("local", "server", "distributed")
_MTOK = Decimal(1_000_000)
_ZERO = Decimal(0)
_OVERRIDE_KEYS = {"input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok", "web_search_k"}
_warned: set[tuple[str, str | None]] = set()
log = logging.getLogger("keen.pricing")


class PriceUnknown(LookupError):
    """No price is known for this model (neither in genai-prices nor in the overrides)."""


@dataclass(frozen=True)
class Rate:
    """USD per million tokens; above a tier's start (total input tokens of the call) the whole
    call pays that tier's rate, as the providers' long-context prices work."""

    base: Decimal
    tiers: tuple[tuple[int, Decimal], ...] = ()  # (start, rate), ascending

    def at(self, total_input_tokens: int) -> Decimal:
        for start, rate in reversed(self.tiers):
            if total_input_tokens > start:
                return rate
        return self.base


_NO_RATE = Rate(_ZERO)


@dataclass(frozen=True)
class Price:
    """A model's prices by keen's token classes. `known` is False for the zero price that
    local mode gives a model without one."""

    input: Rate
    output: Rate
    cache_read: Rate
    cache_write: Rate
    web_search_k: Decimal = _ZERO  # USD per thousand searches
    known: bool = True

    def cost(self, usage: Usage) -> Decimal:
        """USD cost of one call's usage."""
        total = usage.total_input_tokens
        tokens = (
            usage.input_tokens * self.input.at(total)
            + usage.output_tokens * self.output.at(total)
            + usage.cache_read_tokens * self.cache_read.at(total)
            + usage.cache_write_tokens * self.cache_write.at(total)
        )
        return tokens / _MTOK + usage.web_search_requests * self.web_search_k / 1000

    def worst_case(self, input_tokens: int, output_tokens: int) -> Decimal:
        """Cost if every input token is uncached and the whole output allowance is used."""
        return self.cost(Usage(input_tokens=input_tokens, output_tokens=output_tokens))


UNPRICED = Price(_NO_RATE, _NO_RATE, _NO_RATE, _NO_RATE, known=False)


def require_price(model: str, provider: str | None, mode: str = "local") -> Price:
    """The price `model` is charged at under `mode`'s policy (see the module docstring)."""
    if mode not in MODES:
        raise ConfigError(f"unknown mode {mode!r}; use one of: {', '.join(MODES)}")
    price = resolve(model, provider)
    if price is not None:
        return price
    if mode != "local":
        raise ConfigError(
            f"no price is known for model {model!r}: {mode} mode charges credits for every call, so it "
            f"refuses unpriced models; give its prices in KEEN_PRICES_FILE"
        )
    if (model, provider) not in _warned:
        _warned.add((model, provider))
        log.warning(
            "keen: no price is known for model %r; its calls are recorded as unpriced at $0 "
            "(give its prices in KEEN_PRICES_FILE to measure its cost)",
            model,
        )
    return UNPRICED


def resolve(model: str, provider: str | None) -> Price | None:
    """The model's price from the overrides file, else from genai-prices; None when unknown."""
    from keen.config import get_settings

    path = get_settings().keen_prices_file
    override = _load_overrides(str(path)).get(model) if path else None
    return override if override is not None else _from_table(model, provider)


def cost_of(model: str, provider: str | None, usage: Usage) -> Decimal:
    """USD cost of one call's usage. Raises `PriceUnknown` when the model has no price."""
    price = resolve(model, provider)
    if price is None:
        raise PriceUnknown(f"no price known for model {model!r}")
    return price.cost(usage)


def worst_case_cost(model: str, provider: str | None, input_tokens: int, output_tokens: int) -> Decimal:
    """Cost if every input token is uncached and the whole output allowance is used (local mode)."""
    return require_price(model, provider).worst_case(input_tokens, output_tokens)


@lru_cache(maxsize=64)
def _from_table(model: str, provider: str | None) -> Price | None:
    from datetime import UTC, datetime

    from genai_prices.data_snapshot import get_snapshot

    try:
        _, info = get_snapshot().find_provider_model(model, None, provider, None)
    except LookupError:
        return None
    prices = info.get_prices(datetime.now(tz=UTC))
    input_rate = _rate(getattr(prices, "input_mtok", None)) or _NO_RATE
    return Price(
        input=input_rate,
        output=_rate(getattr(prices, "output_mtok", None)) or _NO_RATE,
        # genai-prices counts cache tokens without a price of their own as input tokens.
        cache_read=_rate(getattr(prices, "cache_read_mtok", None)) or input_rate,
        cache_write=_rate(getattr(prices, "cache_write_mtok", None)) or input_rate,
        web_search_k=getattr(prices, "web_searches_kcount", None) or _ZERO,
    )


def _rate(value: Any) -> Rate | None:
    if value is None:
        return None
    if isinstance(value, Decimal):
        return Rate(value)
    tiers = tuple(sorted((tier.start, tier.price) for tier in value.tiers))
    return Rate(value.base, tiers)


@lru_cache(maxsize=4)
def _load_overrides(path: str) -> dict[str, Price]:
    try:
        raw = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"KEEN_PRICES_FILE {path}: cannot read prices ({exc})") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"KEEN_PRICES_FILE {path}: expected an object of model name → prices")
    out: dict[str, Price] = {}
    for model, prices in raw.items():
        if not isinstance(prices, dict) or not set(prices) <= _OVERRIDE_KEYS:
            raise ConfigError(
                f"KEEN_PRICES_FILE {path}: prices of {model!r} must use only {sorted(_OVERRIDE_KEYS)}"
            )
        try:
            values = {k: Decimal(str(v)) for k, v in prices.items()}
        except ArithmeticError:
            raise ConfigError(f"KEEN_PRICES_FILE {path}: prices of {model!r} must be numbers") from None
        if any(not v.is_finite() or v < 0 for v in values.values()):
            raise ConfigError(f"KEEN_PRICES_FILE {path}: prices of {model!r} must be 0 or more")
        input_rate = Rate(values.get("input_mtok", _ZERO))
        out[model] = Price(
            input=input_rate,
            output=Rate(values.get("output_mtok", _ZERO)),
            cache_read=Rate(values["cache_read_mtok"]) if "cache_read_mtok" in values else input_rate,
            cache_write=Rate(values["cache_write_mtok"]) if "cache_write_mtok" in values else input_rate,
            web_search_k=values.get("web_search_k", _ZERO),
        )
    return out
