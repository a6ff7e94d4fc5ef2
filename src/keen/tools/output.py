"""Cutting long tool output in the middle, with a marker that says how much was cut."""

from __future__ import annotations

DEFAULT_LIMIT = 30_000


def cut_middle(text: str, limit: int = DEFAULT_LIMIT) -> str:
    """Keep the head and tail of `text` (errors are usually at the end), cut the middle."""
    if len(text) <= limit:
        return text
    head = limit * 2 // 5
    tail = limit - head
    cut = len(text) - head - tail
    return f"{text[:head]}\n[... {cut} characters cut by keen ...]\n{text[-tail:]}"
