"""The vision of `keen evolve`: a project's real validation findings, most serious first, turned
into the improvement work for keen's agent."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from keen.agent.prompts.render import render
from keen.agent.vision import check_vision
from keen.text import clip
from keen.validation.report import CategoryResult, Finding, ValidationReport, plural

MAX_FAILURES = 10
MAX_FINDINGS = 8
MAX_HOT_SPOTS = 5
MESSAGE_CHARS = 400


def evolution_vision(report: ValidationReport, *, workspace: Path, focus: str | None) -> str:
    """The improvement vision: the findings worth fixing, most serious first, and the focus."""
    tests = report.category("tests")
    failures = list((tests.details.get("failures") or []) if tests else [])
    failed_total = (
        (int(tests.details.get("failed", 0)) + int(tests.details.get("errored", 0))) if tests else 0
    )
    text = render(
        "evolve.j2",
        project=workspace.name,
        workspace=workspace,
        overall=report.overall,
        score=report.score,
        languages=report.languages,
        focus=focus,
        categories=[
            {"name": name, "status": c.status, "score": c.score, "summary": _one_line(c.summary)}
            for name, c in report.categories.items()
        ],
        failures=[
            {
                "name": f.get("name", "?"),
                "message": _one_line(str(f.get("message", ""))),
                "file": f.get("file"),
                "line": f.get("line"),
            }
            for f in failures[:MAX_FAILURES]
        ],
        failures_omitted=max(failed_total - min(len(failures), MAX_FAILURES), 0),
        test_problems=_test_problems(tests, failures),
        has_tests=tests is None or tests.status == "skipped" or bool(tests.details.get("has_tests", True)),
        syntax=[_finding(f) for f in _findings(report.category("syntax"))],
        security=[_finding(f) for f in _findings(report.category("security"))],
        documentation=_documentation(report.category("documentation")),
        hot_spots=_hot_spots(report.category("style")),
        complexity=[_finding(f) for f in _findings(report.category("performance"))],
        skipped=[
            f"{name}: {c.reason or c.summary}"
            for name, c in report.categories.items()
            if c.status == "skipped"
        ],
    )
    return check_vision(text)


def _test_problems(tests: CategoryResult | None, failures: list[Any]) -> list[str]:
    """Why the suite failed when no single test is to blame (a crash, a timeout)."""
    if tests is None or tests.status != "fail":
        return []
    problems = [_finding(f) for f in _findings(tests, rule="test-run")]
    if not failures and not problems:
        problems.append(_one_line(tests.reason or tests.summary))
    return problems


def _findings(category: CategoryResult | None, *, rule: str | None = None) -> list[Finding]:
    if category is None or category.status == "skipped":
        return []
    found = [f for f in category.sorted_findings() if rule is None or f.rule == rule]
    return found[:MAX_FINDINGS]


def _finding(finding: Finding) -> str:
    where = f"{finding.location()}: " if finding.location() else ""
    rule = f"[{finding.rule}] " if finding.rule else ""
    return f"{where}{rule}{_one_line(finding.message)} ({finding.severity})"


def _documentation(category: CategoryResult | None) -> list[str]:
    """README problems one by one; missing docstrings as a count with the first few places."""
    if category is None or category.status == "skipped":
        return []
    readme = [_finding(f) for f in category.findings if f.rule != "missing-docstring"]
    undocumented = [f for f in category.findings if f.rule == "missing-docstring"]
    if undocumented:
        places = ", ".join(f.location() for f in undocumented[:MAX_HOT_SPOTS])
        more = f" and {len(undocumented) - MAX_HOT_SPOTS} more" if len(undocumented) > MAX_HOT_SPOTS else ""
        count = plural(len(undocumented), "public definition")
        readme.append(f"{count} without a docstring ({places}{more})")
    return readme


def _hot_spots(category: CategoryResult | None) -> list[str]:
    """The files with the most lint findings, each with its most frequent rules."""
    if category is None or category.status == "skipped" or not category.findings:
        return []
    by_file: dict[str, Counter[str]] = {}
    for finding in category.findings:
        by_file.setdefault(finding.file or "(project)", Counter())[finding.rule or "?"] += 1
    ranked = sorted(by_file.items(), key=lambda item: -sum(item[1].values()))
    lines = []
    for file, rules in ranked[:MAX_HOT_SPOTS]:
        top = ", ".join(f"{rule} ×{count}" for rule, count in rules.most_common(3))
        lines.append(f"{file}: {sum(rules.values())} style findings ({top})")
    if len(ranked) > MAX_HOT_SPOTS:
        lines.append(f"… and {len(ranked) - MAX_HOT_SPOTS} more files with style findings")
    return lines


def _one_line(text: str) -> str:
    flat = " ".join(text.split())
    return clip(flat, MESSAGE_CHARS)
