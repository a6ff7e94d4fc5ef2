"""Event data is made storable and readable whatever a model put in it."""

from __future__ import annotations

import json
from decimal import Decimal

from keen.events.types import DEPTH_MARKER, MAX_DATA_DEPTH, json_safe
from keen.text import valid_text


def test_lone_surrogates_become_replacement_characters_in_values_and_keys() -> None:
    data = {"text": "a\ud800b", "k\udfff": ["\udc00", "\ud83d\ude00"], "emoji": "😀", "cost": Decimal("0.10")}

    safe = json_safe(data)

    assert safe == {"text": "a\ufffdb", "k\ufffd": ["\ufffd", "😀"], "emoji": "😀", "cost": "0.10"}
    json.dumps(safe, ensure_ascii=False).encode("utf-8")


def test_nesting_beyond_the_bound_is_replaced_by_a_marker() -> None:
    value: object = "bottom"
    for _ in range(5000):  # deeper than Python's own recursion limit
        value = {"a": value}

    safe = json_safe({"input": value})

    depth, node = 0, safe
    while isinstance(node, dict):
        node, depth = node.get("input", node.get("a")), depth + 1
    assert node == DEPTH_MARKER and depth == MAX_DATA_DEPTH
    json.dumps(safe)


def test_valid_text_returns_valid_strings_unchanged() -> None:
    for text in ("plain", "naïve ☃", ""):
        assert valid_text(text) is text
