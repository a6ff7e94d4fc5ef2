"""`keen admin grant-credits` and `keen admin sweep-holds`, on the configured database, acting
as keen itself (audited as `cli`)."""

from __future__ import annotations

import asyncio
from typing import Any

from keen.cli.commands.admin import _open
from keen.cli.common import EXIT_OK, guarded, print_json, settings_or_fail, stdout_console


def grant_credits_command(*, user: str, amount: str, reason: str, as_json: bool) -> int:
    def body() -> int:
        from keen.billing.money import parse_credits

        settings = settings_or_fail()
        credits = parse_credits(amount, "AMOUNT", allow_negative=True)
        user_id, email, entry = asyncio.run(_grant(settings, user, credits, reason))
        if as_json:
            print_json(
                {
                    "user_id": user_id,
                    "email": email,
                    "entry_id": entry.id,
                    "amount": format(entry.amount, "f"),
                    "balance": format(entry.balance_after, "f"),
                }
            )
        else:
            stdout_console().print(
                f"{'granted' if credits > 0 else 'took'} {abs(entry.amount)} credits "
                f"{'to' if credits > 0 else 'from'} {email}: balance {entry.balance_after}"
            )
        return EXIT_OK

    return guarded(body)


def sweep_holds_command(*, as_json: bool) -> int:
    def body() -> int:
        settings = settings_or_fail()
        report = asyncio.run(_sweep(settings))
        if as_json:
            print_json(
                {
                    "expired": [{"id": h.id, "user_id": h.user_id, "key": h.key} for h in report.expired],
                    "recharges_completed": report.recharges_completed,
                    "idempotency_keys_deleted": report.idempotency_keys_deleted,
                }
            )
        else:
            stdout_console().print(
                f"expired {len(report.expired)} stale holds, completed {report.recharges_completed} "
                f"pending auto-recharges, forgot {report.idempotency_keys_deleted} expired idempotency keys"
            )
        return EXIT_OK

    return guarded(body)


async def _grant(settings: Any, who: str, amount: Any, reason: str) -> tuple[str, str, Any]:
    from sqlalchemy import or_, select

    from keen.auth.accounts import normalise_email
    from keen.billing import Ledger, LedgerConfig
    from keen.errors import NotFoundError
    from keen.store.db import set_acting_user
    from keen.store.models import UserRow

    db = await _open(settings)
    try:
        async with db.transaction() as session:
            await set_acting_user(session, None, True)
            query = select(UserRow.id, UserRow.email).where(
                or_(UserRow.id == who, UserRow.email == normalise_email(who), UserRow.username == who)
            )
            found = (await session.execute(query)).first()
            if found is None:
                raise NotFoundError(f"no user {who!r} (give an id, an email or a username)")
            ledger = Ledger(session, LedgerConfig.from_settings(settings), actor="cli")
            entry = await ledger.adjust(found.id, amount, reason=reason)
            return found.id, found.email, entry
    finally:
        await db.dispose()


async def _sweep(settings: Any) -> Any:
    from keen.billing import LedgerConfig, provider_for
    from keen.billing.sweeper import sweep

    db = await _open(settings)
    try:
        return await sweep(db, LedgerConfig.from_settings(settings), provider_for(settings))
    finally:
        await db.dispose()
