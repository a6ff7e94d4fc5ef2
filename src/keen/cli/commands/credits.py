"""`keen credits balance | history`: the credits of the logged-in user on the server."""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text

from keen.cli.common import EXIT_OK, guarded, print_json, settings_or_fail, stdout_console
from keen.errors import InputError, NotFoundError


def _get(path: str, **params: Any) -> Any:
    from keen.cli.client import require_login

    with require_login(settings_or_fail().keen_home, "credits") as client:
        try:
            return client.get(path, **params)
        except NotFoundError:
            raise NotFoundError(f"{client.server} has no credits API (an older keen server?)") from None


def balance_command(*, as_json: bool) -> int:
    def body() -> int:
        balance = _get("/credits/balance")
        if as_json:
            print_json(balance)
            return EXIT_OK
        table = Table.grid(padding=(0, 2))
        if balance.get("unlimited"):
            table.add_row("credits", "unlimited (an admin's account is never charged)")
        for key in ("balance", "held", "available", "lifetime_purchased", "lifetime_spent"):
            table.add_row(key.replace("_", " "), str(balance.get(key)))
        limits = balance.get("limits") or {}
        if limits:
            table.add_row("today", f"{limits.get('used_today')} of {limits.get('daily')}")
            table.add_row("this month", f"{limits.get('used_this_month')} of {limits.get('monthly')}")
        stdout_console().print(table)
        return EXIT_OK

    return guarded(body)


def history_command(*, limit: int, as_json: bool) -> int:
    def body() -> int:
        if not 1 <= limit <= 100:
            raise InputError("--limit must be between 1 and 100")
        page = _get("/credits/transactions", limit=limit)
        if as_json:
            print_json(page)
            return EXIT_OK
        table = Table("when", "type", "amount", "balance after", "session", "reason")
        for entry in page["items"]:
            table.add_row(
                str(entry["created_at"])[:19].replace("T", " "),
                entry["type"],
                str(entry["amount"]),
                str(entry["balance_after"]),
                (entry.get("session_id") or "-")[:8],
                Text(entry.get("reason") or entry.get("model") or "-"),
            )
        stdout_console().print(table if page["items"] else "no credit transactions yet")
        return EXIT_OK

    return guarded(body)
