"""Dependencies every route may take: the settings, the database, and a session in a transaction.

The request handler owns the transaction (services never commit): `DbSession` begins one before
the handler runs, commits it when the handler returns and rolls it back when anything raises,
all before the response is sent, so a client never sees a success that was not committed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from keen.config import Settings
from keen.store.db import Database


def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_database(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


async def get_db(request: Request) -> AsyncIterator[AsyncSession]:
    async with get_database(request).session() as session, session.begin():
        yield session


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
DatabaseDep = Annotated[Database, Depends(get_database)]
# scope="function": the commit happens when the handler returns, before the response goes out.
DbSession = Annotated[AsyncSession, Depends(get_db, scope="function")]
