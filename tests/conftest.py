"""Shared fixtures: an isolated KEEN_HOME, temp git repos, scripts, and running `keen` for real."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import git
from keen.config import SECRET_ENV_VARS, reset_settings_cache


@pytest.fixture(autouse=True)
def isolated_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Every test gets its own KEEN_HOME and no provider keys from the developer's environment."""
    home = tmp_path_factory.mktemp("keen-home")
    monkeypatch.setenv("KEEN_HOME", str(home))
    monkeypatch.setenv("KEEN_RETRY_BASE_DELAY", "0.01")
    for name in (*SECRET_ENV_VARS, "KEEN_MODEL", "ANTHROPIC_BASE_URL", "OPENAI_BASE_URL", "KEEN_PRICES_FILE"):
        monkeypatch.delenv(name, raising=False)
    reset_settings_cache()
    yield home
    reset_settings_cache()


@pytest.fixture(params=["bwrap", "fallback"])
def sandbox_kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test with agent commands in bubblewrap, then as where bwrap cannot run (the
    settings point at a bwrap that does not exist, so keen falls back)."""
    if request.param == "bwrap" and shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed")
    if request.param == "fallback":
        monkeypatch.setenv("KEEN_BWRAP", "/nonexistent/bwrap")
        reset_settings_cache()
    return str(request.param)


@pytest.fixture
def keen_home(isolated_env: Path) -> Path:
    return isolated_env


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository with one commit (README.md) on branch main."""
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    (path / "README.md").write_text("# demo\n")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "initial")
    return path
