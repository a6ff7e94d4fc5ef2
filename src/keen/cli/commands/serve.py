"""`keen serve`: check the database and the secret, then run the API under uvicorn.

A run mode that cannot work here (`KEEN_RUN_MODE=distributed` without PostgreSQL or
procrastinate) is refused before anything starts. A database behind this keen is refused (naming
`keen db upgrade`); a new, empty one is given its schema. The signing secret is made on first
start when none is configured, and until there is an admin the command says how to create one.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from keen.cli.common import EXIT_OK, guarded, settings_or_fail, stderr_console
from keen.config import Settings
from keen.errors import ConfigError


def serve_command(*, host: str, port: int) -> int:
    def body() -> int:
        from keen.runner.run_mode import check_run_mode
        from keen.server.secret import secret_path, server_secret

        settings = settings_or_fail()
        check_run_mode(settings)
        if settings.keen_database_url is None:
            settings.ensure_home()
        console = stderr_console()
        state = asyncio.run(prepare_database(settings))
        if state.initialised:
            console.print("created the database schema (new database)")
        if state.rls_bypass:
            console.print(
                f"warning: {state.rls_bypass}; connect the server as the application role "
                "(docs/deployment.md) so the database checks tenant isolation too",
                soft_wrap=True,
            )
        if settings.keen_run_mode == "distributed" and settings.keen_redis_url is None:
            console.print(
                "warning: KEEN_REDIS_URL is not set, so each replica counts rate limits on its own; "
                "set it to share them (docs/deployment.md)",
                soft_wrap=True,
            )
        had_secret = settings.keen_secret_key is not None or secret_path(settings).exists()
        server_secret(settings)
        if not had_secret:
            console.print(f"wrote a new server secret to {secret_path(settings)} (mode 0600)")
        if not state.admin_exists:
            from keen.auth.bootstrap import HOW_TO_CREATE

            console.print(HOW_TO_CREATE, soft_wrap=True)
        run_server(settings, host=host, port=port)
        return EXIT_OK

    return guarded(body)


@dataclass(frozen=True)
class DatabaseState:
    initialised: bool  # the schema was created now (a new, empty database)
    admin_exists: bool
    rls_bypass: str | None  # why the server's database role escapes row-level security


async def prepare_database(settings: Settings) -> DatabaseState:
    """Give an empty database its schema and refuse one that is behind; then make the first
    admin from KEEN_ADMIN_EMAIL/KEEN_ADMIN_PASSWORD when there is none."""
    from keen.auth.bootstrap import ensure_first_admin
    from keen.store.db import Database, row_security_bypass

    db = Database(settings.database_url)
    try:
        initialised = False
        if await db.current_revision() is None and await _is_empty(db):
            await db.upgrade()
            initialised = True
        await db.require_current()
        return DatabaseState(
            initialised, await ensure_first_admin(settings, db), await row_security_bypass(db)
        )
    finally:
        await db.dispose()


async def _is_empty(db: Any) -> bool:
    from sqlalchemy import inspect as inspect_schema

    async with db.engine.connect() as conn:
        tables = await conn.run_sync(lambda sync: inspect_schema(sync).get_table_names())
    return not tables


STREAMS_GRACE_SECONDS = 5


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
        # Open streams (SSE, WebSocket) never end on their own: a stop must not wait on them.
        timeout_graceful_shutdown=STREAMS_GRACE_SECONDS,
    )
