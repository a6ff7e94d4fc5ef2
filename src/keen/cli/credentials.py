"""The server login kept in `$KEEN_HOME/auth.json` (mode 0600, the directory 0700): the server's
URL, the access and refresh tokens and who signed in. Several keen processes share it: a refresh
holds `auth.lock` (an flock) and writes the rotated tokens atomically (a temp file renamed over
the old one), so a reader sees the old file or the new one, never half of either."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

AUTH_FILE = "auth.json"
LOCK_FILE = "auth.lock"
# An access token this close to its expiry is refreshed before it is used.
EXPIRY_MARGIN_SECONDS = 1.0


@dataclass
class Credentials:
    server: str
    access_token: str
    refresh_token: str
    access_expires_at: float  # epoch seconds
    user: dict[str, Any] = field(default_factory=dict)

    def expiring(self, now: float | None = None) -> bool:
        return (now or time.time()) >= self.access_expires_at - EXPIRY_MARGIN_SECONDS

    @classmethod
    def from_tokens(cls, server: str, tokens: dict[str, Any]) -> Credentials:
        """From the body of `POST /auth/login` or `/auth/refresh`."""
        return cls(
            server=server,
            access_token=str(tokens["access_token"]),
            refresh_token=str(tokens["refresh_token"]),
            access_expires_at=time.time() + float(tokens.get("expires_in", 0)),
            user=dict(tokens.get("user") or {}),
        )


def auth_path(home: Path) -> Path:
    return home / AUTH_FILE


def login_client(home: Path) -> Any:
    """The `ServerClient` of the stored login, or None without one; the HTTP client's modules load
    only when there is a login (most local commands have none)."""
    if not auth_path(home).exists():
        return None
    from keen.cli.client import ServerClient

    return ServerClient.from_login(home)


def load(home: Path) -> Credentials | None:
    """The stored login, or None when there is none (or the file is not one keen wrote)."""
    try:
        data = json.loads(auth_path(home).read_text(encoding="utf-8"))
        return Credentials(
            server=str(data["server"]),
            access_token=str(data["access_token"]),
            refresh_token=str(data["refresh_token"]),
            access_expires_at=float(data["access_expires_at"]),
            user=dict(data.get("user") or {}),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def save(home: Path, credentials: Credentials) -> None:
    """Write the login atomically: a 0600 temp file in the same directory renamed over auth.json."""
    _private_dir(home)
    fd, temp = tempfile.mkstemp(prefix=".auth-", suffix=".json", dir=home)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), 0o600)
            json.dump(asdict(credentials), handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, auth_path(home))
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


def delete(home: Path) -> bool:
    """Remove the stored login; True when there was one."""
    try:
        auth_path(home).unlink()
        return True
    except FileNotFoundError:
        return False


@contextlib.contextmanager
def locked(home: Path) -> Iterator[None]:
    """Hold the login's lock (one refresh at a time across processes)."""
    _private_dir(home)
    fd = os.open(home / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _private_dir(home: Path) -> None:
    home.mkdir(parents=True, exist_ok=True)
    os.chmod(home, 0o700)
