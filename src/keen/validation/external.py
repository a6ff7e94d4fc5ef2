"""Finding and running the external tools validation uses (ruff, pytest, node, npm, tsc, eslint).

Every tool runs in keen's sandbox (`keen.tools.sandbox`: no stdin, timeout, nothing outlives it),
with keen's own secrets removed from the environment (a project's test suite is untrusted code)
and keen's own virtualenv out of sight (`keen.validation.pyenv`).
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from keen.proc import ProcessResult
from keen.validation.pyenv import without_keen_venv


class ToolUnavailable(Exception):
    """The tool a check needs is not installed; the check is skipped with this reason."""


class ToolFailed(Exception):
    """The tool ran but produced no usable result (crash, bad configuration)."""


def tool_env() -> dict[str, str]:
    """The environment for external tools: keen's secrets removed, output kept plain."""
    from keen.secrets import scrubbed_env  # the one place that decides what is secret

    env = without_keen_venv(scrubbed_env())
    # Options of an enclosing pytest run must not leak into the project's own test run.
    for name in ("PYTEST_ADDOPTS", "PYTEST_PLUGINS", "PYTEST_CURRENT_TEST"):
        env.pop(name, None)
    env["NO_COLOR"] = "1"
    env.pop("FORCE_COLOR", None)
    return env


def find_ruff() -> str | None:
    """ruff installed next to the running interpreter (keen's dependency) first, then PATH."""
    beside = Path(sys.executable).parent / "ruff"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("ruff")


def tool_cache(tool: str) -> Path | None:
    """A cache folder of keen's for `tool`, outside every workspace; None when none can be made.

    Tools that cache (ruff) stay as fast as when a developer runs them, and leave nothing in the
    project. Under the user's cache home (XDG), never under `$KEEN_HOME`, which holds secrets.
    """
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    folder = base / "keen" / tool
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError:
        return None
    return folder


def find_node_tool(root: Path, name: str) -> str | None:
    """A Node tool from the project's `node_modules/.bin`, else from PATH."""
    local = root / "node_modules" / ".bin" / name
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    return shutil.which(name)


async def run_tool(
    argv: Sequence[str],
    *,
    cwd: Path,
    timeout: float,
    env: Mapping[str, str] | None = None,
    writable: Sequence[Path] = (),
) -> ProcessResult:
    """Run a tool in the sandbox, `cwd` and `writable` (report directories) read-write; a missing
    program becomes `ToolUnavailable` naming it."""
    from keen.tools.sandbox import Sandbox, policy_from_settings

    sandbox = Sandbox(policy_from_settings())  # a fresh home per run: nothing shared between runs
    try:
        return await sandbox.run(
            argv,
            workspace=cwd,
            timeout=timeout,
            env=env if env is not None else tool_env(),
            writable=writable,
        )
    except FileNotFoundError as exc:
        raise ToolUnavailable(f"{Path(argv[0]).name} is not installed") from exc


def tail(text: str, lines: int = 15) -> str:
    """The last lines of a tool's output, for a reason string when it gave nothing usable."""
    return "\n".join(text.strip().splitlines()[-lines:])
