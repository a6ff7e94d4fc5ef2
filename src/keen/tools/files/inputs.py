"""Input shapes the file tools share."""

from __future__ import annotations

from typing import Any


def single_to_list(data: Any, key: str) -> Any:
    """Accept `"a.py"` where a list of paths is expected: models often send one path bare."""
    if isinstance(data, dict) and isinstance(data.get(key), str):
        return {**data, key: [data[key]]}
    return data
