"""`keen status`: mode, server, user, the sandbox in use and the effective configuration."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from keen import __version__
from keen.cli.common import EXIT_OK, guarded, print_json, settings_or_fail, stdout_console


def status_command(*, as_json: bool, verbose: bool) -> int:
    def body() -> int:
        settings = settings_or_fail()
        data: dict[str, Any] = {
            "version": __version__,
            "mode": "local",
            "server": settings.keen_server,
            "user": None,
            "role": None,
            "credits": None,
            "model": settings.keen_model,
            "home": str(settings.keen_home),
            "database": "sqlite" if settings.keen_database_url is None else "configured",
            "sandbox": _sandbox(settings),
        }
        if verbose:
            data["config"] = settings.masked()
        if as_json:
            print_json(data)
            return EXIT_OK
        table = Table.grid(padding=(0, 2))
        table.add_row("mode", "local (no server login; costs are measured, no credits are charged)")
        for key in ("model", "home", "database", "sandbox", "version"):
            table.add_row(key, str(data[key]))
        if verbose:
            table.add_row("", "")
            for key, value in data["config"].items():
                table.add_row(key, "-" if value is None else value)
        stdout_console().print(table)
        return EXIT_OK

    return guarded(body)


def _sandbox(settings: Any) -> str:
    """How agent commands are contained here; a sandbox that cannot be had is shown, not raised."""
    from keen.errors import ConfigError
    from keen.tools.sandbox import policy_from_settings

    try:
        return policy_from_settings(settings).describe()
    except ConfigError as exc:
        return f"unavailable: {exc.message}"
