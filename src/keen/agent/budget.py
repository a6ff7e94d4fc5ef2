"""Money limits of an agent tree and the `Meter` the loop reserves and charges through.

A `Budget` is a limit with an optional parent: a child's budget is its own cap and its parent's
remainder at the same time, so the whole tree never spends more than the root's `--budget`.
Before each model call the loop reserves the call's worst case (a hold); after it, the actual
cost is charged and the hold released. Server modes plug a credit-ledger meter in here;
`IterationPool` is the same idea for iterations.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Protocol

from keen.errors import InputError, KeenError
from keen.events.sink import TransactionalWrite
from keen.events.types import SessionRef

WARNING_FRACTION = Decimal("0.8")


def parse_usd(value: str | Decimal, option: str = "--budget") -> Decimal:
    """A positive, finite amount of USD given on the command line (or an `InputError` naming
    the option)."""
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise InputError(f"{option} {value!r} is not a number of USD") from None
    if not amount.is_finite() or amount <= 0:
        raise InputError(f"{option} must be a positive amount of USD, not {value}")
    return amount


class BudgetExhausted(KeenError):
    """The next call's worst case does not fit in what is left."""

    code = "budget_exhausted"


@dataclass
class Budget:
    limit: Decimal
    parent: Budget | None = None
    spent: Decimal = Decimal(0)
    held: Decimal = Decimal(0)
    _warned: bool = field(default=False, repr=False)

    def child(self, cap: Decimal | None = None) -> Budget:
        """A budget for a child: at most `cap` and never more than this budget has left."""
        remaining = self.available()
        limit = remaining if cap is None else min(cap, remaining)
        return Budget(limit=max(limit, Decimal(0)), parent=self)

    def available(self) -> Decimal:
        own = self.limit - self.spent - self.held
        return own if self.parent is None else min(own, self.parent.available())

    def root(self) -> Budget:
        return self if self.parent is None else self.parent.root()

    def _chain(self) -> list[Budget]:
        return [self] if self.parent is None else [self, *self.parent._chain()]

    def hold(self, amount: Decimal) -> None:
        if amount > self.available():
            raise BudgetExhausted(
                f"the next model call may cost up to ${amount:.4f} but only "
                f"${max(self.available(), Decimal(0)):.4f} of the budget is left"
            )
        for budget in self._chain():
            budget.held += amount

    def settle(self, held: Decimal, actual: Decimal) -> None:
        for budget in self._chain():
            budget.held -= held
            budget.spent += actual

    def release(self, held: Decimal) -> None:
        for budget in self._chain():
            budget.held -= held

    def crossed_warning(self) -> bool:
        """True once, when the tree's spending first reaches 80% of the root budget."""
        root = self.root()
        if root._warned or root.limit <= 0 or root.spent < root.limit * WARNING_FRACTION:
            return False
        root._warned = True
        return True


@dataclass
class IterationPool:
    """Iterations shared down the tree: a child's use counts against every ancestor."""

    limit: int
    parent: IterationPool | None = None
    used: int = 0

    def remaining(self) -> int:
        own = self.limit - self.used
        return own if self.parent is None else min(own, self.parent.remaining())

    def use(self) -> None:
        pool: IterationPool | None = self
        while pool is not None:
            pool.used += 1
            pool = pool.parent

    def child(self, cap: int) -> IterationPool:
        return IterationPool(limit=max(min(cap, self.remaining()), 0), parent=self)


@dataclass
class Hold:
    """The worst case of one model call, reserved before it. `call_id` is stable across a
    resume (session id + iteration), so a ledger can hold and charge idempotently."""

    amount: Decimal
    ref: SessionRef | None = None
    call_id: str = ""
    settled: bool = False


class Meter(Protocol):
    """Where the money of an agent tree is checked. A child's meter comes from its parent's
    (`child`), so a credit meter at the root meters every agent of the tree."""

    @property
    def budget(self) -> Budget:
        """The USD limit this agent runs under (its cap within what its ancestors have left)."""
        ...

    def child(self, cap: Decimal | None = None) -> Meter: ...

    async def reserve(self, amount: Decimal, *, ref: SessionRef, call_id: str) -> Hold: ...

    async def charge(self, hold: Hold, actual: Decimal) -> Sequence[TransactionalWrite]:
        """Settle the hold at `actual`; returns work to commit with the call's `model.responded`."""
        ...

    async def release(self, hold: Hold) -> None: ...

    def credits_of(self, session_id: str) -> Decimal | None:
        """The credits charged for the agent `session_id` and its children (None when this
        meter charges no credits)."""
        ...


class BudgetMeter:
    """Local mode's meter: cost is measured against the budget, no credits move."""

    def __init__(self, budget: Budget) -> None:
        self._budget = budget

    @property
    def budget(self) -> Budget:
        return self._budget

    def child(self, cap: Decimal | None = None) -> BudgetMeter:
        return BudgetMeter(self._budget.child(cap))

    async def reserve(self, amount: Decimal, *, ref: SessionRef, call_id: str) -> Hold:
        self._budget.hold(amount)
        return Hold(amount, ref, call_id)

    async def charge(self, hold: Hold, actual: Decimal) -> Sequence[TransactionalWrite]:
        if not hold.settled:
            hold.settled = True
            self._budget.settle(hold.amount, actual)
        return ()

    async def release(self, hold: Hold) -> None:
        if not hold.settled:
            hold.settled = True
            self._budget.release(hold.amount)

    def credits_of(self, session_id: str) -> Decimal | None:
        return None


def budget_meter(budget: Decimal) -> Meter:
    """Local mode's meter: the budget in USD, no credits."""
    return BudgetMeter(Budget(limit=budget))


# The root's meter for a run (or a conversation) with this USD budget; every agent of its tree
# gets its meter from this one.
MeterFactory = Callable[[Decimal], Meter]
