"""The Python environment a project's own developers would run its tests and tools in.

Found in the order they would reach for it: an active `VIRTUAL_ENV`, the project's `.venv` or
`venv`, `uv run` for a `uv.lock`, `poetry run` for a `poetry.lock`, `pdm run` and `hatch run`
for PDM and Hatch projects (each only when its tool is installed), else the `python3` on
`PATH`. keen's own interpreter comes last, and only with pytest's plugin autoloading off, so
none of keen's own pytest plugins ever loads into a project's run.

keen's own virtualenv is never the project's: when keen runs from a virtualenv, that
virtualenv's `bin` is taken off the `PATH` the project's tools see, and a `VIRTUAL_ENV` naming
it is dropped (it is how keen was started, not how the project is run).
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROJECT_VENVS = (".venv", "venv")


@dataclass(frozen=True)
class PythonEnv:
    """One environment: how to start its Python, and the variables its processes get."""

    kind: str  # VIRTUAL_ENV, .venv, venv, uv, poetry, pdm, hatch, python3, keen
    command: tuple[str, ...]  # argv that starts the environment's python
    description: str
    env: Mapping[str, str] = field(repr=False)
    # A guess rather than the project's declared environment: passed over when it has no pytest.
    guess: bool = False
    venv: Path | None = None  # its directory, when known without running anything

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "description": self.description, "command": shlex.join(self.command)}


def keen_venv() -> Path | None:
    """The virtualenv keen itself runs from, if any."""
    if sys.prefix == sys.base_prefix:
        return None
    return Path(sys.prefix).resolve()


def without_keen_venv(env: Mapping[str, str]) -> dict[str, str]:
    """`env` with keen's own virtualenv taken out of `PATH` and `VIRTUAL_ENV`."""
    out = dict(env)
    own = keen_venv()
    if own is None:
        return out
    if _same_dir(out.get("VIRTUAL_ENV"), own):
        del out["VIRTUAL_ENV"]
    own_bin = own / "bin"
    entries = out.get("PATH", "").split(os.pathsep)
    out["PATH"] = os.pathsep.join(p for p in entries if p and not _same_dir(p, own_bin))
    return out


def find_program(name: str, env: Mapping[str, str]) -> str | None:
    """`name` on the tools' `PATH`, else next to keen's interpreter (tools keen depends on)."""
    found = shutil.which(name, path=env.get("PATH", ""))
    if found:
        return found
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.is_file() and os.access(beside, os.X_OK) else None


def project_venv(root: Path, env: Mapping[str, str]) -> Path | None:
    """The project's virtualenv when one is known without running anything."""
    active = env.get("VIRTUAL_ENV")
    if active and _python_in(Path(active)):
        return Path(active)
    for name in PROJECT_VENVS:
        if _python_in(root / name):
            return root / name
    return None


def python_envs(root: Path, env: Mapping[str, str]) -> list[PythonEnv]:
    """The candidates in order: the first one that is not a guess ends the list."""
    venv = project_venv(root, env)
    if venv is not None:
        kind = "VIRTUAL_ENV" if venv.parent != root else venv.name
        where = f"the active virtualenv {venv}" if kind == "VIRTUAL_ENV" else f"the project's {kind}"
        return [PythonEnv(kind, (str(_python_in(venv)),), where, venv_env(venv, env), venv=venv)]
    managed = _managed_env(root, env)
    if managed is not None:
        return [managed]
    plain = _without_virtual_env(env)
    candidates = []
    python3 = shutil.which("python3", path=plain.get("PATH", ""))
    if python3 and not _is_keens_interpreter(python3):
        candidates.append(
            PythonEnv("python3", (python3,), f"the python3 on PATH ({python3})", plain, guess=True)
        )
    own = {**plain, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    candidates.append(
        PythonEnv(
            "keen",
            (sys.executable,),
            f"keen's own interpreter ({sys.executable}, plugin autoloading off)",
            own,
        )
    )
    return candidates


def venv_env(venv: Path, env: Mapping[str, str]) -> dict[str, str]:
    """The variables `activate` would set for `venv`."""
    out = dict(env)
    out["VIRTUAL_ENV"] = str(venv)
    out["PATH"] = os.pathsep.join(p for p in (str(venv / "bin"), env.get("PATH", "")) if p)
    out.pop("PYTHONHOME", None)
    return out


def read_pyproject(root: Path) -> dict[str, Any]:
    """The project's pyproject.toml as a dict ({} when missing or unreadable)."""
    try:
        return tomllib.loads((root / "pyproject.toml").read_text())
    except (OSError, ValueError):
        return {}


def manager_of(root: Path) -> str | None:
    """Which environment manager the project declares: uv, poetry, pdm, hatch or None."""
    if (root / "uv.lock").is_file():
        return "uv"
    if (root / "poetry.lock").is_file():
        return "poetry"
    tool = table(read_pyproject(root), "tool")
    if (root / "pdm.lock").is_file() or "dev-dependencies" in table(tool, "pdm"):
        return "pdm"
    # [tool.hatch.build] alone is only the build backend's configuration, not Hatch's environments.
    if (root / "hatch.toml").is_file() or "envs" in table(tool, "hatch"):
        return "hatch"
    return None


def table(data: dict[str, Any], key: str) -> dict[str, Any]:
    """`data[key]` when it is a TOML table, else {} (a malformed file must not crash anything)."""
    value = data.get(key)
    return value if isinstance(value, dict) else {}


# How each manager starts a command in the project's environment. `uv run --frozen` syncs the
# environment from the lock file as it is, never rewriting uv.lock.
_MANAGER_RUN: dict[str, tuple[str, ...]] = {
    "uv": ("run", "--frozen", "python"),
    "poetry": ("run", "python"),
    "pdm": ("run", "python"),
    "hatch": ("run", "python"),
}


def _managed_env(root: Path, env: Mapping[str, str]) -> PythonEnv | None:
    manager = manager_of(root)
    if manager is None:
        return None
    program = find_program(manager, env)
    if program is None:
        return None
    plain = _without_virtual_env(env)
    plain.pop("PYTHONHOME", None)
    command = (program, *_MANAGER_RUN[manager])
    return PythonEnv(manager, command, f"the project's {manager} environment ({manager} run)", plain)


def _without_virtual_env(env: Mapping[str, str]) -> dict[str, str]:
    # An unrelated VIRTUAL_ENV would otherwise be taken up by the managers and by site.
    return {k: v for k, v in env.items() if k != "VIRTUAL_ENV"}


def _python_in(venv: Path) -> Path | None:
    for name in ("python", "python3"):
        candidate = venv / "bin" / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def _is_keens_interpreter(python: str) -> bool:
    """True when `python` starts keen's own environment (keen installed outside a virtualenv)."""
    if keen_venv() is not None:
        return False  # the binary may be shared, but keen's environment is its virtualenv
    return os.path.realpath(python) == os.path.realpath(sys.executable)


def _same_dir(path: str | None, other: Path) -> bool:
    if not path:
        return False
    try:
        return Path(path).resolve() == other
    except OSError:
        return False
