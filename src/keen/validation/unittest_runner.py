"""unittest, for Python projects whose tests are the standard library's and whose environment
has no pytest: `python -m unittest` discovery, as their developers run it.

A small bootstrap in the environment's interpreter runs the discovered suite with a result
object that writes the counts and failures as JSON (unittest itself prints only text). Test
modules that cannot be imported are errors, as unittest reports them.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

from keen.validation.context import CheckContext
from keen.validation.envsetup import python_setup
from keen.validation.external import run_tool, tail
from keen.validation.pyenv import PythonEnv
from keen.validation.suite import SuiteRun, missing_dependencies, missing_summary
from keen.validation.testreports import CaseCounts, FailedCase, exception_line, missing_dependency, read_json

# Run as `python -c BOOTSTRAP REPORT`: discovery from the working directory, like `python -m unittest`.
BOOTSTRAP = """\
import json, sys, unittest
class Result(unittest.TestResult):
    passed = 0
    def addSuccess(self, test):
        super().addSuccess(test)
        self.passed += 1
suite = unittest.TestLoader().discover(".", top_level_dir=".")
result = Result()
suite.run(result)
cases = [(t, "failure", tb) for t, tb in result.failures] + [(t, "error", tb) for t, tb in result.errors]
with open(sys.argv[1], "w") as out:
    json.dump({
        "version": "%d.%d.%d" % sys.version_info[:3],
        "python": sys.executable,
        "passed": result.passed,
        "failed": len(result.failures) + len(result.unexpectedSuccesses),
        "errored": len(result.errors),
        "skipped": len(result.skipped) + len(result.expectedFailures),
        "failures": [{"name": t.id(), "kind": k, "traceback": tb} for t, k, tb in cases],
    }, out)
"""
_FRAME = re.compile(r'File "(?P<file>[^"]+)", line (?P<line>\d+)')
# What makes a test file pytest's rather than unittest's.
_PYTEST_STYLE = re.compile(r"^(?:import pytest|from pytest|(?:async )?def test_)", re.MULTILINE)


def unittest_only(ctx: CheckContext, test_files: list[str]) -> bool:
    """True when nothing in the tests needs pytest: no conftest, no pytest import, no test functions."""
    if any(Path(f).name == "conftest.py" for f in ctx.project.files):
        return False
    for rel in test_files:
        try:
            if _PYTEST_STYLE.search((ctx.root / rel).read_text(errors="replace")):
                return False
        except OSError:
            return False
    return True


async def run_unittest(ctx: CheckContext, env: PythonEnv) -> SuiteRun | None:
    """The unittest suite in `env`; None when discovery finds no test at all."""
    with tempfile.TemporaryDirectory(prefix="keen-unittest-") as tmp:
        report = Path(tmp) / "report.json"
        argv = [*env.command, "-c", BOOTSTRAP, str(report)]
        process_env = {**env.env, "PYTHONDONTWRITEBYTECODE": "1"}
        result = await run_tool(
            argv, cwd=ctx.root, timeout=ctx.timeouts.tests, env=process_env, writable=[Path(tmp)]
        )
        data = read_json(report)
    run = SuiteRun("unittest", duration_ms=result.duration_ms, ok=result.ok)
    run.environment = {**env.to_dict(), **{k: data[k] for k in ("python", "version") if data and k in data}}
    if result.timed_out:
        run.timed_out = True
        run.problem = f"unittest timed out after {ctx.timeouts.tests:g} s; its processes were killed"
        return run
    if data is None:
        run.problem = f"unittest exited with {result.exit_code}: {tail(result.stdout + result.stderr, 8)}"
        return run
    try:
        run.counts = _counts(ctx.root, data)
    except (KeyError, TypeError, ValueError):  # the suite's own code overwrote the report
        run.problem = f"unittest wrote no usable report (exit {result.exit_code})"
        return run
    if run.counts.total == 0:
        return None
    run.ok = run.counts.failed + run.counts.errored == 0
    if missing := missing_dependencies(run.counts):
        names = [f.missing for f in missing if f.missing]
        run.setup = python_setup(ctx.root, env, pytest=False, missing=names)
        return run.blocked(missing_summary("unittest", missing, env.description), missing[0].message)
    return run


def _counts(root: Path, data: dict[str, Any]) -> CaseCounts:
    counts = CaseCounts(
        passed=int(data["passed"]),
        failed=int(data["failed"]),
        errored=int(data["errored"]),
        skipped=int(data["skipped"]),
    )
    for case in data.get("failures", []):
        text = str(case.get("traceback", ""))
        frames = [m for m in _FRAME.finditer(text) if Path(m["file"]).resolve().is_relative_to(root)]
        where = frames[-1] if frames else None
        counts.failures.append(
            FailedCase(
                name=str(case.get("name", "?")),
                message=exception_line(text) or tail(text, 3),
                kind=str(case.get("kind", "error")),
                file=Path(where["file"]).resolve().relative_to(root).as_posix() if where else None,
                line=int(where["line"]) if where else None,
                missing=missing_dependency(text),
            )
        )
    return counts
