"""Input shapes the file tools share."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator


def _listed(value: Any) -> Any:
    """Accept `"a.py"` where a list of paths is expected: models often send one path bare."""
    return [value] if isinstance(value, str) else value


PathList = Annotated[list[str], BeforeValidator(_listed)]
