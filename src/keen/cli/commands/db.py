"""`keen db upgrade` and `keen db status`: the configured database against this keen's schema."""

from __future__ import annotations

import asyncio

from keen.cli.common import EXIT_NOT_COMPLETED, EXIT_OK, guarded, print_json, settings_or_fail, stdout_console


async def _revisions(upgrade: bool) -> tuple[str | None, str | None]:
    """(revision before, revision after) of the configured database, upgrading it if asked."""
    from keen.store import Database

    settings = settings_or_fail()
    if settings.keen_database_url is None:
        settings.ensure_home()
    db = Database(settings.database_url)
    try:
        before = await db.current_revision()
        if upgrade:
            await db.upgrade()
        return before, await db.current_revision()
    finally:
        await db.dispose()


def upgrade_command() -> int:
    def body() -> int:
        before, after = asyncio.run(_revisions(upgrade=True))
        if before == after:
            stdout_console().print(f"database schema is at revision {after} (already current)")
        else:
            stdout_console().print(f"database schema is at revision {after} (was {before or 'empty'})")
        return EXIT_OK

    return guarded(body)


def status_command(*, as_json: bool) -> int:
    """The database's revision and this keen's; exit code 1 when the database is behind."""

    def body() -> int:
        from keen.store.db import HEAD_REVISION

        current, _ = asyncio.run(_revisions(upgrade=False))
        up_to_date = current == HEAD_REVISION
        if as_json:
            print_json({"current": current, "head": HEAD_REVISION, "up_to_date": up_to_date})
        else:
            state = "up to date" if up_to_date else "behind: run `keen db upgrade`"
            stdout_console().print(
                f"current revision: {current or 'none'}\nhead revision:    {HEAD_REVISION}\n{state}"
            )
        return EXIT_OK if up_to_date else EXIT_NOT_COMPLETED

    return guarded(body)
