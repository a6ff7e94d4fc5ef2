"""Rendering the prompt templates in this directory (jinja2, undefined names are errors)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

PROMPTS_DIR = Path(__file__).parent


@lru_cache(maxsize=1)
def _environment() -> Any:
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(PROMPTS_DIR)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=False,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=jinja2.select_autoescape(enabled_extensions=("html", "xml")),  # prompts are plain text
    )


def render(template: str, /, **context: Any) -> str:
    """Render `template` (e.g. "system.j2") with `context`; the result is stripped."""
    return _environment().get_template(template).render(**context).strip()


def template_names() -> list[str]:
    return sorted(p.name for p in PROMPTS_DIR.glob("*.j2"))
