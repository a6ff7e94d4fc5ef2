"""Credits: the ledger (holds, charges, purchases, refunds, adjustments), spending limits,
auto-recharge, payments, idempotent money requests, estimates and the sweeper (SPEC 8.2)."""

from keen.billing.ledger import Ledger
from keen.billing.limits import SpendingLimitReached
from keen.billing.payments import PaymentProvider, PaymentResult, TestPaymentProvider, provider_for
from keen.billing.records import Account, Charge, Entry, Hold, LedgerConfig, Payment, Purchase, SettingsChange

__all__ = [
    "Account",
    "Charge",
    "Entry",
    "Hold",
    "Ledger",
    "LedgerConfig",
    "Payment",
    "PaymentProvider",
    "PaymentResult",
    "Purchase",
    "SettingsChange",
    "SpendingLimitReached",
    "TestPaymentProvider",
    "provider_for",
]
