"""Units of work for the dashboard's handlers, acting for the signed-in user as the API's
`current_user` makes the request's transaction act."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession

from keen.auth import Principal
from keen.server.deps import get_database, origin_of
from keen.store.db import set_acting_user

__all__ = ["acting", "origin_of"]


@asynccontextmanager
async def acting(request: Request, me: Principal) -> AsyncIterator[AsyncSession]:
    """A transaction acting for `me` (committed when the block ends, rolled back on an error)."""
    async with get_database(request).transaction() as session:
        await set_acting_user(session, me.user_id, me.is_admin)
        yield session
