"""Prices by token class (and their override file) and the retry policy of model calls."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from keen.config import reset_settings_cache
from keen.errors import ConfigError, ModelCallError
from keen.llm import pricing
from keen.llm.base import DeltaCallback, Message, Model, Request, TextPart, Turn, Usage
from keen.llm.retry import (
    MAX_ATTEMPTS,
    MAX_DELAY_SECONDS,
    backoff_delay,
    complete_with_retries,
    retry_after_seconds,
)

MILLION = Decimal(1_000_000)
REQUEST = Request(system="s", messages=[Message(role="user", parts=[TextPart(text="hi")])])
USAGE = Usage(input_tokens=1_200, output_tokens=800, cache_read_tokens=50_000, cache_write_tokens=4_000)


@pytest.fixture
def clean_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    monkeypatch.delenv("KEEN_PRICES_FILE", raising=False)
    reset_settings_cache()
    yield monkeypatch
    monkeypatch.delenv("KEEN_PRICES_FILE", raising=False)
    reset_settings_cache()


def test_cost_is_summed_by_token_class(clean_settings):
    # Claude Sonnet 4 list prices per million tokens: 3 input, 15 output, 0.30 cache read, 3.75 cache write.
    expected = (1_200 * 3 + 800 * 15 + 50_000 * Decimal("0.30") + 4_000 * Decimal("3.75")) / MILLION

    assert pricing.cost_of("claude-sonnet-4-0", "anthropic", USAGE) == expected == Decimal("0.0456")


def test_web_searches_are_priced_per_thousand(clean_settings):
    with_searches = USAGE.model_copy(update={"web_search_requests": 3})

    extra = pricing.cost_of("claude-sonnet-4-0", "anthropic", with_searches) - pricing.cost_of(
        "claude-sonnet-4-0", "anthropic", USAGE
    )

    assert extra == Decimal("0.03")


def test_cached_openai_tokens_are_cheaper(clean_settings):
    usage = Usage(input_tokens=476, output_tokens=60, cache_read_tokens=1_024)
    expected = (476 * Decimal("2.5") + 1_024 * Decimal("1.25") + 60 * 10) / MILLION

    assert pricing.cost_of("gpt-4o", "openai", usage) == expected


def test_unknown_model_raises_and_its_worst_case_is_zero(clean_settings):
    with pytest.raises(pricing.PriceUnknown):
        pricing.cost_of("llama3.2", "openai", USAGE)
    assert pricing.worst_case_cost("llama3.2", "openai", 10_000, 1_000) == 0


def test_worst_case_prices_all_input_uncached_and_all_output(clean_settings):
    assert pricing.worst_case_cost("claude-sonnet-4-0", "anthropic", 100_000, 32_000) == Decimal("0.78")


def _prices_file(tmp_path: Path, prices: Any) -> Path:
    path = tmp_path / "prices.json"
    path.write_text(json.dumps(prices))
    return path


def test_prices_file_prices_unknown_models_and_overrides_known_ones(tmp_path, clean_settings):
    path = _prices_file(
        tmp_path,
        {
            "llama3.2": {"input_mtok": 0.1, "output_mtok": 0.2},
            "claude-sonnet-4-0": {
                "input_mtok": 1,
                "output_mtok": 2,
                "cache_read_mtok": 0.5,
                "cache_write_mtok": 1.5,
                "web_search_k": 5,
            },
        },
    )
    clean_settings.setenv("KEEN_PRICES_FILE", str(path))
    reset_settings_cache()

    llama = pricing.cost_of("llama3.2", "openai", USAGE)
    claude = pricing.cost_of(
        "claude-sonnet-4-0", "anthropic", USAGE.model_copy(update={"web_search_requests": 2})
    )

    # Cache classes default to the input price when the file gives none.
    assert llama == ((1_200 + 50_000 + 4_000) * Decimal("0.1") + 800 * Decimal("0.2")) / MILLION
    assert claude == (
        1_200 * 1 + 800 * 2 + 50_000 * Decimal("0.5") + 4_000 * Decimal("1.5")
    ) / MILLION + Decimal("0.01")
    assert llama > 0  # the file made the unknown model priced


def test_bad_prices_file_is_a_config_error(tmp_path, clean_settings):
    path = _prices_file(tmp_path, {"llama3.2": {"input_per_token": 1}})
    clean_settings.setenv("KEEN_PRICES_FILE", str(path))
    reset_settings_cache()

    with pytest.raises(ConfigError, match="KEEN_PRICES_FILE"):
        pricing.cost_of("llama3.2", "openai", USAGE)


def test_backoff_honours_retry_after_up_to_the_cap():
    assert backoff_delay(1, ModelCallError("rate_limit", "slow down", retry_after=12.5), 1.0) == 12.5
    assert backoff_delay(3, ModelCallError("rate_limit", "slow down", retry_after=0), 1.0) == 0
    assert backoff_delay(1, ModelCallError("rate_limit", "x", retry_after=900), 1.0) == MAX_DELAY_SECONDS


def test_backoff_without_retry_after_grows_exponentially_with_jitter():
    error = ModelCallError("server_error", "boom")
    for attempt in range(1, 6):
        delay = backoff_delay(attempt, error, 2.0)
        assert 2.0 * 2 ** (attempt - 1) * 0.5 <= delay <= 2.0 * 2 ** (attempt - 1)


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after": "7"}, 7.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, None),
        ({"retry-after": "nan"}, None),
        ({}, None),
    ],
)
def test_retry_after_header_parsing(headers, seconds):
    assert retry_after_seconds(headers) == seconds


class FailingModel:
    """A `Model` whose calls fail with the given errors in turn, then succeed."""

    name = "test:failing"
    provider = "test"
    context_window = 1_000
    max_output_tokens = 100
    scripted = True

    def __init__(self, errors: list[ModelCallError]) -> None:
        self.errors = errors
        self.calls = 0

    def for_agent(self, agent_key: str) -> Model:
        return self

    async def complete(self, request: Request, on_delta: DeltaCallback | None = None) -> Turn:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return Turn(
            parts=[TextPart(text="ok")],
            stop_reason="end_turn",
            usage=Usage(input_tokens=1, output_tokens=1),
            cost_usd=Decimal(0),
            model=self.name,
        )

    def worst_case_cost(self, request: Request) -> Decimal:
        return Decimal(0)

    def state(self) -> dict[str, Any] | None:
        return None

    def restore(self, state: dict[str, Any] | None) -> None:
        return None

    async def aclose(self) -> None:
        return None


async def _no_wait(seconds: float) -> None:
    return None


async def test_gives_up_after_six_attempts_with_the_last_error():
    errors = [ModelCallError("overloaded", f"overloaded #{n}") for n in range(1, 10)]
    model = FailingModel(errors)
    retried: list[int] = []

    with pytest.raises(ModelCallError, match="overloaded #6"):
        await complete_with_retries(
            model, REQUEST, on_retry=lambda n, e, d: retried.append(n), sleep=_no_wait
        )

    assert model.calls == MAX_ATTEMPTS == 6
    assert retried == [1, 2, 3, 4, 5]


async def test_succeeds_when_a_retry_does():
    model = FailingModel([ModelCallError("timeout", "t"), ModelCallError("connection", "c")])

    turn = await complete_with_retries(model, REQUEST, sleep=_no_wait)

    assert turn.text == "ok" and model.calls == 3


@pytest.mark.parametrize(
    "kind", ["bad_request", "auth", "context_length", "invalid_response", "script_exhausted"]
)
async def test_non_retryable_errors_are_raised_at_once(kind):
    model = FailingModel([ModelCallError(kind, "no")])

    with pytest.raises(ModelCallError) as caught:
        await complete_with_retries(model, REQUEST, sleep=_no_wait)

    assert caught.value.kind == kind and model.calls == 1
