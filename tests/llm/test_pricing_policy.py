"""One price per model, resolved once, and one policy for models without a price (llm/pricing.py)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from genai_prices import Usage as PriceUsage
from genai_prices import calc_price
from genai_prices.data_snapshot import get_snapshot

from helpers import write_script
from keen.config import get_settings, reset_settings_cache
from keen.errors import ConfigError
from keen.llm import pricing
from keen.llm.base import Message, Request, TextPart, Usage
from keen.llm.factory import build_model
from keen.llm.openai import OpenAIModel
from keen.llm.scripted import ScriptedModel

USAGES = [
    Usage(input_tokens=1_200, output_tokens=800, cache_read_tokens=50_000, cache_write_tokens=4_000),
    Usage(input_tokens=150_000, output_tokens=10, cache_read_tokens=60_000, web_search_requests=3),
    Usage(input_tokens=0, output_tokens=0),
]
REQUEST = Request(system="s", messages=[Message(role="user", parts=[TextPart(text="hi")])])


@pytest.fixture
def fresh_warnings() -> Iterator[None]:
    pricing._warned.clear()  # the warning is once per process; each test starts afresh
    yield
    pricing._warned.clear()


def _genai_total(model: str, provider: str, usage: Usage) -> Decimal:
    counts: dict[str, Any] = {
        "input_tokens": usage.total_input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_read_tokens": usage.cache_read_tokens,
        "cache_write_tokens": usage.cache_write_tokens,
    }
    if usage.web_search_requests:
        counts["web_searches"] = usage.web_search_requests
    return Decimal(calc_price(PriceUsage(**counts), model_ref=model, provider_id=provider).total_price)


def _table_models() -> list[tuple[str, str]]:
    return [
        (provider.id, model.id)
        for provider in get_snapshot().providers
        if provider.id in ("anthropic", "openai")
        for model in provider.models
        if not model.id.startswith("ft:")  # fine-tunes are found by their own names only
    ]


def test_prices_equal_genai_prices_for_every_claude_and_openai_model():
    checked = 0
    for provider, model in _table_models():
        for usage in USAGES:  # the second crosses the 200k long-context tier of the Claude models
            assert pricing.cost_of(model, provider, usage) == _genai_total(model, provider, usage), model
            checked += 1
    assert checked > 300


def test_a_long_context_call_pays_the_tier_rate_on_every_token():
    price = pricing.resolve("claude-sonnet-4-5", "anthropic")
    assert price is not None
    below = Usage(input_tokens=200_000, output_tokens=1_000)
    above = Usage(input_tokens=200_001, output_tokens=1_000)

    assert price.cost(below) == (200_000 * 3 + 1_000 * 15) / Decimal(1_000_000)
    assert price.cost(above) == (200_001 * 6 + Decimal("1000") * Decimal("22.5")) / Decimal(1_000_000)


def test_local_mode_runs_an_unpriced_model_at_zero_and_warns_once(fresh_warnings, caplog):
    with caplog.at_level(logging.WARNING, logger="keen.pricing"):
        first = pricing.require_price("llama3.2", "openai", "local")
        again = pricing.require_price("llama3.2", "openai", "local")

    assert first is again is pricing.UNPRICED and not first.known
    assert first.cost(USAGES[0]) == 0 and first.worst_case(100_000, 32_000) == 0
    [record] = caplog.records
    assert "no price is known for model 'llama3.2'" in record.getMessage()
    assert "KEEN_PRICES_FILE" in record.getMessage()


@pytest.mark.parametrize("mode", ["server", "distributed"])
def test_server_modes_refuse_an_unpriced_model(fresh_warnings, mode):
    with pytest.raises(ConfigError) as refused:
        pricing.require_price("llama3.2", "openai", mode)

    assert "llama3.2" in refused.value.message and "KEEN_PRICES_FILE" in refused.value.message
    assert f"{mode} mode" in refused.value.message
    assert pricing.require_price("claude-sonnet-4-5", "anthropic", mode).known


def test_a_prices_file_lets_server_mode_run_the_model(tmp_path, monkeypatch):
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"llama3.2": {"input_mtok": 0.1, "output_mtok": 0.2}}))
    monkeypatch.setenv("KEEN_PRICES_FILE", str(path))
    reset_settings_cache()

    price = pricing.require_price("llama3.2", "openai", "server")

    assert price.cost(Usage(input_tokens=1_000_000, output_tokens=1_000_000)) == Decimal("0.3")


def test_an_unknown_mode_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown mode 'cloud'"):
        pricing.require_price("claude-sonnet-4-5", "anthropic", "cloud")


@pytest.mark.parametrize("content", ['{"m": {"input_mtok": "cheap"}}', '{"m": {"input_mtok": -1}}'])
def test_prices_that_are_not_amounts_are_a_config_error(tmp_path, monkeypatch, content):
    path = tmp_path / "prices.json"
    path.write_text(content)
    monkeypatch.setenv("KEEN_PRICES_FILE", str(path))
    reset_settings_cache()

    with pytest.raises(ConfigError, match="KEEN_PRICES_FILE"):
        pricing.resolve("m", None)


def test_building_an_unpriced_model_for_a_server_is_refused_before_any_call(monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    reset_settings_cache()

    with pytest.raises(ConfigError, match="server mode"):
        build_model("openai:llama3.2", get_settings(), mode="server")


async def test_a_model_keeps_the_price_it_was_built_with(tmp_path, monkeypatch):
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"llama3.2": {"input_mtok": 1, "output_mtok": 2}}))
    monkeypatch.setenv("KEEN_PRICES_FILE", str(path))
    reset_settings_cache()
    model = OpenAIModel("llama3.2", api_key=None, base_url="http://127.0.0.1:9/v1")
    monkeypatch.delenv("KEEN_PRICES_FILE")
    reset_settings_cache()
    try:
        # The worst case: the whole request uncached, the whole output allowance (16,384 tokens).
        assert model.worst_case_cost(REQUEST) > Decimal(16_384 * 2) / 1_000_000
        assert model.price.known and pricing.resolve("llama3.2", "openai") is None
    finally:
        await model.aclose()


async def test_a_script_priced_as_an_unknown_model_runs_unpriced(tmp_path: Path, fresh_warnings):
    script = write_script(tmp_path / "s.json", [{"text": "hello"}], model="llama3.2")
    model = ScriptedModel(script)

    turn = await model.complete(REQUEST)

    assert turn.priced is False and turn.cost_usd == 0 and model.worst_case_cost(REQUEST) == 0


def test_a_script_model_is_refused_in_server_mode_when_unpriced(tmp_path: Path, fresh_warnings):
    script = write_script(tmp_path / "s.json", [{"text": "hello"}], model="llama3.2")

    with pytest.raises(ConfigError, match="server mode"):
        ScriptedModel(script, mode="server")
