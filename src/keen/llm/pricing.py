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

Loading genai-prices' table builds every provider's every model (and imports its HTTP client):
~0.15 s of each process that builds a model. A model's resolved price is therefore kept in
`$KEEN_HOME/cache/prices.json`, tagged with the installed table it came from and the day it stops
being valid (a price with a later start date), so a process that finds it there never loads the
table. The table stays the one source: the file is only a copy of its answers.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import lru_cache
from importlib.util import find_spec
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
    from keen.config import get_settings

    cache = _TableCache(get_settings().keen_home / "cache" / "prices.json")
    found = cache.get(model, provider)
    if found is not None:
        return found[0]
    price, until = _looked_up(model, provider)
    cache.put(model, provider, price, until)
    return price


def _looked_up(model: str, provider: str | None) -> tuple[Price | None, date | bool | None]:
    """The model's price in the genai-prices table now, and until when it holds: a date, None
    (until the table changes) or False (not to be kept: it changes with the time of day)."""
    from genai_prices.data_snapshot import get_snapshot

    try:
        _, info = get_snapshot().find_provider_model(model, None, provider, None)
    except LookupError:
        return None, None
    now = datetime.now(tz=UTC)
    prices = info.get_prices(now)
    input_rate = _rate(getattr(prices, "input_mtok", None)) or _NO_RATE
    price = Price(
        input=input_rate,
        output=_rate(getattr(prices, "output_mtok", None)) or _NO_RATE,
        # genai-prices counts cache tokens without a price of their own as input tokens.
        cache_read=_rate(getattr(prices, "cache_read_mtok", None)) or input_rate,
        cache_write=_rate(getattr(prices, "cache_write_mtok", None)) or input_rate,
        web_search_k=getattr(prices, "web_searches_kcount", None) or _ZERO,
    )
    if not isinstance(info.prices, list):
        return price, None
    starts: list[date] = []
    for conditional in info.prices:
        constraint = conditional.constraint
        if constraint is None:
            continue
        start = getattr(constraint, "start_date", None)
        if not isinstance(start, date):
            return price, False
        starts.append(start)
    return price, min((d for d in starts if d > now.date()), default=None)


class _TableCache:
    """`prices.json`: the prices looked up in one installed genai-prices table. Written whole
    through a temporary file and a rename, so concurrent processes never read a torn file (a
    lost update only costs the other process its next lookup)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.table = _table_stamp()

    def get(self, model: str, provider: str | None) -> tuple[Price | None] | None:
        """`(price,)` when kept and still valid (the price may be None: not in the table)."""
        if self.table is None:
            return None
        entry = self._entries().get(_cache_key(model, provider))
        if entry is None or (entry["until"] is not None and _today() >= date.fromisoformat(entry["until"])):
            return None
        return (_price_from_json(entry["price"]),)

    def put(self, model: str, provider: str | None, price: Price | None, until: date | bool | None) -> None:
        if self.table is None or until is False or not self.path.parent.parent.is_dir():
            return  # never create $KEEN_HOME as a side effect of pricing
        entries = self._entries()
        entries[_cache_key(model, provider)] = {
            "price": None if price is None else _price_to_json(price),
            "until": until.isoformat() if isinstance(until, date) else None,
        }
        import tempfile

        try:
            self.path.parent.mkdir(mode=0o700, exist_ok=True)
            with tempfile.NamedTemporaryFile(
                "w", dir=self.path.parent, prefix=".prices-", suffix=".tmp", delete=False
            ) as handle:
                json.dump({"table": self.table, "prices": entries}, handle)
            os.replace(handle.name, self.path)
        except OSError:
            return  # a cache that cannot be written is only slower

    def _entries(self) -> dict[str, Any]:
        try:
            raw = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        if (
            not isinstance(raw, dict)
            or raw.get("table") != self.table
            or not isinstance(raw.get("prices"), dict)
        ):
            return {}
        return raw["prices"]


def _table_stamp() -> str | None:
    """Which genai-prices table is installed (its data file's path, size and time), found without
    importing it; None when the table in use is not the installed one (a custom snapshot)."""
    snapshots = sys.modules.get("genai_prices.data_snapshot")
    if snapshots is not None and getattr(snapshots, "_custom_snapshot", None) is not None:
        return None
    spec = find_spec("genai_prices")
    if spec is None or spec.origin is None:
        return None
    data = Path(spec.origin).with_name("data.py")
    try:
        stat = data.stat()
    except OSError:
        return None
    return f"{data}:{stat.st_size}:{stat.st_mtime_ns}"


def _today() -> date:
    return datetime.now(tz=UTC).date()  # genai-prices dates its prices in UTC


def _cache_key(model: str, provider: str | None) -> str:
    return f"{provider or ''}/{model}"


def _rate_to_json(rate: Rate) -> dict[str, Any]:
    return {"base": str(rate.base), "tiers": [[start, str(value)] for start, value in rate.tiers]}


def _rate_from_json(data: dict[str, Any]) -> Rate:
    return Rate(Decimal(data["base"]), tuple((int(start), Decimal(value)) for start, value in data["tiers"]))


_RATES = ("input", "output", "cache_read", "cache_write")


def _price_to_json(price: Price) -> dict[str, Any]:
    return {
        **{name: _rate_to_json(getattr(price, name)) for name in _RATES},
        "web_search_k": str(price.web_search_k),
    }


def _price_from_json(data: dict[str, Any] | None) -> Price | None:
    if data is None:
        return None
    input_rate, output, cache_read, cache_write = (_rate_from_json(data[name]) for name in _RATES)
    return Price(input_rate, output, cache_read, cache_write, web_search_k=Decimal(data["web_search_k"]))


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
