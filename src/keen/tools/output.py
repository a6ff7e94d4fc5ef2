"""Bounding what a tool gives back: long output is cut where it is long and keeps its shape.

The cut output is what is stored in `tool.finished` and what the model is sent, so a
conversation rebuilt from the events is the one the model saw.
"""

from __future__ import annotations

import json
from typing import Any

from keen.text import cut_middle

MIN_KEPT = 200  # characters a cut string keeps at least
_ROUNDS = 6


def fit(value: Any, limit: int) -> Any:
    """`value` (JSON data) cut until its JSON text is at most `limit` characters.

    Long strings are cut in the middle first, each in proportion to its length (file contents
    shrink, paths stay whole); if that is not enough, long lists lose their middle items; as a
    last resort the JSON text itself is cut.
    """
    size = _size(value)
    if size <= limit:
        return value
    ratio = limit / size
    cut = value
    for _ in range(_ROUNDS):
        cut = _cut_strings(value, ratio)
        now = _size(cut)
        if now <= limit:
            return cut
        ratio *= 0.9 * limit / now
    keep = _longest_list(cut) // 2
    while keep >= 1:
        shorter = _cut_lists(cut, keep)
        if _size(shorter) <= limit:
            return shorter
        keep //= 2
    return cut_middle(json.dumps(value, ensure_ascii=False, default=str), limit)


def _size(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False, default=str))


def _cut_strings(value: Any, ratio: float) -> Any:
    if isinstance(value, str):
        return cut_middle(value, max(MIN_KEPT, int(len(value) * ratio)))
    if isinstance(value, dict):
        return {k: _cut_strings(v, ratio) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_cut_strings(v, ratio) for v in value]
    return value


def _cut_lists(value: Any, keep: int) -> Any:
    if isinstance(value, dict):
        return {k: _cut_lists(v, keep) for k, v in value.items()}
    if isinstance(value, list):
        items = [_cut_lists(v, keep) for v in value]
        if len(items) <= keep + 1:
            return items
        head = (keep + 1) // 2
        tail = keep - head
        marker = f"[... {len(items) - keep} items cut by keen ...]"
        return [*items[:head], marker, *(items[-tail:] if tail else [])]
    return value


def _longest_list(value: Any) -> int:
    if isinstance(value, dict):
        return max((_longest_list(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return max([len(value), *(_longest_list(v) for v in value)])
    return 0
