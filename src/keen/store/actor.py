"""Who is acting on the store: every repository query is filtered by this (admins excepted)."""

from __future__ import annotations

from dataclasses import dataclass

LOCAL_USER_ID = "local"  # local mode has no accounts: one fixed owner for every session


@dataclass(frozen=True)
class Actor:
    user_id: str
    is_admin: bool = False


LOCAL_ACTOR = Actor(LOCAL_USER_ID)
# keen's own machinery (the runner recording a session it runs) sees the rows it works on.
SYSTEM_ACTOR = Actor("system", is_admin=True)
