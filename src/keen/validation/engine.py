"""The validation engine: detect the project's languages, run the selected categories with real
tools, and reach one verdict.

Overall score: the weighted mean of the scores of the categories that ran (skipped ones are
left out): syntax 20, style 15, tests 25, security 20, performance 10, documentation 10.

Overall status:
- `fail` when syntax fails, the tests fail (a failing, erroring or timed-out run of a project
  that has tests), or security has a critical finding;
- otherwise `warning` when any other category fails, the tests could not run (`error`: not a
  verdict on the code, but nothing is proven either), the project has no tests, nothing could
  be checked, or the overall score is below 70;
- otherwise `pass`.

Safe auto-fixes (ruff `--fix`, never the unsafe ones) run first, and only when `fix=True`.
Categories run concurrently, at most `MAX_PARALLEL` at once; performance waits for tests so
it can judge the suite's duration.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from keen.errors import InputError
from keen.validation.categories import CHECKS
from keen.validation.context import CheckContext
from keen.validation.detect import normalize_scope, scan_project
from keen.validation.external import tool_env
from keen.validation.report import CATEGORY_NAMES, COULD_NOT_RUN, CategoryResult, Timeouts, ValidationReport
from keen.validation.ruff import apply_safe_fixes

log = logging.getLogger(__name__)

WEIGHTS: dict[str, int] = {
    "syntax": 20,
    "style": 15,
    "tests": 25,
    "security": 20,
    "performance": 10,
    "documentation": 10,
}
WARNING_BELOW = 70
MAX_PARALLEL = 2  # modest: test suites and linters each want a core


async def validate_project(
    root: Path,
    *,
    categories: Sequence[str] | None = None,
    scope: Sequence[str] | None = None,
    fix: bool = False,
    timeouts: Timeouts | None = None,
) -> ValidationReport:
    """Validate the project at `root`; raises `InputError` for a bad root, category or scope."""
    started = time.perf_counter()
    root = Path(root).resolve()
    if not root.is_dir():
        raise InputError(f"{root} is not a directory")
    selected = select_categories(categories)
    scope_paths = normalize_scope(root, list(scope) if scope else None)
    timeouts = timeouts or Timeouts()
    env = tool_env()

    fixes = None
    if fix:
        fixes = await apply_safe_fixes(root, scope_paths or ["."], timeout=timeouts.linters, env=env)
    project = await scan_project(root, scope_paths)
    ctx = CheckContext(root=root, project=project, timeouts=timeouts, env=env)
    results = await _run_categories(ctx, selected)
    score = weighted_score(results)
    return ValidationReport(
        overall=overall_status(results, score),
        score=score,
        categories={name: results[name] for name in selected},
        languages=project.languages,
        fixes_applied=fixes,
        duration_ms=int((time.perf_counter() - started) * 1000),
    )


def select_categories(categories: Sequence[str] | None) -> list[str]:
    """The requested categories in canonical order; all of them when none are given."""
    if not categories:
        return list(CATEGORY_NAMES)
    unknown = sorted(set(categories) - set(CATEGORY_NAMES))
    if unknown:
        raise InputError(
            f"unknown validation categories: {', '.join(unknown)}; choose from {', '.join(CATEGORY_NAMES)}"
        )
    return [name for name in CATEGORY_NAMES if name in categories]


def weighted_score(results: dict[str, CategoryResult]) -> int | None:
    scored = [(WEIGHTS[name], r.score) for name, r in results.items() if r.score is not None]
    total = sum(weight for weight, _ in scored)
    if not total:
        return None
    return round(sum(weight * score for weight, score in scored) / total)


Overall = Literal["pass", "warning", "fail"]


def overall_status(results: dict[str, CategoryResult], score: int | None) -> Overall:
    """The rule in this module's docstring."""
    syntax = results.get("syntax")
    tests = results.get("tests")
    security = results.get("security")
    if syntax is not None and syntax.status == "fail":
        return "fail"
    if tests is not None and tests.status == "fail":
        return "fail"
    if security is not None and any(f.severity == "critical" for f in security.findings):
        return "fail"
    if any(r.status in ("fail", COULD_NOT_RUN) for r in results.values()):
        return "warning"
    if tests is not None and tests.status != "skipped" and not tests.details.get("has_tests", True):
        return "warning"
    if score is None or score < WARNING_BELOW:
        return "warning"
    return "pass"


async def _run_categories(ctx: CheckContext, selected: list[str]) -> dict[str, CategoryResult]:
    slots = asyncio.Semaphore(MAX_PARALLEL)
    tasks: dict[str, asyncio.Task[CategoryResult]] = {}

    async def run(name: str) -> CategoryResult:
        if name == "performance" and "tests" in tasks:
            # Wait outside the semaphore so the tests run is never starved of a slot.
            ctx.tests_result = await asyncio.shield(tasks["tests"])
        async with slots:
            started = time.perf_counter()
            try:
                result = await CHECKS[name](ctx)
            except Exception as exc:  # a bug in one check must not hide the other categories
                log.exception("validation category %s crashed", name)
                result = CategoryResult.skipped(name, f"the check could not run: {type(exc).__name__}: {exc}")
            result.duration_ms = int((time.perf_counter() - started) * 1000)
            return result

    # The test suite is usually the longest run: start it first.
    for name in sorted(selected, key=lambda n: n != "tests"):
        tasks[name] = asyncio.create_task(run(name), name=f"validate-{name}")
    try:
        await asyncio.gather(*tasks.values())
    except BaseException:
        for task in tasks.values():
            task.cancel()
        raise
    return {name: tasks[name].result() for name in selected}
