"""Text every layer shares: shortening with a marker that says how much was cut, valid Unicode,
and telling binary from text."""

from __future__ import annotations

DEFAULT_LIMIT = 30_000
BINARY_SNIFF_BYTES = 8192


def cut_middle(text: str, limit: int = DEFAULT_LIMIT) -> str:
    """Keep the head and tail of `text` (errors are usually at the end), cut the middle."""
    if len(text) <= limit:
        return text
    head = limit * 2 // 5
    tail = limit - head
    cut = len(text) - head - tail
    return f"{text[:head]}\n[... {cut} characters cut by keen ...]\n{text[-tail:]}"


def clip(text: str, limit: int) -> str:
    """At most `limit` characters of `text`, its start kept and an ellipsis for the rest (one-line
    displays and titles)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def excerpt(text: str, at: int, limit: int) -> str:
    """At most `limit` characters of `text` around position `at` (a match in a minified line)."""
    if len(text) <= limit:
        return text
    start = max(0, min(at - limit // 4, len(text) - limit))
    end = start + limit
    head = f"[... {start} characters] " if start else ""
    tail = f" [... {len(text) - end} characters]" if end < len(text) else ""
    return head + text[start:end] + tail


def has_surrogate(text: str) -> bool:
    """Whether `text` holds a surrogate code point, which UTF-8 cannot encode.

    Surrogates arrive from JSON escapes such as "\\ud800"; a stored one makes every later
    reader that writes UTF-8 fail.
    """
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def valid_text(text: str) -> str:
    """`text` as valid Unicode: a lone surrogate becomes U+FFFD."""
    if not has_surrogate(text):
        return text
    # Through UTF-16, a proper pair becomes its character and a lone half U+FFFD.
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def looks_binary(head: bytes) -> bool:
    """Git's heuristic: a NUL byte near the start means binary."""
    return b"\x00" in head[:BINARY_SNIFF_BYTES]
