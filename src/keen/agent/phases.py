"""The phase lifecycle (SPEC 3.2)."""

from __future__ import annotations

from enum import StrEnum


class Phase(StrEnum):
    EXPLORE = "EXPLORE"
    PLAN = "PLAN"
    FOUND = "FOUND"
    SUMMON = "SUMMON"
    COMPLETE = "COMPLETE"


PHASE_PURPOSE = {
    Phase.EXPLORE: "understand the code and the vision",
    Phase.PLAN: "design, break the work down, decide what to hand to specialists",
    Phase.FOUND: "build the foundation: structure, shared code, configuration",
    Phase.SUMMON: "implement, summoning specialists where useful",
    Phase.COMPLETE: "finish, test, validate and report",
}


def parse_phase(value: str) -> Phase:
    """A phase from user or model input, case-insensitive; ValueError names the valid ones."""
    try:
        return Phase(value.strip().upper())
    except ValueError:
        raise ValueError(f"unknown phase {value!r}; phases are {', '.join(p.value for p in Phase)}") from None
