"""Rounding to a step, half away from zero."""

from decimal import ROUND_HALF_UP, Decimal


def round_to(value: float, step: str) -> Decimal:
    """`value` rounded to a multiple of `step` (a decimal string such as "0.05")."""
    unit = Decimal(step)
    return (Decimal(str(value)) / unit).quantize(Decimal(1), rounding=ROUND_HALF_UP) * unit
