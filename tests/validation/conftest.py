"""Fixture projects for the validation tests, written into temporary directories.

They live under pytest's tmp_path (outside the keen checkout), so their own pytest runs never
pick up keen's pyproject or conftest.
"""

from __future__ import annotations

import shutil
import subprocess
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from validation.fixture_projects import copy_project

# ruff's default rule set changes between releases; fixtures pin theirs so counts are stable.
PYPROJECT = """\
[project]
name = "calc"
version = "0.1.0"

[tool.ruff.lint]
select = ["E", "F"]
"""

README = """\
# calc

A tiny calculator library used to exercise keen's validation engine. It adds and multiplies
numbers and keeps no state, which makes it easy to test and easy to reason about.

## Installation

    pip install -e .

## Usage

    from calc import add
    add(1, 2)  # 3

Run the tests with `pytest`.
"""

CALC = '''\
"""Arithmetic helpers."""


def add(a: int, b: int) -> int:
    """Return the sum of a and b."""
    return a + b


def mul(a: int, b: int) -> int:
    """Return the product of a and b."""
    return a * b
'''

PASSING_TESTS = """\
from calc import add, mul


def test_add():
    assert add(1, 2) == 3


def test_mul():
    assert mul(2, 3) == 6
"""

ProjectFactory = Callable[..., Path]


def write_files(root: Path, files: dict[str, str]) -> None:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(content))


def git_init(root: Path) -> None:
    subprocess.run(["git", "init", "-q", str(root)], check=True)


@pytest.fixture
def make_project(tmp_path: Path) -> ProjectFactory:
    """Build a project from {path: content}; `clean=True` starts from a clean Python project."""
    counter = 0

    def make(files: dict[str, str] | None = None, *, clean: bool = False, git: bool = False) -> Path:
        nonlocal counter
        counter += 1
        root = tmp_path / f"project{counter}"
        root.mkdir()
        base = (
            {
                "pyproject.toml": PYPROJECT,
                "README.md": README,
                "calc/__init__.py": CALC,
                "tests/test_calc.py": PASSING_TESTS,
            }
            if clean
            else {}
        )
        write_files(root, {**base, **(files or {})})
        if git:
            git_init(root)
        return root

    return make


# --- the committed fixture projects (tests/validation/projects) ------------------------------

# They are projects of their own, with their own tests: keen's test run must not collect them.
collect_ignore_glob = ["projects/*"]


@pytest.fixture(scope="session")
def npm_project(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str], Path]:
    """`npm_project(name)`: the fixture project with its dependencies installed by npm.

    Installed once per test session (a shared npm cache under pytest's cache keeps it fast);
    the test is skipped, saying why, when the packages cannot be installed.
    """
    installed: dict[str, Path] = {}
    cache = request.config.cache
    npm_cache = cache.mkdir("keen-npm-cache") if cache is not None else tmp_path_factory.mktemp("npm-cache")

    def get(name: str) -> Path:
        if name not in installed:
            npm = shutil.which("npm")
            if npm is None:
                pytest.skip("npm is not installed")
            root = copy_project(name, tmp_path_factory.mktemp("npm") / name)
            argv = [npm, "install", "--no-audit", "--no-fund", "--no-package-lock", "--prefer-offline"]
            try:
                result = subprocess.run(
                    [*argv, "--cache", str(npm_cache)], cwd=root, capture_output=True, text=True, timeout=600
                )
            except subprocess.TimeoutExpired:
                pytest.skip(f"npm install for {name} took over 10 minutes")
            if result.returncode != 0:
                pytest.skip(f"npm install for {name} failed: {(result.stderr or result.stdout)[-500:]}")
            installed[name] = root
        return installed[name]

    return get
