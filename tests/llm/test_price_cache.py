"""Resolved prices kept in $KEEN_HOME/cache/prices.json, so a process need not load the table."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from keen.llm import pricing

MODEL, PROVIDER = "claude-sonnet-4-5", "anthropic"


@pytest.fixture
def fresh_process() -> Iterator[None]:
    pricing._from_table.cache_clear()  # as a new process starts: nothing resolved in memory
    yield
    pricing._from_table.cache_clear()


def cache_file(home: Path) -> Path:
    return home / "cache" / "prices.json"


def no_table(model: str, provider: str | None) -> None:
    raise AssertionError("the table was loaded")


def test_a_second_process_takes_the_price_from_the_cache_without_the_table(
    keen_home, fresh_process, monkeypatch
):
    looked_up = pricing._from_table(MODEL, PROVIDER)
    assert looked_up is not None and cache_file(keen_home).is_file()

    pricing._from_table.cache_clear()
    monkeypatch.setattr(pricing, "_looked_up", no_table)
    assert pricing._from_table(MODEL, PROVIDER) == looked_up


def test_every_kept_price_equals_the_table_price(keen_home, fresh_process, monkeypatch):
    from genai_prices.data_snapshot import get_snapshot

    models = [
        (p.id, m.id) for p in get_snapshot().providers if p.id in ("anthropic", "openai") for m in p.models
    ]
    looked_up = {key: pricing._from_table(key[1], key[0]) for key in models}
    saved = json.loads(cache_file(keen_home).read_text())["prices"]
    assert len(saved) > 100

    pricing._from_table.cache_clear()
    monkeypatch.setattr(pricing, "_looked_up", no_table)
    kept = {key: pricing._from_table(key[1], key[0]) for key in models if f"{key[0]}/{key[1]}" in saved}
    assert kept == {key: looked_up[key] for key in kept}


def test_a_model_the_table_does_not_know_is_kept_as_unknown(keen_home, fresh_process, monkeypatch):
    assert pricing._from_table("no-such-model-anywhere", "openai") is None

    pricing._from_table.cache_clear()
    monkeypatch.setattr(pricing, "_looked_up", no_table)
    assert pricing._from_table("no-such-model-anywhere", "openai") is None


def test_another_installed_table_ignores_the_kept_prices(keen_home, fresh_process, monkeypatch):
    looked_up = pricing._from_table(MODEL, PROVIDER)
    saved = json.loads(cache_file(keen_home).read_text())
    saved["table"] = "an older table"
    saved["prices"][f"{PROVIDER}/{MODEL}"]["price"]["output"]["base"] = "999"
    cache_file(keen_home).write_text(json.dumps(saved))

    pricing._from_table.cache_clear()
    assert pricing._from_table(MODEL, PROVIDER) == looked_up


def test_a_kept_price_past_its_end_date_is_looked_up_again(keen_home, fresh_process):
    looked_up = pricing._from_table(MODEL, PROVIDER)
    saved = json.loads(cache_file(keen_home).read_text())
    entry = saved["prices"][f"{PROVIDER}/{MODEL}"]
    entry["price"]["output"]["base"] = "999"
    entry["until"] = (date.today() - timedelta(days=2)).isoformat()
    cache_file(keen_home).write_text(json.dumps(saved))

    pricing._from_table.cache_clear()
    assert pricing._from_table(MODEL, PROVIDER) == looked_up


def test_a_price_that_changes_with_the_time_of_day_is_not_kept(keen_home, fresh_process, monkeypatch):
    price = pricing.Price(*(pricing.Rate(Decimal(1)),) * 4)
    monkeypatch.setattr(pricing, "_looked_up", lambda model, provider: (price, False))
    assert pricing._from_table("off-peak-model", None) == price
    assert not cache_file(keen_home).exists()


def test_pricing_never_creates_the_keen_home(tmp_path, monkeypatch, fresh_process):
    from keen.config import reset_settings_cache

    home = tmp_path / "not-yet"
    monkeypatch.setenv("KEEN_HOME", str(home))
    reset_settings_cache()
    assert pricing._from_table(MODEL, PROVIDER) is not None
    assert not home.exists()


def test_an_unreadable_cache_file_is_only_a_miss(keen_home, fresh_process):
    cache_file(keen_home).parent.mkdir(parents=True)
    cache_file(keen_home).write_text("{not json")
    assert pricing._from_table(MODEL, PROVIDER) is not None
    assert json.loads(cache_file(keen_home).read_text())["prices"]
