"""The credit ledger: the one service every caller moves credits through.

Holds, charges, releases, purchases, refunds, adjustments and admin bypass records, on the
caller's database session (it never commits: the caller's transaction holds the change, its
ledger entries and their audit entries together).

Rules it keeps, on SQLite and PostgreSQL alike:
- The ledger is append-only; each entry stores the balance after it, and an account's balance
  is the sum of its entries, its `held` the sum of its open holds, `available` = balance − held
  is never negative (the database refuses a row where it would be).
- A hold is taken by one conditional UPDATE that checks what is available and both spending
  limits and reserves in the same statement: PostgreSQL's row lock and SQLite's write lock
  (taken at BEGIN by keen's units of work) make concurrent holds queue, never overdraw.
- Every call is idempotent on the hold's key (the caller's id for one model call): holding
  again returns the same hold, charging a captured hold returns its entry, releasing an ended
  hold does nothing.
- An actual cost above the hold is charged up to the hold, and the difference is recorded as
  `unbilled` on the usage entry: a call can never take credits nobody reserved. A hold that was
  released or expired before its charge arrived is charged up to what is available then.
- Unlimited accounts (admins) are never charged: their holds reserve nothing, and each charge
  writes one `admin_bypass` entry of 0 whose `unbilled` is what the call would have cost.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from keen.billing import audit, limits
from keen.billing.limits import credits
from keen.billing.money import ZERO, charge_credits, exact, hold_credits, parse_credits, usd
from keen.billing.payments import PaymentProvider
from keen.billing.records import (
    Account,
    Charge,
    Clock,
    Entry,
    Hold,
    LedgerConfig,
    Payment,
    Purchase,
    SettingsChange,
    utcnow,
)
from keen.errors import ConflictError, InputError, NotFoundError, PermissionDeniedError
from keen.store.db import acting_user
from keen.store.models import (
    CreditAccountRow,
    CreditHoldRow,
    CreditTransactionRow,
    PaymentRow,
    UserRow,
)

ACCOUNTS = CreditAccountRow.__table__
HOLDS = CreditHoldRow.__table__
ENTRIES = CreditTransactionRow.__table__
PAYMENTS = PaymentRow.__table__
A, H, T, P = ACCOUNTS.c, HOLDS.c, ENTRIES.c, PAYMENTS.c
ADMIN_ROLES = ("admin", "super_admin")
MAX_KEY = 200
MAX_REASON = 500


class Ledger:
    """The ledger over one database session, acting as `actor` (as the audit log names it:
    `user:<id>`, `system`, `cli`) from `origin`. The session's acting user (set_acting_user)
    decides whose accounts it may touch: a user its own, an admin any."""

    def __init__(
        self,
        session: AsyncSession,
        config: LedgerConfig,
        *,
        actor: str = "system",
        origin: audit.Origin | None = None,
        clock: Clock = utcnow,
    ) -> None:
        self.session = session
        self.config = config
        self.actor = actor
        self.origin = origin or audit.Origin()
        self.clock = clock

    # Accounts ---------------------------------------------------------------------------

    async def account(self, user_id: str) -> Account:
        """The user's account (opened with the configured defaults on first use)."""
        self.require_access(user_id)
        return Account.of(await self._account_row(user_id), self.clock())

    async def set_unlimited(self, user_id: str, unlimited: bool) -> Account:
        """Make an account unlimited (an admin's: never charged) or limited again."""
        self.require_admin()
        await self._account_row(user_id)
        now = self.clock()
        await self._execute(
            update(ACCOUNTS).where(A.user_id == user_id).values(unlimited=unlimited, updated_at=now)
        )
        await self.audit("credits.unlimited", user_id, now, audit.Risk.HIGH, {"unlimited": unlimited})
        return await self.account(user_id)

    async def update_settings(self, user_id: str, change: SettingsChange) -> Account:
        """Change the account's limits and auto-recharge settings."""
        self.require_access(user_id)
        await self._account_row(user_id)
        values = {name: value for name, value in vars(change).items() if value is not None}
        if not values:
            return await self.account(user_id)
        now = self.clock()
        await self._execute(update(ACCOUNTS).where(A.user_id == user_id).values(**values, updated_at=now))
        await self.audit("credits.settings", user_id, now, audit.Risk.LOW, values)
        return await self.account(user_id)

    # Holds -------------------------------------------------------------------------------

    async def hold(
        self,
        user_id: str,
        provider_cost: Decimal,
        *,
        key: str,
        session_id: str | None = None,
        model: str | None = None,
        ttl: timedelta | None = None,
    ) -> Hold:
        """Reserve the credits of a call whose worst case costs `provider_cost` USD.

        Refused (`InsufficientCredits`, or its `SpendingLimitReached`) when the available credits
        or a limit cannot cover it; idempotent on `key`: the same key gives back the same hold.
        """
        self.require_access(user_id)
        key = _checked_key(key)
        amount = hold_credits(provider_cost, self.config.markup)
        found = await self._hold_row(user_id, key)
        if found is not None:
            return Hold.of(found)
        now = self.clock()
        day, month = limits.day_key(now), limits.month_key(now)
        bypass = False
        if not await self._reserve(user_id, amount, day, month, now):
            account = await self._account_row(user_id)
            if account.unlimited:
                bypass = True
            elif not await self._reserve(user_id, amount, day, month, now):  # a new account
                raise limits.refusal(await self._account_row(user_id), amount, now)
        hold = Hold(
            id=uuid.uuid4().hex,
            key=key,
            user_id=user_id,
            amount=amount,
            provider_cost=usd(provider_cost),
            status="open",
            bypass=bypass,
            session_id=session_id,
            model=model,
            day_key=day,
            month_key=month,
            created_at=now,
            expires_at=now + (ttl or self.config.hold_ttl),
        )
        values = {name: value for name, value in vars(hold).items() if name != "charged"}
        statement = (
            self._insert(HOLDS).values(**values).on_conflict_do_nothing(index_elements=["user_id", "key"])
        )
        if (await self.session.execute(statement.returning(H.id))).first() is None:
            # The same key was held meanwhile (it committed while this waited for the account):
            # give back what this one reserved and answer with that hold.
            if not bypass:
                await self._free(user_id, amount, day, month, now)
            existing = await self._hold_row(user_id, key)
            assert existing is not None
            return Hold.of(existing)
        return hold

    async def charge(
        self, user_id: str, key: str, provider_cost: Decimal, *, model: str | None = None
    ) -> Charge:
        """Charge the held call at its actual `provider_cost` USD × markup and release the rest
        (see the module docstring for an actual above the hold); idempotent on `key`."""
        self.require_access(user_id)
        due = charge_credits(provider_cost, self.config.markup)
        for _attempt in range(3):  # the hold may end (a release, a sweep) while this reads it
            row = await self._existing_hold(user_id, key)
            if row.status == "captured":
                return Charge(Hold.of(row), await self._entry_of_hold(row.id))
            charged = await self._capture(Hold.of(row), due, usd(provider_cost), model)
            if charged is not None:
                return charged
        raise ConflictError(f"the hold {key!r} kept changing while it was being charged")

    async def release(self, user_id: str, key: str) -> Hold:
        """Give back what the hold reserved; a hold that has ended already stays as it is."""
        self.require_access(user_id)
        for _attempt in range(3):
            row = await self._existing_hold(user_id, key)
            if row.status != "open":
                return Hold.of(row)
            ended = await self._end_open_hold(row.id, "released", self.clock())
            if ended is not None:
                return ended
        raise ConflictError(f"the hold {key!r} kept changing while it was being released")

    async def expire_stale(self, *, batch: int = 500) -> list[Hold]:
        """End every open hold whose expiry has passed (exactly once: a hold another sweep
        ended already is skipped), each with an audit entry; returns the holds it ended."""
        self.require_admin()
        now = self.clock()
        ids = (
            await self.session.execute(
                select(H.id).where(H.status == "open", H.expires_at <= now).order_by(H.id).limit(batch)
            )
        ).scalars()
        expired = [
            hold for hold_id in list(ids) if (hold := await self._end_open_hold(hold_id, "expired", now))
        ]
        for hold in expired:  # audited last: see keen.billing.audit
            details = {"amount": hold.amount, "key": hold.key, "session_id": hold.session_id}
            await self.audit(
                "credits.hold_expired", hold.user_id, now, audit.Risk.LOW, details, target=hold.id
            )
        return expired

    # Money in and out --------------------------------------------------------------------

    async def purchase(
        self,
        user_id: str,
        amount: Decimal,
        *,
        provider: PaymentProvider,
        request_key: str,
        kind: str = "purchase",
    ) -> Purchase:
        """Buy `amount` credits through `provider`; the same `request_key` is the same payment
        (asked of the provider with that key, credited at most once per provider payment id).
        A failed payment credits nothing and is recorded and audited (commit it)."""
        self.require_access(user_id)
        amount = parse_credits(amount, "a purchase")
        await self._account_row(user_id)
        done = await self._payment_by_request(request_key)
        if done is not None:
            return await self._purchase_of(done)
        result = await provider.charge(
            user_id, amount, idempotency_key=request_key, description=f"{amount} keen credits"
        )
        succeeded = result.ok and bool(result.provider_ref)
        if succeeded:
            known = (
                await self.session.execute(select(PAYMENTS).where(P.provider_ref == result.provider_ref))
            ).first()
            if known is not None:  # the provider answered with a payment credited already
                return await self._purchase_of(known)
        now = self.clock()
        payment = Payment(
            id=uuid.uuid4().hex,
            user_id=user_id,
            provider=provider.name,
            provider_ref=result.provider_ref if succeeded else None,
            kind=kind,
            status="succeeded" if succeeded else "failed",
            amount=amount,
            error=None if succeeded else (result.error or "the payment failed"),
            created_at=now,
        )
        statement = (
            self._insert(PAYMENTS)
            .values(**vars(payment), request_key=request_key, completed_at=now)
            .on_conflict_do_nothing(index_elements=["request_key"])
        )
        if (await self.session.execute(statement.returning(P.id))).first() is None:
            done = await self._payment_by_request(request_key)  # a concurrent request made it
            assert done is not None
            return await self._purchase_of(done)
        if not succeeded:
            details = {"amount": amount, "payment_id": payment.id, "kind": kind, "error": payment.error}
            await self.audit("credits.payment_failed", user_id, now, audit.Risk.MEDIUM, details)
            return Purchase(payment, None)
        return Purchase(payment, await self.credit_payment(payment, reason=kind))

    async def credit_payment(self, payment: Payment, *, reason: str) -> Entry:
        """Credit a succeeded payment: one `purchase` entry (the database refuses a second)."""
        now = self.clock()
        balance = (
            await self.session.execute(
                update(ACCOUNTS)
                .where(A.user_id == payment.user_id)
                .values(
                    balance=A.balance + credits(payment.amount),
                    lifetime_purchased=A.lifetime_purchased + credits(payment.amount),
                    updated_at=now,
                )
                .returning(A.balance)
            )
        ).scalar_one()
        entry = await self._append(
            payment.user_id, "purchase", payment.amount, balance, now, payment_id=payment.id, reason=reason
        )
        details = {
            "amount": payment.amount,
            "balance_after": balance,
            "payment_id": payment.id,
            "kind": reason,
        }
        await self.audit(
            "credits.purchase", payment.user_id, now, audit.Risk.MEDIUM, details, target=str(entry.id)
        )
        return entry

    async def adjust(self, user_id: str, amount: Decimal, *, reason: str) -> Entry:
        """An admin's adjustment (positive: a grant; negative: a correction), with its reason.
        Refused when it would leave less than nothing available."""
        self.require_admin()
        reason = _checked_reason(reason)
        amount = parse_credits(amount, "an adjustment", allow_negative=True)
        await self._account_row(user_id)
        now = self.clock()
        balance = (
            await self.session.execute(
                update(ACCOUNTS)
                .where(A.user_id == user_id, A.balance - A.held + credits(amount) >= credits(ZERO))
                .values(balance=A.balance + credits(amount), updated_at=now)
                .returning(A.balance)
            )
        ).scalar_one_or_none()
        if balance is None:
            available = (await self.account(user_id)).available
            raise ConflictError(
                f"an adjustment of {amount} would leave less than nothing available ({available} is)",
                details={"available": str(available), "amount": str(amount)},
            )
        entry = await self._append(user_id, "adjustment", amount, balance, now, reason=reason)
        details = {"amount": amount, "balance_after": balance, "reason": reason}
        await self.audit("credits.adjustment", user_id, now, audit.Risk.HIGH, details, target=str(entry.id))
        return entry

    async def refund(
        self, user_id: str, entry_id: int, amount: Decimal | None = None, *, reason: str
    ) -> Entry:
        """Give back credits of a usage entry (all that is left of it when `amount` is None);
        never more than it took, over all its refunds."""
        self.require_admin()
        reason = _checked_reason(reason)
        usage = (
            await self.session.execute(
                select(ENTRIES).where(T.id == entry_id, T.user_id == user_id, T.type == "usage")
            )
        ).first()
        if usage is None:
            raise NotFoundError(f"no usage entry {entry_id} of this account")
        await self._lock_account(user_id)  # refunds of one entry queue here
        refunded = (
            await self.session.execute(select(func.sum(T.amount)).where(T.refund_of == entry_id))
        ).scalar_one_or_none() or ZERO
        left = -usage.amount - refunded
        amount = left if amount is None else parse_credits(amount, "a refund")
        if amount <= 0 or amount > left:
            raise ConflictError(
                f"entry {entry_id} has {left} credits left to refund, not {amount}",
                details={"left": str(left)},
            )
        now = self.clock()
        balance = (
            await self.session.execute(
                update(ACCOUNTS)
                .where(A.user_id == user_id)
                .values(
                    balance=A.balance + credits(amount),
                    lifetime_spent=A.lifetime_spent - credits(amount),
                    updated_at=now,
                )
                .returning(A.balance)
            )
        ).scalar_one()
        entry = await self._append(user_id, "refund", amount, balance, now, refund_of=entry_id, reason=reason)
        details = {"amount": amount, "balance_after": balance, "refund_of": entry_id, "reason": reason}
        await self.audit("credits.refund", user_id, now, audit.Risk.MEDIUM, details, target=str(entry.id))
        return entry

    # Internals ---------------------------------------------------------------------------

    def require_access(self, user_id: str) -> None:
        """The session acts for `user_id` or as an admin (on PostgreSQL, RLS checks it again)."""
        actor = acting_user(self.session)
        if actor is None:
            raise PermissionDeniedError("the ledger needs an acting user (set_acting_user)")
        if not actor.is_admin and actor.user_id != user_id:
            raise PermissionDeniedError("an account's credits are its owner's (or an admin's) to move")

    def require_admin(self) -> None:
        actor = acting_user(self.session)
        if actor is None or not actor.is_admin:
            raise PermissionDeniedError("only an admin may do this to credits")

    def _insert(self, table: Any) -> Any:
        dialect = self.session.get_bind().dialect.name
        return (pg_insert if dialect == "postgresql" else sqlite_insert)(table)

    async def _execute(self, statement: Any) -> Any:
        return await self.session.execute(statement)

    async def _account_row(self, user_id: str) -> Any:
        """The account's row, opened first when the user has none: unlimited for an admin role."""
        row = (await self.session.execute(select(ACCOUNTS).where(A.user_id == user_id))).first()
        if row is not None:
            return row
        role = (
            await self.session.execute(select(UserRow.role).where(UserRow.id == user_id))
        ).scalar_one_or_none()
        if role is None:
            raise NotFoundError(f"no user {user_id}")
        now = self.clock()
        config = self.config
        await self.session.execute(
            self._insert(ACCOUNTS)
            .values(
                user_id=user_id,
                unlimited=role in ADMIN_ROLES,
                daily_limit=config.daily_limit,
                monthly_limit=config.monthly_limit,
                auto_recharge_threshold=config.recharge_threshold,
                auto_recharge_amount=config.recharge_amount,
                auto_recharge_monthly_cap=config.recharge_monthly_cap,
                created_at=now,
                updated_at=now,
            )
            .on_conflict_do_nothing(index_elements=["user_id"])
        )
        return (await self.session.execute(select(ACCOUNTS).where(A.user_id == user_id))).one()

    async def _lock_account(self, user_id: str) -> Any:
        """The account's row, locked until the transaction ends (PostgreSQL; SQLite's unit of
        work holds the write lock already)."""
        await self._account_row(user_id)
        return (
            await self.session.execute(select(ACCOUNTS).where(A.user_id == user_id).with_for_update())
        ).one()

    async def _reserve(self, user_id: str, amount: Decimal, day: str, month: str, now: datetime) -> bool:
        """The conditional UPDATE of a hold: reserves `amount` when it is available and within
        both limits, in one statement; False (nothing changed) when not, or no such account."""
        result = await self.session.execute(
            update(ACCOUNTS)
            .where(
                A.user_id == user_id,
                A.unlimited.is_(False),
                A.balance - A.held >= credits(amount),
                limits.within_limits(amount, day, month),
            )
            .values(held=A.held + credits(amount), updated_at=now, **limits.hold_counters(amount, day, month))
        )
        return bool(result.rowcount == 1)

    async def _free(self, user_id: str, amount: Decimal, day: str, month: str, now: datetime) -> None:
        await self.session.execute(
            update(ACCOUNTS)
            .where(A.user_id == user_id)
            .values(
                held=A.held - credits(amount), updated_at=now, **limits.freed_counters(amount, day, month)
            )
        )

    async def _hold_row(self, user_id: str, key: str) -> Any:
        return (await self.session.execute(select(HOLDS).where(H.user_id == user_id, H.key == key))).first()

    async def _existing_hold(self, user_id: str, key: str) -> Any:
        row = await self._hold_row(user_id, key)
        if row is None:
            raise NotFoundError(f"no hold {key!r} on this account")
        return row

    async def _claim(self, hold: Hold, status: str, now: datetime, charged: Decimal | None = None) -> bool:
        """Move the hold from the status it was read in to `status`; False when something else
        moved it first (the row lock makes exactly one of two racing claims win)."""
        result = await self.session.execute(
            update(HOLDS)
            .where(H.id == hold.id, H.status == hold.status)
            .values(status=status, ended_at=now, charged=charged)
        )
        return bool(result.rowcount == 1)

    async def _end_open_hold(self, hold_id: str, status: str, now: datetime) -> Hold | None:
        """Release or expire an open hold and give its reservation back; None when it was not open."""
        row = (
            await self.session.execute(
                update(HOLDS)
                .where(H.id == hold_id, H.status == "open")
                .values(status=status, ended_at=now)
                .returning(*HOLDS.c)
            )
        ).first()
        if row is None:
            return None
        hold = Hold.of(row)
        if not hold.bypass:
            await self._free(hold.user_id, hold.amount, hold.day_key, hold.month_key, now)
        return hold

    async def _capture(self, hold: Hold, due: Decimal, cost: Decimal, model: str | None) -> Charge | None:
        now = self.clock()
        markup = exact(self.config.markup)
        if hold.bypass:
            if not await self._claim(hold, "captured", now, ZERO):
                return None
            balance = (
                await self.session.execute(select(A.balance).where(A.user_id == hold.user_id))
            ).scalar_one()
            entry = await self._append(
                hold.user_id,
                "admin_bypass",
                ZERO,
                balance,
                now,
                hold=hold,
                model=model,
                cost=cost,
                markup=markup,
                unbilled=due,
            )
            return Charge(replace(hold, status="captured", charged=ZERO), entry)
        if hold.status == "open":
            charged = min(due, hold.amount)
            if not await self._claim(hold, "captured", now, charged):
                return None
            counters = limits.freed_counters(hold.amount - charged, hold.day_key, hold.month_key)
            held_change = hold.amount
        else:  # released or expired before its charge came: up to what is available now
            if not await self._claim(hold, "captured", now):
                return None
            account = await self._lock_account(hold.user_id)
            charged = max(min(due, account.balance - account.held), ZERO)
            await self.session.execute(update(HOLDS).where(H.id == hold.id).values(charged=charged))
            counters = limits.spent_counters(charged, hold.day_key, hold.month_key)
            held_change = ZERO
        after = (
            await self.session.execute(
                update(ACCOUNTS)
                .where(A.user_id == hold.user_id)
                .values(
                    balance=A.balance - credits(charged),
                    held=A.held - credits(held_change),
                    lifetime_spent=A.lifetime_spent + credits(charged),
                    updated_at=now,
                    **counters,
                )
                .returning(A.balance, A.auto_recharge_enabled, A.auto_recharge_threshold)
            )
        ).one()
        unbilled = due - charged
        entry = await self._append(
            hold.user_id,
            "usage",
            -charged,
            after.balance,
            now,
            hold=hold,
            model=model,
            cost=cost,
            markup=markup,
            unbilled=unbilled if unbilled > 0 else None,
        )
        details = {"amount": -charged, "balance_after": after.balance, "hold": hold.key, "unbilled": unbilled}
        await self.audit("credits.usage", hold.user_id, now, audit.Risk.LOW, details, target=str(entry.id))
        recharge = None
        if (
            after.auto_recharge_enabled
            and after.balance + charged >= after.auto_recharge_threshold > after.balance
        ):
            from keen.billing.recharge import start_recharge

            recharge = await start_recharge(self, hold.user_id, now)
        return Charge(replace(hold, status="captured", charged=charged), entry, recharge)

    async def _entry_of_hold(self, hold_id: str) -> Entry:
        row = (await self.session.execute(select(ENTRIES).where(T.hold_id == hold_id))).one()
        return Entry.of(row)

    async def _append(
        self,
        user_id: str,
        type: str,
        amount: Decimal,
        balance_after: Decimal,
        now: datetime,
        *,
        hold: Hold | None = None,
        model: str | None = None,
        cost: Decimal | None = None,
        markup: Decimal | None = None,
        unbilled: Decimal | None = None,
        payment_id: str | None = None,
        refund_of: int | None = None,
        reason: str | None = None,
    ) -> Entry:
        """Append one ledger entry (the only INSERT into credit_transactions)."""
        row = (
            await self.session.execute(
                insert(ENTRIES)
                .values(
                    user_id=user_id,
                    type=type,
                    amount=amount,
                    balance_after=balance_after,
                    provider_cost=cost,
                    markup=markup,
                    unbilled=unbilled,
                    session_id=hold.session_id if hold else None,
                    hold_id=hold.id if hold else None,
                    payment_id=payment_id,
                    refund_of=refund_of,
                    model=model or (hold.model if hold else None),
                    reason=reason,
                    actor=self.actor,
                    created_at=now,
                )
                .returning(*ENTRIES.c)
            )
        ).one()
        return Entry.of(row)

    async def _payment_by_request(self, request_key: str) -> Any:
        return (await self.session.execute(select(PAYMENTS).where(P.request_key == request_key))).first()

    async def _purchase_of(self, row: Any) -> Purchase:
        entry = (await self.session.execute(select(ENTRIES).where(T.payment_id == row.id))).first()
        return Purchase(Payment.of(row), Entry.of(entry) if entry is not None else None)

    async def audit(
        self,
        action: str,
        user_id: str,
        now: datetime,
        risk: audit.Risk,
        details: dict[str, Any],
        *,
        target: str | None = None,
    ) -> None:
        await audit.record(
            self.session,
            action,
            user_id=user_id,
            actor=self.actor,
            origin=self.origin,
            now=now,
            risk=risk,
            target=target,
            details=details,
        )


def _checked_key(key: str) -> str:
    if not key or len(key) > MAX_KEY or not key.isprintable():
        raise InputError(f"a hold key is 1 to {MAX_KEY} printable characters")
    return key


def _checked_reason(reason: str) -> str:
    reason = reason.strip()
    if not reason or len(reason) > MAX_REASON:
        raise InputError(f"a reason of 1 to {MAX_REASON} characters is required")
    return reason
