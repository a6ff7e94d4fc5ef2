"""Finding a project's Python environment the way its developers would, keeping keen's own out of
it, and telling the agent how to set one up."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

from keen.validation.envsetup import node_setup, python_setup
from keen.validation.pyenv import keen_venv, manager_of, python_envs, without_keen_venv
from validation.fixture_projects import make_venv

needs_keen_venv = pytest.mark.skipif(
    sys.prefix == sys.base_prefix, reason="keen is not running from a virtualenv"
)


def executable(path: Path, body: str = "exit 0") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@needs_keen_venv
def test_keens_own_virtualenv_is_taken_out_of_the_tools_environment() -> None:
    own_bin = str(Path(sys.prefix) / "bin")
    env = {
        "VIRTUAL_ENV": sys.prefix,
        "PATH": os.pathsep.join([own_bin, "/usr/local/bin", "/usr/bin"]),
        "HOME": "/h",
    }

    cleaned = without_keen_venv(env)

    assert cleaned == {"PATH": "/usr/local/bin:/usr/bin", "HOME": "/h"}
    assert keen_venv() == Path(sys.prefix).resolve()


def test_another_active_virtualenv_stays(tmp_path: Path) -> None:
    env = {"VIRTUAL_ENV": str(tmp_path / "other"), "PATH": f"{tmp_path / 'other' / 'bin'}:/usr/bin"}

    assert without_keen_venv(env) == env


def test_the_environments_are_tried_in_the_order_developers_use(tmp_path: Path) -> None:
    root = tmp_path / "project"
    root.mkdir()
    tools = tmp_path / "tools"
    executable(tools / "uv")
    executable(tools / "python3")
    env = {"PATH": str(tools)}

    [keen_last_resort] = [e for e in python_envs(root, {"PATH": str(tmp_path / "empty")})]
    assert keen_last_resort.kind == "keen"
    assert keen_last_resort.command == (sys.executable,)
    assert keen_last_resort.env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] == "1"

    assert [e.kind for e in python_envs(root, env)] == ["python3", "keen"]  # the PATH one is a guess
    assert python_envs(root, env)[0].guess

    (root / "uv.lock").write_text("")
    [uv] = python_envs(root, env)
    assert (uv.kind, uv.command) == ("uv", (str(tools / "uv"), "run", "--frozen", "python"))

    venv = make_venv(root / ".venv")
    [dot_venv] = python_envs(root, env)
    assert (dot_venv.kind, dot_venv.command, dot_venv.venv) == (
        ".venv",
        (str(venv / "bin" / "python"),),
        venv,
    )
    assert dot_venv.env["VIRTUAL_ENV"] == str(venv)
    assert dot_venv.env["PATH"].split(os.pathsep)[0] == str(venv / "bin")

    active = make_venv(tmp_path / "active")
    [chosen] = python_envs(root, {**env, "VIRTUAL_ENV": str(active)})
    assert (chosen.kind, chosen.venv) == ("VIRTUAL_ENV", active)


def test_a_managers_environment_needs_the_manager_installed(tmp_path: Path) -> None:
    (tmp_path / "poetry.lock").write_text("")

    assert [e.kind for e in python_envs(tmp_path, {"PATH": str(tmp_path / "none")})][-1] == "keen"
    assert manager_of(tmp_path) == "poetry"


@pytest.mark.parametrize(
    ("files", "manager"),
    [
        ({"uv.lock": ""}, "uv"),
        ({"poetry.lock": ""}, "poetry"),
        ({"pdm.lock": ""}, "pdm"),
        ({"pyproject.toml": "[tool.pdm.dev-dependencies]\ntest = ['pytest']\n"}, "pdm"),
        ({"hatch.toml": ""}, "hatch"),
        ({"pyproject.toml": "[tool.hatch.envs.default]\ndependencies = ['pytest']\n"}, "hatch"),
        ({"pyproject.toml": "[tool.hatch.build.targets.wheel]\npackages = ['src/x']\n"}, None),
        ({"pyproject.toml": "tool = 3\n"}, None),
        ({"pyproject.toml": "not toml at all ["}, None),
    ],
)
def test_the_projects_environment_manager(tmp_path: Path, files: dict[str, str], manager: str | None) -> None:
    for name, content in files.items():
        (tmp_path / name).write_text(content)

    assert manager_of(tmp_path) == manager


@pytest.mark.parametrize(
    ("files", "install"),
    [
        (
            {
                "pyproject.toml": "[project]\nname='x'\n[project.optional-dependencies]\ntests=['pytest']\ndocs=['s']\n"
            },
            ".venv/bin/python -m pip install -e '.[tests]'",
        ),
        (
            {"pyproject.toml": "[project]\nname='x'\n[dependency-groups]\ntest=['pytest']\n"},
            ".venv/bin/python -m pip install -e . --group test",
        ),
        ({"pyproject.toml": "[project]\nname='x'\n"}, ".venv/bin/python -m pip install -e . pytest"),
        ({"requirements-dev.txt": "pytest\n"}, ".venv/bin/python -m pip install -r requirements-dev.txt"),
        ({"requirements.txt": "flask\n"}, ".venv/bin/python -m pip install -r requirements.txt pytest"),
        ({"test_x.py": ""}, ".venv/bin/python -m pip install pytest"),
    ],
)
def test_setting_up_a_python_environment(tmp_path: Path, files: dict[str, str], install: str) -> None:
    for name, content in files.items():
        (tmp_path / name).write_text(content)

    assert python_setup(tmp_path, None) == [
        "python3 -m venv .venv",
        install,
        "add .venv/ to .gitignore so the environment is not committed",
    ]


def test_setting_up_names_the_existing_venv_and_the_manager(tmp_path: Path) -> None:
    (tmp_path / ".gitignore").write_text(".venv/\n")
    (tmp_path / "uv.lock").write_text("")
    venv = make_venv(tmp_path / ".venv")
    [used] = python_envs(tmp_path, {"PATH": ""})

    assert python_setup(tmp_path, used) == [
        ".venv/bin/python -m pip install pytest",
        "(or, with uv installed: uv sync)",
    ]
    assert python_setup(tmp_path, None) == ["uv sync"]
    assert used.venv == venv


@pytest.mark.parametrize(
    ("lock", "command"),
    [
        (None, "npm install"),
        ("package-lock.json", "npm ci"),
        ("yarn.lock", "yarn install --frozen-lockfile"),
        ("pnpm-lock.yaml", "pnpm install --frozen-lockfile"),
    ],
)
def test_setting_up_node_modules_with_the_projects_package_manager(
    tmp_path: Path, lock: str | None, command: str
) -> None:
    if lock:
        (tmp_path / lock).write_text("")

    assert node_setup(tmp_path) == [command]
