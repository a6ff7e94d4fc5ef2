"""The README's newcomer command, run verbatim in a copy of this checkout with a brand-new venv."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PYTEST_PART = "python -m pytest -q -n auto"
INSTALL_TIMEOUT = 900  # a fresh venv installs every dependency: minutes on a busy machine


def readme_commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    return [
        line.strip()
        for block in blocks
        for line in block.splitlines()
        if line.strip() and not line.startswith("#")
    ]


def _fresh_checkout(tmp_path: Path) -> Path:
    """A copy of this checkout's files (no venv, no caches), as a new user has it."""
    checkout = tmp_path / "keen"
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    for name in files.stdout.splitlines():
        source = ROOT / name
        if source.is_file():
            target = checkout / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return checkout


def _new_shell_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a new shell: no virtual environment active."""
    env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "PYTHONPATH"}}
    env["PATH"] = os.pathsep.join(
        p for p in env["PATH"].split(os.pathsep) if "/.venv/" not in p and "ci-venv" not in p
    )
    env["KEEN_HOME"] = str(tmp_path / "home")
    env["NO_COLOR"] = "1"
    return env


@pytest.mark.slow
@pytest.mark.timeout(INSTALL_TIMEOUT)
def test_readme_install_and_run_command_works_in_a_fresh_venv(tmp_path: Path) -> None:
    install_and_run = next(c for c in readme_commands() if "keen breathe" in c and "pip install" in c)
    checkout = _fresh_checkout(tmp_path)
    env = _new_shell_env(tmp_path)
    result = subprocess.run(
        ["bash", "-c", install_and_run],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (checkout / "demo" / "fizzbuzz.py").is_file()
    assert "completed" in result.stdout and "scripted" in result.stdout
    log = subprocess.run(
        ["git", "log", "--format=%s", "-n", "1"], cwd=checkout / "demo", capture_output=True, text=True
    )
    assert log.stdout.startswith("keen: Added fizzbuzz.py")


def test_readme_test_command_is_the_one_ci_runs() -> None:
    test_command = next(c for c in readme_commands() if "pytest" in c)
    assert PYTEST_PART in test_command
    assert PYTEST_PART in (ROOT / ".ci" / "run").read_text()


@pytest.mark.slow
@pytest.mark.timeout(INSTALL_TIMEOUT)
def test_readme_test_command_works_on_its_own_in_a_new_shell(tmp_path: Path) -> None:
    """It makes and activates the venv it needs; only its test run is narrowed here (the whole
    suite would run itself)."""
    test_command = next(c for c in readme_commands() if "pytest" in c)
    assert test_command.endswith(PYTEST_PART)
    narrowed = test_command.removesuffix(PYTEST_PART) + f"{PYTEST_PART} tests/e2e/test_readme.py -k exactly"
    checkout = _fresh_checkout(tmp_path)
    result = subprocess.run(
        ["bash", "-c", narrowed],
        cwd=checkout,
        env=_new_shell_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "1 passed" in result.stdout.replace("\n", " ")
    assert (checkout / ".venv" / "bin" / "keen").is_file()


def test_ci_runs_exactly_the_readme_test_commands_pytest_part() -> None:
    test_command = next(c for c in readme_commands() if "pytest" in c)
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert test_command.endswith(PYTEST_PART) and PYTEST_PART in ci
