"""What one tool call may take in, checked before its input is validated.

A model's tool input is JSON of any shape: nested hundreds of levels deep it breaks every
serializer after it, huge it fills memory, and a lone surrogate ("\\ud800") in a string can be
stored but never written out as UTF-8 again. Such an input is refused with a clear error result;
the session goes on.
"""

from __future__ import annotations

from typing import Any

from keen.text import excerpt, has_surrogate

MAX_INPUT_DEPTH = 32  # no tool's schema nests more than a few levels
MAX_INPUT_BYTES = 8 * 1024 * 1024  # all strings of one call together, as UTF-8
_SCALAR_BYTES = 8


def input_problem(value: Any) -> str | None:
    """Why a tool input is refused, or None when it is within bounds."""
    total = 0
    stack: list[tuple[Any, int, str]] = [(value, 0, "")]
    while stack:
        item, depth, where = stack.pop()
        if depth > MAX_INPUT_DEPTH:
            return f"input is nested more than {MAX_INPUT_DEPTH} levels deep (at {excerpt(where, 0, 60)})"
        if isinstance(item, str):
            if has_surrogate(item):
                return f"{where or 'input'}: contains a lone surrogate, which is not valid Unicode text"
            total += len(item.encode("utf-8"))
        elif isinstance(item, dict):
            for key, child in item.items():
                name = str(key)
                if has_surrogate(name):
                    return f"{where or 'input'}: a key contains a lone surrogate, which is not valid Unicode text"
                total += len(name)
                stack.append((child, depth + 1, f"{where}.{name}" if where else name))
        elif isinstance(item, list):
            stack.extend(
                (child, depth + 1, f"{where}.{i}" if where else str(i)) for i, child in enumerate(item)
            )
        else:
            total += _SCALAR_BYTES
        if total > MAX_INPUT_BYTES:
            return f"input is larger than {MAX_INPUT_BYTES // (1024 * 1024)} MiB; split the work into several calls"
    return None
