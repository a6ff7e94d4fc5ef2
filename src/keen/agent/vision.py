"""Visions: length rules and the shorthand words that expand to full visions."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from keen.errors import InputError

MIN_VISION_CHARS = 10
MAX_VISION_CHARS = 30_000
_SHORTHANDS_FILE = Path(__file__).parent / "prompts" / "shorthands.yaml"


@lru_cache(maxsize=1)
def shorthands() -> dict[str, str]:
    import yaml

    data = yaml.safe_load(_SHORTHANDS_FILE.read_text())
    return {str(k): str(v) for k, v in data.items()}


def expand_vision(text: str) -> str:
    """A shorthand word becomes its full vision; anything else is returned stripped."""
    stripped = text.strip()
    return shorthands().get(stripped.lower(), stripped)


def check_vision(text: str) -> str:
    """The vision to run, or an `InputError` that says what is wrong with it."""
    vision = expand_vision(text)
    if len(vision) < MIN_VISION_CHARS:
        shown = f"{len(vision)} character" + ("" if len(vision) == 1 else "s")
        raise InputError(
            f"the vision is too short ({shown}); describe the work in at least {MIN_VISION_CHARS} "
            f"characters, or use a shorthand word: {', '.join(sorted(shorthands()))}"
        )
    if len(vision) > MAX_VISION_CHARS:
        raise InputError(
            f"the vision is too long ({len(vision):,} characters); the limit is {MAX_VISION_CHARS:,}"
        )
    return vision
