"""The server's signing secret (JWTs, API-key HMACs): `KEEN_SECRET_KEY`, else the one in
`$KEEN_HOME/secret.key`, else a new one written there (mode 0600) on first use.

The file is created atomically and never overwritten: two processes starting together agree on
one secret (the second finds the first's file), and a secret others can read is refused, like
ssh refuses a private key with loose permissions.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from keen.config import Settings
from keen.errors import ConfigError

SECRET_FILE = "secret.key"
MIN_SECRET_LENGTH = 32
GENERATE_HINT = "python -c 'import secrets; print(secrets.token_urlsafe(48))'"


def secret_path(settings: Settings) -> Path:
    return settings.keen_home / SECRET_FILE


def server_secret(settings: Settings) -> str:
    """The secret, creating `secret.key` when neither it nor `KEEN_SECRET_KEY` exists."""
    if settings.keen_secret_key is not None and settings.keen_secret_key.get_secret_value().strip():
        value = settings.keen_secret_key.get_secret_value().strip()
        if len(value) < MIN_SECRET_LENGTH:
            raise ConfigError(
                f"KEEN_SECRET_KEY is too short: use at least {MIN_SECRET_LENGTH} random characters ({GENERATE_HINT})"
            )
        return value
    path = secret_path(settings)
    try:
        return _read(path)
    except FileNotFoundError:
        pass
    settings.ensure_home()
    return _create(path)


def _read(path: Path) -> str:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"{path} can be read by other users: `chmod 600 {path}`")
    value = path.read_text().strip()
    if len(value) < MIN_SECRET_LENGTH:
        raise ConfigError(
            f"{path} holds no usable secret (at least {MIN_SECRET_LENGTH} characters); delete it"
        )
    return value


def _create(path: Path) -> str:
    value = secrets.token_urlsafe(48)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as file:
            os.fchmod(file.fileno(), 0o600)
            file.write(value + "\n")
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(temporary, path)  # fails if another process created it first: use theirs
        except FileExistsError:
            return _read(path)
    finally:
        temporary.unlink(missing_ok=True)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return value
