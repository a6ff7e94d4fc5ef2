"""tests: run the project's test suites and read their machine-readable reports.

Python: pytest with a JUnit XML report, under the workspace's own virtualenv when it has one.
Node: the `npm test` script, with a JUnit/JSON reporter for the runners that have one
(`node --test`, jest, vitest); any other script is judged by its exit code alone.
The whole suite always runs (a change anywhere can break any test), whatever the scope.

A project with no tests is a `warning` with score 0 and `has_tests: false`: the standard
COMPLETE gate lets it through, the strict one does not. A suite that outlives its timeout is
killed with its whole process group and the category fails with a timeout reason.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from keen.validation.context import CheckContext
from keen.validation.detect import PYTHON_SUFFIXES
from keen.validation.external import ToolUnavailable, find_node_tool, project_python, run_tool, tail
from keen.validation.report import CategoryResult, Finding
from keen.validation.testreports import CaseCounts, FailedCase, parse_jest_json, parse_junit

NAME = "tests"
NPM_DEFAULT_TEST = "no test specified"
PYTEST_NO_TESTS = 5


@dataclass
class SuiteRun:
    """One runner's outcome."""

    runner: str
    counts: CaseCounts = field(default_factory=CaseCounts)
    duration_ms: int = 0
    ok: bool = True  # the runner's own verdict (exit code)
    has_tests: bool = True
    timed_out: bool = False
    problem: str | None = None  # why the run failed without per-test results
    counted: bool = True  # False when only the exit code is known


async def check(ctx: CheckContext) -> CategoryResult:
    runs: list[SuiteRun] = []
    not_checked: list[str] = []
    for runner in (_pytest, _npm_test):
        try:
            run = await runner(ctx)
        except ToolUnavailable as exc:
            not_checked.append(str(exc))
            continue
        if run is not None:
            runs.append(run)
    return _verdict(ctx, runs, not_checked)


def _verdict(ctx: CheckContext, runs: list[SuiteRun], not_checked: list[str]) -> CategoryResult:
    total = CaseCounts()
    for run in runs:
        total.add(run.counts)
    with_tests = [r for r in runs if r.has_tests]
    details = {
        "has_tests": bool(with_tests) or bool(not_checked),
        "runners": [r.runner for r in with_tests],
        "passed": total.passed,
        "failed": total.failed,
        "errored": total.errored,
        "skipped": total.skipped,
        "total": total.total,
        "duration_ms": sum(r.duration_ms for r in runs),
        "failures": [f.to_dict() for f in total.failures[:10]],
        "not_checked": not_checked,
    }
    findings = [_finding(f) for f in total.failures]
    timed_out = [r.problem or "" for r in runs if r.timed_out]
    if timed_out:
        details["timed_out"] = True
        reason = "; ".join(timed_out)
        return CategoryResult(NAME, "fail", 0, reason, findings, details, reason=reason)
    if not with_tests:
        if not_checked:
            return CategoryResult.skipped(NAME, "; ".join(not_checked), details)
        return CategoryResult(NAME, "warning", 0, "no tests found", details=details, reason="no tests found")
    problems = [f"{r.runner}: {r.problem}" for r in with_tests if r.problem]
    findings += [Finding(p, rule="test-run", severity="high", tool="tests") for p in problems]
    judged = total.passed + total.failed + total.errored
    failing = judged > total.passed or any(not r.ok for r in with_tests)
    score = round(100 * total.passed / judged) if judged else 100
    if not failing:
        return CategoryResult(NAME, "pass", score, _counts(total, with_tests), findings, details)
    if score == 100:
        score = 0  # the runner failed without reporting a failing test
    summary = _counts(total, with_tests)
    if total.failures:
        first = total.failures[0]
        summary += f"; first failure {first.name}: {(first.message.splitlines() or [''])[0]}"
    elif problems:
        summary += "; " + problems[0]
    return CategoryResult(NAME, "fail", score, summary, findings, details, reason="; ".join(problems) or None)


def _counts(total: CaseCounts, runs: list[SuiteRun]) -> str:
    text = f"{total.passed} passed, {total.failed} failed, {total.errored} errors, {total.skipped} skipped"
    if not all(r.counted for r in runs):
        text += " (some runners report only an exit code)"
    return text


def _finding(failure: FailedCase) -> Finding:
    return Finding(
        f"{failure.name}: {failure.message}",
        file=failure.file,
        line=failure.line,
        rule=f"test-{failure.kind}",
        severity="high",
        tool="tests",
    )


# --- Python -----------------------------------------------------------------------------------


def python_test_files(ctx: CheckContext) -> list[str]:
    """pytest's default test file patterns, over the whole project (scope does not apply)."""
    return [
        f
        for f in ctx.project.with_suffix(PYTHON_SUFFIXES, scoped=False)
        if (name := Path(f).name).startswith("test_") or name.endswith("_test.py")
    ]


async def _pytest(ctx: CheckContext) -> SuiteRun | None:
    if not python_test_files(ctx):
        return None
    python = project_python(ctx.root)
    env = _python_env(ctx, python)
    probe = await run_tool([python, "-c", "import pytest"], cwd=ctx.root, timeout=ctx.timeouts.probe, env=env)
    if not probe.ok:
        raise ToolUnavailable(f"pytest is not installed for {python}")
    with tempfile.TemporaryDirectory(prefix="keen-junit-") as tmp:
        report = Path(tmp) / "junit.xml"
        argv = [python, "-m", "pytest", "-q", "--color=no", "--rootdir", str(ctx.root)]
        argv += ["-p", "no:cacheprovider"]  # leave no .pytest_cache in the workspace
        argv += [f"--junitxml={report}", "-o", "junit_family=xunit1"]  # xunit1 adds file and line
        result = await run_tool(argv, cwd=ctx.root, timeout=ctx.timeouts.tests, env=env, writable=[Path(tmp)])
        counts = parse_junit(report)
    run = SuiteRun("pytest", counts or CaseCounts(), result.duration_ms, ok=result.ok)
    if result.timed_out:
        run.timed_out = True
        run.problem = f"pytest timed out after {ctx.timeouts.tests:g} s; its processes were killed"
    elif result.exit_code == PYTEST_NO_TESTS:
        run.has_tests, run.ok = False, True
    elif counts is None or (not result.ok and counts.failed + counts.errored == 0):
        run.problem = f"pytest exited with {result.exit_code}: {tail(result.stdout + result.stderr, 8)}"
    return run


def _python_env(ctx: CheckContext, python: str) -> dict[str, str]:
    env = dict(ctx.env)
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # no __pycache__ left in the workspace
    venv_bin = Path(python).parent
    if (venv_bin.parent / "pyvenv.cfg").is_file():
        env["VIRTUAL_ENV"] = str(venv_bin.parent)
        env["PATH"] = f"{venv_bin}{os.pathsep}{env.get('PATH', '')}"
    return env


# --- Node -------------------------------------------------------------------------------------

_NODE_TEST = re.compile(r"\bnode\b[^&|;]*\s--test\b")
_JEST = re.compile(r"\bjest\b")
_VITEST = re.compile(r"\bvitest\b")


async def _npm_test(ctx: CheckContext) -> SuiteRun | None:
    package = ctx.project.package_json or {}
    scripts = package.get("scripts") if isinstance(package.get("scripts"), dict) else {}
    script = str((scripts or {}).get("test") or "")
    if not script or NPM_DEFAULT_TEST in script:
        return None
    npm = shutil.which("npm")
    if npm is None:
        raise ToolUnavailable("npm is not installed: the test script was not run")
    env = dict(ctx.env)
    env.update(
        {
            "CI": "1",
            "npm_config_update_notifier": "false",
            "npm_config_fund": "false",
            "npm_config_audit": "false",
        }
    )
    with tempfile.TemporaryDirectory(prefix="keen-npm-test-") as tmp:
        report = Path(tmp) / "report"
        argv = [npm, "test"]
        if _JEST.search(script):
            _require(ctx, "jest")
            runner, parse = "jest", parse_jest_json
            argv += ["--", "--json", f"--outputFile={report}"]
        elif _VITEST.search(script):
            _require(ctx, "vitest")
            runner, parse = "vitest", parse_junit
            argv += ["--", "--run", "--reporter=junit", f"--outputFile={report}"]
        elif _NODE_TEST.search(script):
            runner, parse = "node --test", parse_junit
            # NODE_OPTIONS reaches the `node --test` the script starts, wherever its flags are.
            reporter = f"--test-reporter=junit --test-reporter-destination={report}"
            env["NODE_OPTIONS"] = f"{env.get('NODE_OPTIONS', '')} {reporter}".strip()
        else:
            runner, parse = "npm test", None
        result = await run_tool(argv, cwd=ctx.root, timeout=ctx.timeouts.tests, env=env, writable=[Path(tmp)])
        counts = parse(report) if parse else None
    run = SuiteRun(
        runner, counts or CaseCounts(), result.duration_ms, ok=result.ok, counted=counts is not None
    )
    if result.timed_out:
        run.timed_out = True
        run.problem = f"npm test timed out after {ctx.timeouts.tests:g} s; its processes were killed"
    elif not result.ok and (counts is None or counts.failed + counts.errored == 0):
        run.problem = f"npm test exited with {result.exit_code}: {tail(result.stdout + result.stderr, 8)}"
    return run


def _require(ctx: CheckContext, tool: str) -> None:
    if find_node_tool(ctx.root, tool) is None:
        raise ToolUnavailable(f"{tool} is not installed (run npm install): the test script was not run")
