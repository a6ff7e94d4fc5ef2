"""performance: complexity (ruff's mccabe rule C901), oversized source files, a slow test suite.

These are static proxies, not profiles: over-complex functions and giant files are where slow
and fragile code hides, and a test suite that takes minutes slows every change. The score loses
5 per complex function (at most 50), 10 per oversized file (at most 30) and 20 for a slow suite;
the category fails below 60.
"""

from __future__ import annotations

from keen.validation.context import CheckContext
from keen.validation.detect import JAVASCRIPT_SUFFIXES, PYTHON_SUFFIXES, TYPESCRIPT_SUFFIXES
from keen.validation.external import ToolFailed, ToolUnavailable
from keen.validation.report import CategoryResult, Finding, graded, plural
from keen.validation.ruff import ruff_check

NAME = "performance"
MAX_FILE_LINES = 1000
SLOW_TESTS_MS = 120_000
PASS_SCORE = 60
SOURCE_SUFFIXES = PYTHON_SUFFIXES | JAVASCRIPT_SUFFIXES | TYPESCRIPT_SUFFIXES


async def check(ctx: CheckContext) -> CategoryResult:
    project = ctx.project
    complex_funcs: list[Finding] = []
    not_checked: list[str] = []
    checks: list[str] = []

    if project.python:
        try:
            diagnostics = await ruff_check(
                ctx.root, ctx.lint_targets(), timeout=ctx.timeouts.linters, env=ctx.env, select=["C901"]
            )
        except (ToolUnavailable, ToolFailed) as exc:
            not_checked.append(f"{exc}: complexity not checked")
        else:
            checks.append("complexity")
            complex_funcs = [
                Finding(
                    d.message,
                    file=d.file,
                    line=d.line,
                    column=d.column,
                    rule="C901",
                    severity="medium",
                    tool="ruff",
                )
                for d in diagnostics
                if d.code == "C901"
            ]

    sources = [f for f in project.with_suffix(SOURCE_SUFFIXES) if not f.endswith((".min.js", ".min.mjs"))]
    oversized = [
        Finding(
            f"{n} lines (over {MAX_FILE_LINES}): split it into modules with one job each",
            file=rel,
            rule="oversized-file",
            severity="low",
            tool="keen",
        )
        for rel in sources
        if (n := project.lines(rel)) > MAX_FILE_LINES
    ]
    if sources:
        checks.append("file size")

    slow: list[Finding] = []
    test_ms = _test_duration(ctx)
    if test_ms is not None:
        checks.append("test duration")
        if test_ms > SLOW_TESTS_MS:
            took = f"the test suite took {test_ms / 1000:.0f} s (over {SLOW_TESTS_MS // 1000} s)"
            slow.append(Finding(took, rule="slow-tests", severity="medium", tool="tests"))

    details = {
        "checks": checks,
        "complex_functions": len(complex_funcs),
        "oversized_files": [f.file for f in oversized],
        "largest_file": max(((rel, project.lines(rel)) for rel in sources), key=lambda t: t[1], default=None),
        "test_duration_ms": test_ms,
        "not_checked": not_checked,
    }
    if not checks:
        return CategoryResult.skipped(NAME, "; ".join(not_checked) or "no source files", details)
    findings = complex_funcs + oversized + slow
    score = max(0, 100 - min(50, 5 * len(complex_funcs)) - min(30, 10 * len(oversized)) - 20 * len(slow))
    status = graded(bool(findings), score, PASS_SCORE)
    parts = [plural(len(complex_funcs), "over-complex function"), plural(len(oversized), "oversized file")]
    if test_ms is not None:
        parts.append(f"tests took {test_ms / 1000:.1f} s")
    return CategoryResult(NAME, status, score, ", ".join(parts), findings, details)


def _test_duration(ctx: CheckContext) -> int | None:
    result = ctx.tests_result
    if result is None or result.status == "skipped" or not result.details.get("has_tests"):
        return None
    duration = result.details.get("duration_ms")
    return int(duration) if duration is not None else None
