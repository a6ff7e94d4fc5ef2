"""Credit amounts: exact decimals with 6 places, never a float; the one place markup is applied.

1 credit is 1 USD of purchase; a model call costs its provider cost (USD) × the markup. A hold
is rounded up to the micro-credit (it must cover the call), a charge to the nearest (half up),
so a charge never exceeds its hold when the actual cost is within the worst case.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal, InvalidOperation

from keen.errors import InputError

QUANTUM = Decimal("0.000001")
ZERO = Decimal("0.000000")
# The most one request may purchase, grant or set as a limit (a typo guard, not a business rule).
MAX_AMOUNT = Decimal("1000000")


def exact(value: Decimal) -> Decimal:
    """`value` with exactly 6 places (it must already be representable so)."""
    return value.quantize(QUANTUM)


def parse_credits(value: object, what: str, *, allow_negative: bool = False) -> Decimal:
    """An amount of credits from outside: a decimal string, an int or a Decimal, finite, non-zero,
    at most 6 decimal places and at most `MAX_AMOUNT`; positive unless `allow_negative`."""
    if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
        raise InputError(f"{what} must be a decimal number of credits given as a string, not {value!r}")
    try:
        amount = Decimal(value.strip() if isinstance(value, str) else value)
    except InvalidOperation:
        raise InputError(f"{what} {value!r} is not a number of credits") from None
    if not amount.is_finite():
        raise InputError(f"{what} must be a finite number of credits")
    if amount != amount.quantize(QUANTUM, rounding=ROUND_HALF_UP):
        raise InputError(f"{what} has more than 6 decimal places: {value}")
    if amount == 0 or (amount < 0 and not allow_negative):
        raise InputError(f"{what} must be {'non-zero' if allow_negative else 'positive'}, not {value}")
    if abs(amount) > MAX_AMOUNT:
        raise InputError(f"{what} must be at most {MAX_AMOUNT} credits, not {value}")
    return exact(amount)


def hold_credits(provider_cost: Decimal, markup: Decimal) -> Decimal:
    """Credits reserved for a call whose worst-case provider cost is `provider_cost` USD."""
    return (_checked(provider_cost) * markup).quantize(QUANTUM, rounding=ROUND_CEILING)


def charge_credits(provider_cost: Decimal, markup: Decimal) -> Decimal:
    """Credits a call that cost `provider_cost` USD is charged."""
    return (_checked(provider_cost) * markup).quantize(QUANTUM, rounding=ROUND_HALF_UP)


def usd(provider_cost: Decimal) -> Decimal:
    """A provider cost as stored beside a charge: USD rounded up to the micro-dollar."""
    return _checked(provider_cost).quantize(QUANTUM, rounding=ROUND_CEILING)


def _checked(provider_cost: Decimal) -> Decimal:
    if not isinstance(provider_cost, Decimal) or not provider_cost.is_finite() or provider_cost < 0:
        raise InputError(f"a provider cost must be a finite Decimal of USD, 0 or more, not {provider_cost!r}")
    return provider_cost
