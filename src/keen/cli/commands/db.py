"""`keen db upgrade`: bring the configured database to this keen's schema."""

from __future__ import annotations

import asyncio

from keen.cli.common import EXIT_OK, guarded, settings_or_fail, stdout_console


def upgrade_command() -> int:
    async def upgrade() -> str:
        from keen.store import Database
        from keen.store.db import HEAD_REVISION

        settings = settings_or_fail()
        if settings.keen_database_url is None:
            settings.ensure_home()
        db = Database(settings.database_url)
        try:
            await db.upgrade()
        finally:
            await db.dispose()
        return HEAD_REVISION

    def body() -> int:
        revision = asyncio.run(upgrade())
        stdout_console().print(f"database schema is at revision {revision}")
        return EXIT_OK

    return guarded(body)
