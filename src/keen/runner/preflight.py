"""Configuration checks made before a command does anything.

Every problem is a `ConfigError` naming the setting (secrets masked), found before a session, a
folder or a database file exists: `KEEN_HOME` must be a usable directory and the database must
be one keen can reach. `keen status` lists every problem instead of stopping at the first.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from keen.config import Settings
from keen.errors import ConfigError

DATABASE_CONNECT_TIMEOUT_SECONDS = 5
DATABASE_BACKENDS = ("sqlite", "postgresql")


def check_configuration(settings: Settings) -> None:
    """Raise the first configuration problem; a command calls this before it does anything."""
    check_home(settings)
    check_database(settings)


def configuration_problems(settings: Settings, model: str | None) -> list[str]:
    """Every problem a run with `model` would meet (no model: the home and the database), each
    one line (for `keen status`)."""
    from keen.llm.factory import check_model_config

    problems: list[str] = []
    checks: list[Callable[[Settings], object]] = [check_home, check_database]
    if model is not None:
        checks.append(lambda s: check_model_config(model, s))
    for check in checks:
        try:
            check(settings)
        except ConfigError as exc:
            problems.append(exc.message)
    return problems


def check_home(settings: Settings) -> None:
    """`KEEN_HOME` is a writable directory, or can be created (nothing is created here)."""
    home = settings.keen_home
    if home.exists():
        if not home.is_dir():
            raise ConfigError(f"KEEN_HOME {home} is not a directory; point KEEN_HOME at a folder")
        if not os.access(home, os.W_OK | os.X_OK):
            raise ConfigError(f"KEEN_HOME {home} is not writable")
        return
    ancestor = _nearest_existing(home)
    if not ancestor.is_dir():
        raise ConfigError(f"KEEN_HOME {home} cannot be created: {ancestor} is not a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise ConfigError(f"KEEN_HOME {home} cannot be created: {ancestor} is not writable")


def check_database(settings: Settings) -> None:
    """`KEEN_DATABASE_URL` is a URL keen supports and, for a server database, it answers."""
    if settings.keen_database_url is None:
        return  # the SQLite file in KEEN_HOME (checked by `check_home`)
    from sqlalchemy.engine import make_url

    raw = settings.keen_database_url.get_secret_value()
    try:
        url = make_url(raw)
    except Exception:  # sqlalchemy raises ArgumentError and ValueError; their text repeats the URL
        raise ConfigError(
            "KEEN_DATABASE_URL is not a database URL (expected e.g. postgresql://user:password@host/db)"
        ) from None
    shown = masked_url(raw)
    backend = url.get_backend_name()
    if backend not in DATABASE_BACKENDS:
        raise ConfigError(
            f"KEEN_DATABASE_URL {shown}: keen supports {' and '.join(DATABASE_BACKENDS)}, not {backend}"
        )
    if backend == "sqlite":
        _check_sqlite_file(url.database, shown)
        return
    _check_reachable(raw, shown, url.password)


def masked_url(raw: str) -> str:
    """The database URL with its password hidden, for messages."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(raw).render_as_string(hide_password=True)
    except Exception:
        return "(unparseable URL)"


def _check_sqlite_file(database: str | None, shown: str) -> None:
    if not database or database == ":memory:":
        return
    path = Path(database).expanduser()
    if path.exists() and not path.is_file():
        raise ConfigError(f"KEEN_DATABASE_URL {shown}: {path} is not a file")
    folder = _nearest_existing(path.parent)
    if not folder.is_dir():
        raise ConfigError(f"KEEN_DATABASE_URL {shown}: {folder} is not a directory")


def _check_reachable(raw: str, shown: str, password: str | None) -> None:
    from sqlalchemy import create_engine, text

    from keen.store.db import sync_url

    try:
        engine = create_engine(
            sync_url(raw), connect_args={"connect_timeout": DATABASE_CONNECT_TIMEOUT_SECONDS}
        )
    except ImportError:
        raise ConfigError(
            f"KEEN_DATABASE_URL {shown} needs the PostgreSQL driver: pip install 'keens[postgres]'"
        ) from None
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # the driver's errors differ; each means the database cannot be used
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        detail = reason[0] if reason else type(exc).__name__
        if password:
            detail = detail.replace(password, "***")
        raise ConfigError(f"cannot connect to the database {shown} (KEEN_DATABASE_URL): {detail}") from None
    finally:
        engine.dispose()


def _nearest_existing(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path
