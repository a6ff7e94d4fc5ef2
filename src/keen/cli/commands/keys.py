"""`keen keys create | list | revoke`: API keys of the logged-in user (a new key printed once)."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from keen.cli.common import EXIT_OK, guarded, print_json, settings_or_fail, stderr_console, stdout_console

KEYS = "/auth/api-keys"


def _client() -> Any:
    from keen.cli.client import require_login

    return require_login(settings_or_fail().keen_home, "API keys")


def create_command(*, name: str, scopes: str | None, expires_in_days: int | None, as_json: bool) -> int:
    def body() -> int:
        request: dict[str, Any] = {"name": name}
        if scopes:
            request["scopes"] = [s.strip() for s in scopes.split(",") if s.strip()]
        if expires_in_days is not None:
            request["expires_in_days"] = expires_in_days
        with _client() as client:
            created = client.post(KEYS, request)
        if as_json:
            print_json(created)
            return EXIT_OK
        stdout_console().print(created["key"], soft_wrap=True, highlight=False)
        stderr_console().print(
            f"API key {created['id']} ({created['name']}, scopes {', '.join(created['scopes'])}); "
            "it is shown this once: keep it now",
            soft_wrap=True,
        )
        return EXIT_OK

    return guarded(body)


def list_command(*, as_json: bool) -> int:
    def body() -> int:
        with _client() as client:
            keys = client.get(KEYS)
        if as_json:
            print_json(keys)
            return EXIT_OK
        table = Table("id", "name", "prefix", "scopes", "expires", "revoked", "last used")
        for key in keys:
            table.add_row(
                key["id"],
                key["name"],
                key["prefix"],
                ", ".join(key["scopes"]),
                _day(key.get("expires_at")),
                _day(key.get("revoked_at")),
                _day(key.get("last_used_at")),
            )
        stdout_console().print(table if keys else "no API keys")
        return EXIT_OK

    return guarded(body)


def _day(value: Any) -> str:
    return str(value)[:16].replace("T", " ") if value else "-"


def revoke_command(key_id: str) -> int:
    def body() -> int:
        with _client() as client:
            client.delete(f"{KEYS}/{key_id}")
        stdout_console().print(f"revoked API key {key_id}", soft_wrap=True)
        return EXIT_OK

    return guarded(body)
