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
from typing import Any, cast

from sqlalchemy import CursorResult, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from keen.billing import access, audit, limits
from keen.billing import statements as sql
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
from keen.billing.tables import ACCOUNTS, ENTRIES, HOLDS, PAYMENTS
from keen.errors import ConflictError, InputError, NotFoundError
from keen.store.models import UserRow

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
        if ttl is not None and ttl < timedelta(0):
            raise InputError("a hold's time to live cannot be negative")
        amount = hold_credits(provider_cost, self.config.markup)
        now = self.clock()
        day, month = limits.day_key(now), limits.month_key(now)
        hold = Hold(
            id=uuid.uuid4().hex,
            key=key,
            user_id=user_id,
            amount=amount,
            provider_cost=usd(provider_cost),
            status="open",
            bypass=False,
            session_id=session_id,
            model=model,
            day_key=day,
            month_key=month,
            created_at=now,
            expires_at=now + (self.config.hold_ttl if ttl is None else ttl),
        )
        # The hold's row first, the account's (contended) row lock last: it is then held only
        # until the commit. A key held already (asked again, or by a concurrent request that
        # committed while this one waited on the key) is answered with that hold.
        values = {name: value for name, value in vars(hold).items() if name != "charged"}
        if (await self.session.execute(sql.INSERT_HOLD[self._dialect()], values)).first() is None:
            existing = await self._hold_row(user_id, key)
            assert existing is not None
            return Hold.of(existing)
        counted = {"p_user": user_id, "p_amount": amount, "p_day": day, "p_month": month, "p_now": now}
        if await self._changed(sql.RESERVE, counted):
            return hold
        account = await self._account_row(user_id)
        if account.unlimited:
            await self.session.execute(update(HOLDS).where(H.id == hold.id).values(bypass=True))
            return replace(hold, bypass=True)
        if await self._changed(sql.RESERVE, counted):  # the account was just opened
            return hold
        await self.session.execute(delete(HOLDS).where(H.id == hold.id))
        raise limits.refusal(await self._account_row(user_id), amount, now)

    async def charge(
        self, user_id: str, key: str, provider_cost: Decimal, *, model: str | None = None
    ) -> Charge:
        """Charge the held call at its actual `provider_cost` USD × markup and release the rest
        (see the module docstring for an actual above the hold); idempotent on `key`."""
        self.require_access(user_id)
        due = charge_credits(provider_cost, self.config.markup)
        cost = usd(provider_cost)
        now = self.clock()
        params = {"p_user": user_id, "p_key": key, "p_due": due, "p_now": now}
        captured = (await self.session.execute(sql.CAPTURE_OPEN, params)).first()
        if captured is not None:  # the usual way: an open hold, captured in one statement
            hold = Hold.of(captured)
            assert hold.charged is not None
            return await self._settle(
                hold, due, cost, model, now, held=hold.amount, freed=hold.amount - hold.charged
            )
        for _attempt in range(3):  # a bypass or an ended hold; it may change while this reads it
            row = await self._existing_hold(user_id, key)
            if row.status == "captured":
                return Charge(Hold.of(row), await self._entry_of_hold(row.id))
            charged = await self._capture_other(Hold.of(row), due, cost, model)
            if charged is not None:
                return charged
        raise ConflictError(f"the hold {key!r} kept changing while it was being charged")

    async def release(self, user_id: str, key: str) -> Hold:
        """Give back what the hold reserved; a hold that has ended already stays as it is."""
        self.require_access(user_id)
        now = self.clock()
        ended = (
            await self.session.execute(
                sql.END_OPEN_BY_KEY, {"p_user": user_id, "p_key": key, "p_status": "released", "p_now": now}
            )
        ).first()
        if ended is None:
            return Hold.of(await self._existing_hold(user_id, key))
        return await self._freed(Hold.of(ended), now)

    async def find_hold(self, user_id: str, key: str) -> Hold | None:
        """The hold of `key` in whatever state it is, or None."""
        self.require_access(user_id)
        row = await self._hold_row(user_id, key)
        return None if row is None else Hold.of(row)

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
        access.require_access(self.session, user_id)

    def require_admin(self) -> None:
        access.require_admin(self.session)

    def _dialect(self) -> str:
        return self.session.get_bind().dialect.name

    def _insert(self, table: Any) -> Any:
        return (pg_insert if self._dialect() == "postgresql" else sqlite_insert)(table)

    async def _execute(self, statement: Any, params: dict[str, Any] | None = None) -> CursorResult[Any]:
        """Run a data-changing statement (its result says how many rows it changed)."""
        return cast(CursorResult[Any], await self.session.execute(statement, params))

    async def _changed(self, statement: Any, params: dict[str, Any] | None = None) -> bool:
        """Run a conditional UPDATE of one row; whether its condition held (the row changed)."""
        return bool((await self._execute(statement, params)).rowcount == 1)

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

    async def _hold_row(self, user_id: str, key: str) -> Any:
        return (await self.session.execute(sql.HOLD_BY_KEY, {"p_user": user_id, "p_key": key})).first()

    async def _existing_hold(self, user_id: str, key: str) -> Any:
        row = await self._hold_row(user_id, key)
        if row is None:
            raise NotFoundError(f"no hold {key!r} on this account")
        return row

    async def _end_open_hold(self, hold_id: str, status: str, now: datetime) -> Hold | None:
        """Release or expire an open hold and give its reservation back; None when it was not open."""
        params = {"p_hold": hold_id, "p_status": status, "p_now": now}
        row = (await self.session.execute(sql.END_OPEN_BY_ID, params)).first()
        return None if row is None else await self._freed(Hold.of(row), now)

    async def _freed(self, hold: Hold, now: datetime) -> Hold:
        """Give back what an ended hold reserved (a bypass hold reserved nothing)."""
        if not hold.bypass:
            params = {
                "p_user": hold.user_id,
                "p_amount": hold.amount,
                "p_day": hold.day_key,
                "p_month": hold.month_key,
            }
            await self.session.execute(sql.FREE, {**params, "p_now": now})
        return hold

    async def _capture_other(
        self, hold: Hold, due: Decimal, cost: Decimal, model: str | None
    ) -> Charge | None:
        """Charge a bypass hold (nothing, with a record of the would-be amount) or one that was
        released or expired before its charge came (up to what is available now); None when
        the hold changed meanwhile."""
        now = self.clock()
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
                unbilled=due,
            )
            return Charge(replace(hold, status="captured", charged=ZERO), entry)
        if not await self._claim(hold, "captured", now):
            return None
        account = await self._lock_account(hold.user_id)
        charged = max(min(due, account.balance - account.held), ZERO)
        await self.session.execute(update(HOLDS).where(H.id == hold.id).values(charged=charged))
        return await self._settle(
            replace(hold, charged=charged), due, cost, model, now, held=ZERO, freed=-charged
        )

    async def _claim(self, hold: Hold, status: str, now: datetime, charged: Decimal | None = None) -> bool:
        """Move the hold from the status it was read in to `status`; False when something else
        moved it first (the row lock makes exactly one of two racing claims win)."""
        statement = (
            update(HOLDS)
            .where(H.id == hold.id, H.status == hold.status)
            .values(status=status, ended_at=now, charged=charged)
        )
        return await self._changed(statement)

    async def _settle(
        self,
        hold: Hold,
        due: Decimal,
        cost: Decimal,
        model: str | None,
        now: datetime,
        *,
        held: Decimal,
        freed: Decimal,
    ) -> Charge:
        """Take a captured hold's charge from the balance, end its reservation (`held`), give
        its periods back what it did not use (`freed`); its entry, audit and any auto-recharge."""
        charged = hold.charged
        assert charged is not None
        params = {
            "p_user": hold.user_id,
            "p_charged": charged,
            "p_held": held,
            "p_freed": freed,
            "p_day": hold.day_key,
            "p_month": hold.month_key,
            "p_now": now,
        }
        after = (await self.session.execute(sql.SETTLE, params)).one()
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
        return Charge(replace(hold, status="captured"), entry, recharge)

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
        unbilled: Decimal | None = None,
        payment_id: str | None = None,
        refund_of: int | None = None,
        reason: str | None = None,
    ) -> Entry:
        """Append one ledger entry (the only INSERT into credit_transactions). A call's entry
        (it has a provider cost) records the markup it was priced at."""
        values = {
            "user_id": user_id,
            "type": type,
            "amount": amount,
            "balance_after": balance_after,
            "provider_cost": cost,
            "markup": exact(self.config.markup) if cost is not None else None,
            "unbilled": unbilled,
            "session_id": hold.session_id if hold else None,
            "hold_id": hold.id if hold else None,
            "payment_id": payment_id,
            "refund_of": refund_of,
            "model": model or (hold.model if hold else None),
            "reason": reason,
            "actor": self.actor,
            "created_at": now,
        }
        return Entry.of((await self.session.execute(sql.APPEND_ENTRY, values)).one())

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
