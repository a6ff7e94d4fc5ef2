"""The payment-provider interface, and the built-in `test` provider.

A provider takes money for credits. Every request carries keen's idempotency key for that
payment: asking again with the same key gives the same answer and the same payment id (never a
second payment), which is what makes a retried purchase or auto-recharge safe. The ledger
credits a payment once per provider payment id (`payments.provider_ref` is unique).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol

from keen.config import Settings
from keen.errors import ConfigError


@dataclass(frozen=True)
class PaymentResult:
    """The provider's answer: `ok` with its payment id, or not, with the reason."""

    ok: bool
    provider_ref: str | None = None
    error: str | None = None


class PaymentProvider(Protocol):
    name: str

    async def charge(
        self, user_id: str, amount: Decimal, *, idempotency_key: str, description: str
    ) -> PaymentResult:
        """Take `amount` USD for as many credits; the same `idempotency_key` gives the same result."""
        ...


@dataclass
class TestPaymentProvider:
    """Deterministic: the payment id is a hash of the idempotency key, and a key answered once is
    answered the same way again. `fail` makes every new payment fail (a declined card);
    `fail_keys` only those payments. `calls` counts the requests it was sent."""

    __test__ = False  # not a pytest class
    name: str = "test"
    fail: bool = False
    fail_keys: set[str] = field(default_factory=set)
    calls: int = 0
    _answers: dict[str, PaymentResult] = field(default_factory=dict)

    async def charge(
        self, user_id: str, amount: Decimal, *, idempotency_key: str, description: str
    ) -> PaymentResult:
        self.calls += 1
        known = self._answers.get(idempotency_key)
        if known is not None:
            return known
        if self.fail or idempotency_key in self.fail_keys:
            result = PaymentResult(ok=False, error="the test provider declined the payment")
        else:
            digest = hashlib.sha256(f"{user_id}:{idempotency_key}".encode()).hexdigest()[:24]
            result = PaymentResult(ok=True, provider_ref=f"test_{digest}")
        self._answers[idempotency_key] = result
        return result


def provider_for(settings: Settings) -> PaymentProvider:
    """The provider `KEEN_PAYMENT_PROVIDER` names."""
    if settings.keen_payment_provider == "test":
        return TestPaymentProvider()
    raise ConfigError(f"unknown payment provider {settings.keen_payment_provider!r}")
