"""pytest, run in the project's own Python environment (`keen.validation.pyenv`); unittest
(`keen.validation.unittest_runner`) for suites that need no pytest where there is none.

pytest starts through a small bootstrap in the environment's interpreter: it records where it
runs (interpreter, Python and pytest versions), and starts pytest exactly as `python -m pytest`
would, in the same process. One process per run: an environment manager (`uv run`, `poetry
run`) is started once, and "is pytest installed here" costs nothing extra.

The verdict comes from pytest's exit code and its JUnit XML report. pytest's exit codes: 0 all
passed, 1 some failed, 2 interrupted (collection errors stop the run), 3 internal error, 4
usage error (command line or configuration), 5 no tests collected.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from keen.proc import ProcessResult
from keen.validation.context import CheckContext
from keen.validation.detect import PYTHON_SUFFIXES
from keen.validation.envsetup import python_setup
from keen.validation.external import ToolUnavailable, run_tool, tail
from keen.validation.pyenv import PythonEnv, python_envs
from keen.validation.suite import SuiteRun, missing_dependencies, missing_summary
from keen.validation.testreports import CaseCounts, exception_line, parse_junit, read_json
from keen.validation.unittest_runner import run_unittest, unittest_only

NO_PYTEST = 97  # the bootstrap's exit code when the environment has no pytest
EXIT_INTERNAL_ERROR, EXIT_USAGE_ERROR, EXIT_NO_TESTS = 3, 4, 5

# Run as `python -c BOOTSTRAP INFO_FILE PYTEST_ARGS...`. Kept to syntax every Python 3 knows.
BOOTSTRAP = f"""\
import json, os, sys
info = {{"python": sys.executable, "prefix": sys.prefix, "version": "%d.%d.%d" % sys.version_info[:3]}}
try:
    import pytest
    info["pytest"] = pytest.__version__
except Exception as exc:
    info["no_pytest"] = "%s: %s" % (type(exc).__name__, exc)
with open(sys.argv[1], "w") as out:
    json.dump(info, out)
if "no_pytest" in info:
    sys.exit({NO_PYTEST})
if sys.path and sys.path[0] == "":
    sys.path[0] = os.getcwd()  # what `python -m` puts first
sys.argv = ["pytest"] + sys.argv[2:]
import runpy
runpy.run_module("pytest", run_name="__main__", alter_sys=True)
"""


def python_test_files(ctx: CheckContext) -> list[str]:
    """pytest's default test file patterns, over the whole project (scope does not apply)."""
    return [
        f
        for f in ctx.project.with_suffix(PYTHON_SUFFIXES, scoped=False)
        if (name := Path(f).name).startswith("test_") or name.endswith("_test.py")
    ]


async def run_pytest(ctx: CheckContext) -> SuiteRun | None:
    """The project's Python suite in the first of its environments that can run it.

    With no pytest in any of them, a suite written for unittest alone runs with unittest in the
    project's environment; one that needs pytest could not run.
    """
    test_files = python_test_files(ctx)
    if not test_files:
        return None
    candidates = python_envs(ctx.root, ctx.env)
    run = None
    for env in candidates:  # the last one is never a guess
        run = await _run_in(ctx, env)
        # A guessed interpreter (the python3 on PATH) without pytest is not the project's.
        if not (env.guess and run.could_not_run and "pytest" not in run.environment):
            break
    no_pytest = run is not None and run.could_not_run is not None and "pytest" not in run.environment
    if no_pytest and unittest_only(ctx, test_files):
        return await run_unittest(ctx, candidates[0]) or run
    return run


async def _run_in(ctx: CheckContext, env: PythonEnv) -> SuiteRun:
    with tempfile.TemporaryDirectory(prefix="keen-pytest-") as tmp:
        info_file, report = Path(tmp) / "env.json", Path(tmp) / "junit.xml"
        argv = [*env.command, "-c", BOOTSTRAP, str(info_file)]
        argv += ["-q", "--color=no", "--rootdir", str(ctx.root)]
        argv += ["-p", "no:cacheprovider"]  # leave no .pytest_cache in the workspace
        argv += [f"--junitxml={report}", "-o", "junit_family=xunit1"]  # xunit1 adds file and line
        process_env = {**env.env, "PYTHONDONTWRITEBYTECODE": "1"}  # no __pycache__ left behind
        try:
            result = await run_tool(
                argv, cwd=ctx.root, timeout=ctx.timeouts.tests, env=process_env, writable=[Path(tmp)]
            )
        except ToolUnavailable:
            result = ProcessResult(127, "", f"{env.command[0]} could not be started", 0)
        info = read_json(info_file) or {}
        counts = parse_junit(report)
    run = SuiteRun("pytest", counts or CaseCounts(), result.duration_ms, ok=result.ok)
    run.environment = {**env.to_dict(), **{k: info[k] for k in ("python", "version", "pytest") if k in info}}
    return _judge(ctx, env, run, result, info, counts)


def _judge(
    ctx: CheckContext,
    env: PythonEnv,
    run: SuiteRun,
    result: ProcessResult,
    info: dict[str, Any],
    counts: CaseCounts | None,
) -> SuiteRun:
    output = result.stdout + result.stderr
    if result.timed_out:
        run.timed_out = True
        run.problem = f"pytest timed out after {ctx.timeouts.tests:g} s; its processes were killed"
        return run
    if not info:
        run.setup = python_setup(ctx.root, env)
        reason = f"pytest: {env.description} could not be started (exit {result.exit_code})"
        return run.blocked(reason, first_error(output))
    if "no_pytest" in info:
        run.setup = python_setup(ctx.root, env)
        return run.blocked(f"pytest is not installed for {info['python']}", info["no_pytest"])
    if result.exit_code == EXIT_NO_TESTS:
        run.has_tests, run.ok = False, True
        return run
    if missing := missing_dependencies(counts or CaseCounts()):
        run.setup = python_setup(ctx.root, env, missing=[f.missing for f in missing if f.missing])
        return run.blocked(missing_summary("pytest", missing, env.description), missing[0].message)
    ran = counts is not None and counts.total > 0
    if result.exit_code in (EXIT_INTERNAL_ERROR, EXIT_USAGE_ERROR) and not ran:
        run.setup = python_setup(ctx.root, env)
        what = (
            "an internal error"
            if result.exit_code == EXIT_INTERNAL_ERROR
            else "a usage or configuration error"
        )
        return run.blocked(
            f"pytest stopped with {what} (exit {result.exit_code}) before running any test in {env.description}",
            first_error(output),
        )
    if counts is None or (not result.ok and counts.failed + counts.errored == 0):
        run.problem = f"pytest exited with {result.exit_code}: {tail(output, 8)}"
    return run


def first_error(output: str) -> str | None:
    """The error pytest (or the environment manager) stopped with, from its output."""
    if found := exception_line(output):
        return found
    # A usage error is argparse's "__main__.py: error: unrecognized arguments: --cov".
    for line in output.splitlines():
        if "error:" in line.lower() and not line.startswith("ERROR: usage:"):
            return line.strip()
    return tail(output, 3) or None
