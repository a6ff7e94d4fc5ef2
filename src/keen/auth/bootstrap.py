"""The first admin: from KEEN_ADMIN_EMAIL and KEEN_ADMIN_PASSWORD when no admin exists yet.

No password is ever a default: without both settings nothing is created, and the server says how
to create one (`keen admin create-user --admin`).
"""

from __future__ import annotations

from keen.audit import Origin
from keen.auth.accounts import NewUser, admin_exists, create_user
from keen.auth.passwords import Passwords
from keen.config import Settings
from keen.errors import ConfigError, InputError
from keen.store.db import Database, set_acting_user

FIRST_ADMIN_ROLE = "super_admin"
HOW_TO_CREATE = (
    "no admin exists: set KEEN_ADMIN_EMAIL and KEEN_ADMIN_PASSWORD, "
    "or run `keen admin create-user --email EMAIL --admin`"
)


async def ensure_first_admin(settings: Settings, db: Database) -> bool:
    """Create the first admin from the settings when there is none; returns whether an admin
    exists now (False: the server should say how to create one, HOW_TO_CREATE)."""
    email = settings.keen_admin_email
    password = settings.keen_admin_password.get_secret_value() if settings.keen_admin_password else None
    if bool(email) != bool(password):
        raise ConfigError("KEEN_ADMIN_EMAIL and KEEN_ADMIN_PASSWORD are set together (one is missing)")
    async with db.transaction() as session:
        await set_acting_user(session, None, True)
        if await admin_exists(session):
            return True
        if not email or not password:
            return False
        new = NewUser(email=email, password=password, role=FIRST_ADMIN_ROLE)
        try:
            await create_user(
                session, Passwords.from_settings(settings), new, actor="system", origin=Origin()
            )
        except InputError as exc:
            setting = "KEEN_ADMIN_PASSWORD" if exc.details.get("field") == "password" else "KEEN_ADMIN_EMAIL"
            raise ConfigError(f"{setting}: {exc.message}") from None
        return True
