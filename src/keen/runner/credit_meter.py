"""The credit meter of server modes: the agent's `Meter` backed by the credit ledger.

Before each model call the USD budget is checked as in local mode, then a hold of the call's
worst case × markup is placed on the owner's account (refused: the session ends
`insufficient_credits`, before the call); after the call its actual cost × markup is charged
and the rest of the hold released; a call that fails or is cancelled releases its hold. Each
money movement is its own unit of work, followed by the event that tells it
(`credits.reserved`, `credits.charged`, `credits.released`). Admins' accounts are unlimited: the
ledger charges them nothing and writes an `admin_bypass` entry of what the call would have cost.

A call's hold is keyed by its call id (session id and iteration: the same after a resume), so a
run resumed after a crash never pays for one call twice. The resumed call looks at the holds of
its key: one already charged (the crash came between the charge and the call's event) is not
charged again; an open one is used; one released or expired meanwhile (a restarting server
releases what a crashed run held) is followed by a new hold under the next key (`<call>#2`).

The whole tree shares one `TreeAccount`, which also keeps what each agent was charged, so an
agent's `session.finished` carries the credits of its own calls and its children's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from keen.agent.budget import Budget, Hold, Meter
from keen.aio import uncancellable
from keen.billing.ledger import Ledger
from keen.billing.money import ZERO
from keen.billing.payments import PaymentProvider
from keen.billing.records import Charge, LedgerConfig
from keen.billing.records import Hold as LedgerHold
from keen.events import types as ev
from keen.events.sink import EventSink, TransactionalWrite
from keen.events.types import SessionRef
from keen.store.db import Database, set_acting_user
from keen.store.models import CreditHoldRow, CreditTransactionRow, SessionRow

T = TypeVar("T")
HOLDS = CreditHoldRow.__table__.c
ENTRIES = CreditTransactionRow.__table__.c
LEDGER_ACTOR = "system"  # who the ledger's entries of agent calls name


@dataclass
class CreditHold(Hold):
    """A model call's hold: the budget's part (`amount`, USD) and the ledger's (`key`)."""

    key: str = ""
    credits: Decimal = ZERO
    charged_before: bool = False  # charged before a crash: the resumed call pays nothing more


class TreeAccount:
    """The account an agent tree is metered on: its owner's, through the ledger."""

    def __init__(
        self,
        db: Database,
        config: LedgerConfig,
        user_id: str,
        sink: EventSink,
        *,
        payments: PaymentProvider | None = None,
    ) -> None:
        self.db = db
        self.config = config
        self.user_id = user_id
        self.sink = sink
        self.payments = payments
        self.charged: dict[str, Decimal] = {}  # credits charged per agent session
        self.parents: dict[str, str | None] = {}

    async def load(self, root_id: str) -> None:
        """What a resumed tree was charged so far, and its shape (from the store and the ledger)."""

        async def read(session: AsyncSession) -> None:
            rows = await session.execute(
                select(SessionRow.id, SessionRow.parent_id).where(SessionRow.root_id == root_id)
            )
            self.parents.update({sid: parent for sid, parent in rows.all()})
            sums = await session.execute(
                select(ENTRIES.session_id, ENTRIES.amount).where(
                    ENTRIES.session_id.in_(list(self.parents)), ENTRIES.type == "usage"
                )
            )
            for sid, amount in sums.all():
                self.charged[sid] = self.charged.get(sid, ZERO) - amount

        await self._unit(read)

    def credits_of(self, session_id: str) -> Decimal:
        """Charged for `session_id` and every agent below it."""
        children: dict[str | None, list[str]] = {}
        for sid, parent in self.parents.items():
            children.setdefault(parent, []).append(sid)
        total, todo = ZERO, [session_id]
        while todo:
            sid = todo.pop()
            total += self.charged.get(sid, ZERO)
            todo.extend(children.get(sid, ()))
        return total

    # -- one call's hold, charge and release --------------------------------------------------

    async def hold(self, worst_case_usd: Decimal, ref: SessionRef, call_id: str) -> CreditHold:
        self.parents.setdefault(ref.session_id, ref.parent_session_id)
        task = asyncio.ensure_future(self._unit(lambda s: self._hold(s, worst_case_usd, ref, call_id)))
        try:
            held, new = await uncancellable(task)
        except asyncio.CancelledError:
            if task.done() and not task.cancelled() and task.exception() is None:
                await uncancellable(
                    self._unit(lambda s: self._ledger(s).release(self.user_id, task.result()[0].key))
                )
            raise
        hold = CreditHold(
            worst_case_usd,
            ref,
            call_id,
            key=held.key,
            credits=held.amount,
            charged_before=held.status == "captured",
        )
        if new:
            await self.sink.emit(
                ref,
                ev.CREDITS_RESERVED,
                {
                    "call_id": call_id,
                    "hold": held.key,
                    "amount": held.amount,
                    "worst_case_usd": held.provider_cost,
                    "markup": self.config.markup,
                    "admin_bypass": held.bypass,
                    "expires_at": held.expires_at,
                },
            )
        return hold

    async def _hold(
        self, session: AsyncSession, worst_case_usd: Decimal, ref: SessionRef, call_id: str
    ) -> tuple[LedgerHold, bool]:
        """The call's hold: one it had before a crash when still usable, else a new one."""
        rows = (
            await session.execute(
                select(HOLDS.key, HOLDS.status).where(
                    HOLDS.user_id == self.user_id,
                    or_(HOLDS.key == call_id, HOLDS.key.startswith(f"{call_id}#", autoescape=True)),
                )
            )
        ).all()
        ledger = self._ledger(session)
        statuses = {key: status for key, status in rows if key == call_id or key.startswith(f"{call_id}#")}
        for wanted in ("captured", "open"):
            for key, status in statuses.items():
                if status == wanted:
                    return await ledger.hold(self.user_id, worst_case_usd, key=key), False
        key = call_id if not statuses else f"{call_id}#{len(statuses) + 1}"
        held = await ledger.hold(self.user_id, worst_case_usd, key=key, session_id=ref.session_id, model=None)
        return held, True

    async def charge(self, hold: CreditHold, actual_usd: Decimal) -> None:
        charge = await uncancellable(
            self._unit(lambda s: self._ledger(s).charge(self.user_id, hold.key, actual_usd))
        )
        assert hold.ref is not None
        if hold.charged_before:  # counted already when the resumed tree was loaded
            return
        amount = -charge.entry.amount
        session_id = hold.ref.session_id
        self.charged[session_id] = self.charged.get(session_id, ZERO) + amount
        await self.sink.emit(hold.ref, ev.CREDITS_CHARGED, _charged(hold, charge, amount))
        if charge.recharge is not None and self.payments is not None:
            await self._complete_recharge(charge.recharge)

    async def release(self, hold: CreditHold, reason: str) -> None:
        if hold.charged_before:
            return
        released = await uncancellable(self._unit(lambda s: self._ledger(s).release(self.user_id, hold.key)))
        assert hold.ref is not None
        await self.sink.emit(
            hold.ref,
            ev.CREDITS_RELEASED,
            {"call_id": hold.call_id, "hold": hold.key, "amount": released.amount, "reason": reason},
        )

    async def _complete_recharge(self, payment_id: str) -> None:
        from keen.billing.recharge import complete_recharge

        assert self.payments is not None
        payments = self.payments
        await uncancellable(
            self._unit(lambda s: complete_recharge(self._ledger(s), payment_id, payments), admin=True)
        )

    def _ledger(self, session: AsyncSession) -> Ledger:
        return Ledger(session, self.config, actor=LEDGER_ACTOR)

    async def _unit(self, work: Callable[[AsyncSession], Awaitable[T]], *, admin: bool = False) -> T:
        async with self.db.transaction() as session:
            await set_acting_user(session, None if admin else self.user_id, admin)
            return await work(session)


def _charged(hold: CreditHold, charge: Charge, amount: Decimal) -> dict[str, Any]:
    entry = charge.entry
    data: dict[str, Any] = {
        "call_id": hold.call_id,
        "hold": hold.key,
        "amount": amount,
        "released": hold.credits - amount if not charge.hold.bypass else ZERO,
        "provider_cost_usd": entry.provider_cost,
        "markup": entry.markup,
        "transaction_id": entry.id,
        "balance_after": entry.balance_after,
        "admin_bypass": charge.hold.bypass,
    }
    if entry.unbilled:
        data["unbilled"] = entry.unbilled
    return data


class CreditMeter:
    """The `Meter` of one agent: its USD budget within its parent's, and the tree's account."""

    def __init__(self, budget: Budget, account: TreeAccount) -> None:
        self._budget = budget
        self.account = account

    @property
    def budget(self) -> Budget:
        return self._budget

    def child(self, cap: Decimal | None = None) -> CreditMeter:
        return CreditMeter(self._budget.child(cap), self.account)

    async def reserve(self, amount: Decimal, *, ref: SessionRef, call_id: str) -> Hold:
        self._budget.hold(amount)  # the USD budget first: `budget_exhausted` moves no credits
        try:
            return await self.account.hold(amount, ref, call_id)
        except BaseException:
            self._budget.release(amount)
            raise

    async def charge(self, hold: Hold, actual: Decimal) -> Sequence[TransactionalWrite]:
        assert isinstance(hold, CreditHold)
        if not hold.settled:
            hold.settled = True
            self._budget.settle(hold.amount, actual)
            await self.account.charge(hold, actual)
        return ()

    async def release(self, hold: Hold) -> None:
        assert isinstance(hold, CreditHold)
        if not hold.settled:
            hold.settled = True
            self._budget.release(hold.amount)
            await self.account.release(hold, "the call did not complete")

    def credits_of(self, session_id: str) -> Decimal | None:
        return self.account.credits_of(session_id)


def credit_meter_factory(account: TreeAccount) -> Callable[[Decimal], Meter]:
    """The `meter_for` of a metered run: a root meter with the run's USD budget on `account`."""
    return lambda budget: CreditMeter(Budget(limit=budget), account)


async def release_open_holds(db: Database, config: LedgerConfig, session_ids: Sequence[str]) -> int:
    """Release every open hold of these agent sessions (a run that ended, or one a crash left);
    returns how many were released."""
    if not session_ids:
        return 0
    async with db.transaction() as session:
        await set_acting_user(session, None, True)
        rows = (
            await session.execute(
                select(HOLDS.user_id, HOLDS.key).where(
                    HOLDS.session_id.in_(list(session_ids)), HOLDS.status == "open"
                )
            )
        ).all()
        ledger = Ledger(session, config, actor=LEDGER_ACTOR)
        for user_id, key in rows:
            await ledger.release(user_id, key)
    return len(rows)
