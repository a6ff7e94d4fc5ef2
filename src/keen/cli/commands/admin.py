"""`keen admin create-user` and `keen admin audit verify`, on the configured database.

A local SQLite file is brought to this keen's schema first (as any local command does); a shared
database must already be current (`keen db upgrade`).
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from keen.cli.common import EXIT_NOT_COMPLETED, EXIT_OK, guarded, print_json, settings_or_fail, stdout_console
from keen.errors import InputError


def create_user_command(
    *,
    email: str,
    admin: bool,
    password_stdin: bool,
    username: str | None,
    display_name: str | None,
    as_json: bool,
) -> int:
    def body() -> int:
        settings = settings_or_fail()
        password = _password(password_stdin)
        user = asyncio.run(_create_user(settings, email, password, admin, username, display_name))
        if as_json:
            print_json({"id": user.id, "email": user.email, "username": user.username, "role": user.role})
        else:
            stdout_console().print(
                f"created {user.role} {user.email} (username {user.username}, id {user.id})"
            )
        return EXIT_OK

    return guarded(body)


def audit_verify_command(*, as_json: bool) -> int:
    def body() -> int:
        settings = settings_or_fail()
        report = asyncio.run(_verify(settings))
        if as_json:
            print_json({"intact": report.intact, "entries": report.entries, "first_bad": report.first_bad})
        else:
            stdout_console().print(report.describe(), soft_wrap=True)
        return EXIT_OK if report.intact else EXIT_NOT_COMPLETED

    return guarded(body)


def _password(from_stdin: bool) -> str:
    """From stdin (one line; the newline is not part of it), or asked twice without echo."""
    if from_stdin:
        return sys.stdin.read().removesuffix("\n").removesuffix("\r")
    if not sys.stdin.isatty():
        raise InputError("no terminal to ask for the password on: pass it on stdin with --password-stdin")
    import typer

    value: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True, err=True)
    return value


async def _open(settings: Any) -> Any:
    from keen.store.db import open_database

    if settings.keen_database_url is None:
        settings.ensure_home()
    return await open_database(settings.database_url)


async def _create_user(
    settings: Any, email: str, password: str, admin: bool, username: str | None, display_name: str | None
) -> Any:
    from keen.audit import Origin
    from keen.auth.accounts import NewUser, create_user
    from keen.auth.bootstrap import FIRST_ADMIN_ROLE
    from keen.auth.passwords import Passwords
    from keen.store.db import set_acting_user

    new = NewUser(
        email=email,
        password=password,
        username=username,
        display_name=display_name,
        role=FIRST_ADMIN_ROLE if admin else "user",
    )
    db = await _open(settings)
    try:
        async with db.transaction() as session:
            await set_acting_user(session, None, True)
            return await create_user(
                session, Passwords.from_settings(settings), new, actor="cli", origin=Origin()
            )
    finally:
        await db.dispose()


async def _verify(settings: Any) -> Any:
    from keen.audit import verify
    from keen.store.db import set_acting_user

    db = await _open(settings)
    try:
        async with db.session() as session:  # reads only: no write lock taken
            await set_acting_user(session, None, True)
            return await verify(session)
    finally:
        await db.dispose()
