"""`keen serve`: check the database and the secret, then run the API under uvicorn.

A database behind this keen is refused (naming `keen db upgrade`); a new, empty one is given its
schema. The signing secret is made on first start when none is configured, and until there is an
admin the command says how to create one.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

from keen.cli.common import EXIT_OK, guarded, settings_or_fail, stderr_console
from keen.config import Settings
from keen.errors import ConfigError

FIRST_ADMIN_HINT = (
    "no admin account yet: create one with `keen admin create-user --email EMAIL --admin`, "
    "or set KEEN_ADMIN_EMAIL and KEEN_ADMIN_PASSWORD before starting the server"
)


def serve_command(*, host: str, port: int) -> int:
    def body() -> int:
        from keen.server.secret import secret_path, server_secret

        settings = settings_or_fail()
        if settings.keen_database_url is None:
            settings.ensure_home()
        console = stderr_console()
        initialised, admin_exists = asyncio.run(prepare_database(settings))
        if initialised:
            console.print("created the database schema (new database)")
        had_secret = settings.keen_secret_key is not None or secret_path(settings).exists()
        server_secret(settings)
        if not had_secret:
            console.print(f"wrote a new server secret to {secret_path(settings)} (mode 0600)")
        if admin_exists is False or (admin_exists is None and not _admin_configured(settings)):
            console.print(FIRST_ADMIN_HINT, soft_wrap=True)
        run_server(settings, host=host, port=port)
        return EXIT_OK

    return guarded(body)


async def prepare_database(settings: Settings) -> tuple[bool, bool | None]:
    """Give an empty database its schema and refuse one that is behind; then let the auth layer
    make the first admin. Returns (schema created, an admin exists — None when unknown)."""
    from keen.store.db import Database

    db = Database(settings.database_url)
    try:
        initialised = False
        if await db.current_revision() is None and await _is_empty(db):
            await db.upgrade()
            initialised = True
        await db.require_current()
        return initialised, await first_admin(settings, db)
    finally:
        await db.dispose()


async def first_admin(settings: Settings, db: Any) -> bool | None:
    """`keen.auth.bootstrap.ensure_first_admin(settings, db)` when the auth layer has it (it
    creates the admin from KEEN_ADMIN_EMAIL/KEEN_ADMIN_PASSWORD and may say whether one exists)."""
    try:
        from keen.auth.bootstrap import ensure_first_admin  # type: ignore[import-not-found,unused-ignore]
    except ModuleNotFoundError as exc:
        if exc.name in {"keen.auth", "keen.auth.bootstrap"}:
            return None
        raise
    result: object = ensure_first_admin(settings, db)
    if inspect.isawaitable(result):
        result = await result
    return result if isinstance(result, bool) else None


async def _is_empty(db: Any) -> bool:
    from sqlalchemy import inspect as inspect_schema

    async with db.engine.connect() as conn:
        tables = await conn.run_sync(lambda sync: inspect_schema(sync).get_table_names())
    return not tables


def _admin_configured(settings: Settings) -> bool:
    return bool(settings.keen_admin_email and settings.keen_admin_password)


def run_server(settings: Settings, *, host: str, port: int) -> None:
    import uvicorn

    from keen.server.logs import uvicorn_log_config

    if not 0 < port < 65536:
        raise ConfigError(f"--port {port} is not a TCP port (1-65535)")
    uvicorn.run(
        "keen.server.app:create_app",
        factory=True,
        host=host,
        port=port,
        log_config=uvicorn_log_config(),
        proxy_headers=True,
        forwarded_allow_ips=settings.keen_forwarded_allow_ips,
        server_header=False,
    )
