"""Totals of price lists, rounded to a coin."""

from decimal import Decimal

from keenfix_rounding import round_to


def total(prices: list[float], step: str = "0.01") -> Decimal:
    """The sum of `prices`, rounded to a multiple of `step`."""
    return round_to(sum(prices), step)


def average(prices: list[float], step: str = "0.01") -> Decimal:
    """The mean of `prices`, rounded to a multiple of `step`; a list must not be empty."""
    if not prices:
        raise ValueError("no prices")
    return round_to(sum(prices) / len(prices), step)
