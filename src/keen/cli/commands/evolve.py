"""`keen evolve`: validate a project, turn its real findings into an improvement vision, and
run keen's agent on it (150 iterations) with the same runner and live view as `keen breathe`.

`--dry-run` writes the vision to `evolution-vision.md` in the project (replacing the one a
previous dry run wrote) and calls no model.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from pathlib import Path
from typing import Any

from rich.text import Text

from keen.cli.common import EXIT_OK, guarded, print_json, settings_or_fail, stderr_console, stdout_console
from keen.text import clip
from keen.validation.report import CategoryResult, Finding, ValidationReport, plural

EVOLVE_ITERATIONS = 150
DRY_RUN_FILE = "evolution-vision.md"
MAX_FAILURES = 10
MAX_FINDINGS = 8
MAX_HOT_SPOTS = 5
MESSAGE_CHARS = 400
PLACEHOLDER_VISION = "improve the project from its validation findings"


def evolve_command(
    *,
    directory: Path | None,
    focus: str | None,
    dry_run: bool,
    model: str | None,
    budget: str,
    allow_dirty: bool,
    verbose: bool,
    as_json: bool,
) -> int:
    def body() -> int:
        from keen.cli.chat import chat_workspace
        from keen.runner.options import make_options
        from keen.validation import validate_project

        settings = settings_or_fail()
        workspace = chat_workspace(directory)
        focus_text = " ".join(focus.split()) if focus else None
        options = None
        if not dry_run:  # every option (and the model's key) is checked before the long validation
            options = make_options(
                settings,
                vision=PLACEHOLDER_VISION,
                directory=workspace,
                model=model,
                max_iterations=EVOLVE_ITERATIONS,
                budget=budget,
                phase="EXPLORE",
                max_depth=10,
                gates="standard",
                web_search=True,
                allow_dirty=allow_dirty,
            )
        progress = stderr_console() if as_json else stdout_console()
        progress.print(
            Text(f"Validating {workspace} (its test suite included)…", style="dim"), soft_wrap=True
        )
        report = asyncio.run(validate_project(workspace))
        progress.print(Text(f"validation: {report.overall}, score {report.score}/100", style="dim"))
        vision = evolution_vision(report, workspace=workspace, focus=focus_text)
        if options is None:
            return _write_dry_run(vision, workspace, report, as_json, _run_options(model, budget))
        return _run(settings, dataclasses.replace(options, vision=vision), verbose, as_json)

    return guarded(body)


def evolution_vision(report: ValidationReport, *, workspace: Path, focus: str | None) -> str:
    """The improvement vision: the findings worth fixing, most serious first, and the focus."""
    from keen.agent.prompts.render import render
    from keen.agent.vision import check_vision

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


def _run_options(model: str | None, budget: str) -> list[str]:
    """The `keen breathe` arguments that run the vision as `keen evolve` would."""
    chosen = ["--max-iterations", str(EVOLVE_ITERATIONS), "--budget", budget]
    return chosen + (["--model", model] if model else [])


def _write_dry_run(
    vision: str, workspace: Path, report: ValidationReport, as_json: bool, run_options: list[str]
) -> int:
    from keen.cli.visionfile import breathe_command_line
    from keen.errors import InputError

    path = workspace / DRY_RUN_FILE
    try:
        path.write_text(vision + "\n", encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from None
    # The file is an uncommitted change of the workspace, hence --allow-dirty.
    command = breathe_command_line(path, workspace, allow_dirty=True, options=run_options)
    if as_json:
        print_json(
            {
                "dry_run": True,
                "path": str(path),
                "vision": vision,
                "validation": {"overall": report.overall, "score": report.score},
                "run_command": command,
            }
        )
        return EXIT_OK
    console = stdout_console()
    console.print(f"Evolution vision written: {path} (no model was called)", soft_wrap=True)
    console.print(Text(f"Run it with: {command}", style="dim"), soft_wrap=True)
    return EXIT_OK


def _run(settings: Any, options: Any, verbose: bool, as_json: bool) -> int:
    from keen.cli.commands.breathe import run_new_session

    return run_new_session(settings, options, verbose=verbose, as_json=as_json)
