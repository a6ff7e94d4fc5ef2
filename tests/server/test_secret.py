"""The server secret: KEEN_SECRET_KEY, else `$KEEN_HOME/secret.key`, else one generated there
with mode 0600; concurrent first starts agree on one secret."""

from __future__ import annotations

import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from keen.config import Settings
from keen.errors import ConfigError
from keen.server.secret import server_secret


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_secret_is_generated_once_with_mode_0600(keen_home: Path) -> None:
    settings = Settings(KEEN_HOME=keen_home / "fresh")
    first = server_secret(settings)
    path = keen_home / "fresh" / "secret.key"
    assert mode(path) == 0o600
    assert len(first) >= 48 and path.read_text().strip() == first
    assert server_secret(settings) == first
    assert [p.name for p in path.parent.iterdir()] == ["secret.key"]  # no temporary file left


def test_the_configured_secret_wins_and_no_file_is_written(keen_home: Path) -> None:
    settings = Settings(KEEN_HOME=keen_home, KEEN_SECRET_KEY="k" * 40)
    assert server_secret(settings) == "k" * 40
    assert not (keen_home / "secret.key").exists()


def test_a_short_configured_secret_is_refused(keen_home: Path) -> None:
    with pytest.raises(ConfigError, match="KEEN_SECRET_KEY is too short"):
        server_secret(Settings(KEEN_HOME=keen_home, KEEN_SECRET_KEY="short"))


def test_a_secret_file_others_can_read_is_refused(keen_home: Path) -> None:
    path = keen_home / "secret.key"
    path.write_text("s" * 64)
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        server_secret(Settings(KEEN_HOME=keen_home))


def test_concurrent_first_starts_agree_on_one_secret(keen_home: Path) -> None:
    settings = Settings(KEEN_HOME=keen_home / "race")
    with ThreadPoolExecutor(8) as pool:
        secrets = set(pool.map(lambda _: server_secret(settings), range(16)))
    assert len(secrets) == 1
    assert (keen_home / "race" / "secret.key").read_text().strip() in secrets
