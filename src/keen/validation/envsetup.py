"""How to set a project's test environment up, as commands the agent can run (`run_command`).

Worked out from what the project itself declares: its environment manager and lock file, its
test extras or dependency groups, its requirements files, its Node package manager.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pathspec

from keen.validation.pyenv import PythonEnv, manager_of, read_pyproject, table

TEST_NAMES = ("test", "tests", "testing", "dev")
REQUIREMENTS = (
    "requirements-dev.txt",
    "requirements-test.txt",
    "requirements_dev.txt",
    "requirements_test.txt",
    "test-requirements.txt",
    "dev-requirements.txt",
    "requirements/test.txt",
    "requirements/tests.txt",
    "requirements/dev.txt",
    "requirements.txt",
)
_MANAGER_SETUP = {
    "uv": "uv sync",
    "poetry": "poetry install",
    "pdm": "pdm install",
    "hatch": "hatch env create",
}


def python_setup(
    root: Path, used: PythonEnv | None, *, pytest: bool = True, missing: Sequence[str] = ()
) -> list[str]:
    """Commands that give the project an environment its tests can run in.

    `pytest`: the suite needs pytest; `missing`: packages its tests could not import, installed
    by name when the project declares no dependencies of its own.
    """
    manager = manager_of(root)
    if manager is not None and (used is None or used.kind == manager):
        return [_MANAGER_SETUP[manager]]
    steps = []
    venv = used.venv if used is not None and used.venv is not None else None
    if venv is None:
        steps.append("python3 -m venv .venv")
        pip = ".venv/bin/python -m pip install"
    else:
        shown = venv.relative_to(root) if venv.is_relative_to(root) else venv
        pip = f"{shlex.quote(str(shown))}/bin/python -m pip install"
    steps.append(f"{pip} {_install_args(root, pytest, missing)}")
    if manager is not None:
        steps.append(f"(or, with {manager} installed: {_MANAGER_SETUP[manager]})")
    if venv is None and not _ignored_venv(root):
        steps.append("add .venv/ to .gitignore so the environment is not committed")
    return steps


def node_setup(root: Path) -> list[str]:
    """The install command of the project's Node package manager."""
    if (root / "pnpm-lock.yaml").is_file():
        return ["pnpm install --frozen-lockfile"]
    if (root / "yarn.lock").is_file():
        return ["yarn install --frozen-lockfile"]
    if (root / "package-lock.json").is_file():
        return ["npm ci"]
    return ["npm install"]


def _install_args(root: Path, pytest: bool, missing: Sequence[str]) -> str:
    """pip arguments that install the project with its test dependencies."""
    pyproject = read_pyproject(root)
    project = table(pyproject, "project")
    installable = bool(project) or (root / "setup.py").is_file() or (root / "setup.cfg").is_file()
    args: list[str] = []
    brings_tests = False
    if installable:
        extras = _names(project.get("optional-dependencies"))
        groups = _names(pyproject.get("dependency-groups"))
        args.append(f"-e '.[{','.join(extras)}]'" if extras else "-e .")
        args += [f"--group {group}" for group in groups]  # pip 25.1 and later
        brings_tests = bool(extras or groups)
    requirements = next((r for r in REQUIREMENTS if (root / r).is_file()), None)
    if requirements is not None:
        args.append(f"-r {requirements}")
        brings_tests = brings_tests or requirements != "requirements.txt"
    if not brings_tests and pytest:
        args.append("pytest")
    if not installable and requirements is None:
        args += [shlex.quote(name) for name in missing if name not in args]
    return " ".join(args)


def _names(table: Any) -> list[str]:
    """The test-looking keys of an extras or dependency-groups table."""
    if not isinstance(table, dict):
        return []
    return [name for name in table if isinstance(name, str) and name.lower() in TEST_NAMES]


def _ignored_venv(root: Path) -> bool:
    try:
        lines = (root / ".gitignore").read_text(errors="replace").splitlines()
    except OSError:
        return False
    return pathspec.GitIgnoreSpec.from_lines(lines).match_file(".venv/")
