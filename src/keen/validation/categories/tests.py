"""tests: run the project's test suites and read their machine-readable reports.

Python: pytest in the project's own environment (`keen.validation.pytest_runner`). Node: the
`npm test` script with a report from jest, vitest, mocha or `node --test`
(`keen.validation.node_runners`); any other script is judged by its exit code alone. The
whole suite always runs (a change anywhere can break any test), whatever the scope.

Statuses:
- `pass`: every suite ran and passed; `fail`: a suite ran and had failing or erroring tests,
  or outlived its timeout (its whole process group is killed);
- `error`: a suite could not run at all (its environment lacks the runner or a dependency, or
  the runner stopped before running anything); not a verdict on the code, so no score: the
  reason, the first error and the commands that set the environment up are in the details;
- `warning` with score 0 and `has_tests: false`: the project has no tests (the standard
  COMPLETE gate lets it through, the strict one does not);
- `skipped`: the runner's own tool (npm) is not installed on this machine.
The report names the environment each suite ran in.
"""

from __future__ import annotations

from typing import Any

from keen.validation.context import CheckContext
from keen.validation.external import ToolUnavailable
from keen.validation.node_runners import run_npm_test
from keen.validation.pytest_runner import run_pytest
from keen.validation.report import COULD_NOT_RUN, CategoryResult, Finding
from keen.validation.suite import SuiteRun
from keen.validation.testreports import CaseCounts, FailedCase

NAME = "tests"


async def check(ctx: CheckContext) -> CategoryResult:
    runs: list[SuiteRun] = []
    not_checked: list[str] = []
    for runner in (run_pytest, run_npm_test):
        try:
            run = await runner(ctx)
        except ToolUnavailable as exc:
            not_checked.append(str(exc))
            continue
        if run is not None:
            runs.append(run)
    return _verdict(runs, not_checked)


def _verdict(runs: list[SuiteRun], not_checked: list[str]) -> CategoryResult:
    total = CaseCounts()
    for run in runs:
        total.add(run.counts)
    with_tests = [r for r in runs if r.has_tests]
    blocked = [r for r in with_tests if r.could_not_run]
    ran = [r for r in with_tests if not r.could_not_run]
    details: dict[str, Any] = {
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
        "environments": {r.runner: r.environment for r in runs if r.environment},
    }
    if blocked:
        details["could_not_run"] = [
            {
                "runner": r.runner,
                "reason": r.could_not_run,
                "first_error": r.first_error,
                "environment": r.environment.get("description") or r.environment.get("command"),
                "setup": r.setup,
            }
            for r in blocked
        ]
    timed_out = [r.problem or "" for r in runs if r.timed_out]
    if timed_out:
        details["timed_out"] = True
        reason = "; ".join(timed_out)
        return CategoryResult(NAME, "fail", 0, reason, _findings(total.failures), details, reason=reason)
    if not with_tests:
        if not_checked:
            return CategoryResult.skipped(NAME, "; ".join(not_checked), details)
        return CategoryResult(NAME, "warning", 0, "no tests found", details=details, reason="no tests found")
    counts = CaseCounts()
    for run in ran:
        counts.add(run.counts)
    problems = [f"{r.runner}: {r.problem}" for r in ran if r.problem]
    findings = _findings(counts.failures) + [
        Finding(p, rule="test-run", severity="high", tool="tests") for p in problems
    ]
    judged = counts.passed + counts.failed + counts.errored
    failing = judged > counts.passed or any(not r.ok for r in ran)
    if blocked and not failing:
        reason = "; ".join(r.could_not_run or "" for r in blocked)
        first = next((r.first_error for r in blocked if r.first_error), None)
        summary = f"could not run: {reason}" + (f"; first error: {first}" if first else "")
        return CategoryResult(NAME, COULD_NOT_RUN, None, summary, findings, details, reason=reason)
    score = round(100 * counts.passed / judged) if judged else 100
    summary = _counts(counts, ran)
    if not failing:
        return CategoryResult(NAME, "pass", score, summary, findings, details)
    if score == 100:
        score = 0  # the runner failed without reporting a failing test
    if counts.failures:
        first_failure = counts.failures[0]
        summary += f"; first failure {first_failure.name}: {(first_failure.message.splitlines() or [''])[0]}"
    elif problems:
        summary += "; " + problems[0]
    if blocked:  # a suite that failed is the verdict; the one that could not run is still said
        summary += "; could not run: " + "; ".join(r.could_not_run or "" for r in blocked)
    return CategoryResult(NAME, "fail", score, summary, findings, details, reason="; ".join(problems) or None)


def _counts(total: CaseCounts, runs: list[SuiteRun]) -> str:
    text = f"{total.passed} passed, {total.failed} failed, {total.errored} errors, {total.skipped} skipped"
    if not all(r.counted for r in runs):
        text += " (some runners report only an exit code)"
    where = [_where(r) for r in runs if r.environment]
    return text + (f" ({'; '.join(where)})" if where else "")


def _where(run: SuiteRun) -> str:
    env = run.environment
    if run.runner == "pytest":
        versions = ", ".join(
            f"{name} {env[key]}" for name, key in (("Python", "version"), ("pytest", "pytest")) if key in env
        )
        return f"pytest in {env.get('description', '?')}" + (f", {versions}" if versions else "")
    return f"{run.runner} via {env.get('command', 'npm test')}"


def _findings(failures: list[FailedCase]) -> list[Finding]:
    return [
        Finding(
            f"{failure.name}: {failure.message}",
            file=failure.file,
            line=failure.line,
            rule=f"test-{failure.kind}",
            severity="high",
            tool="tests",
        )
        for failure in failures
    ]
