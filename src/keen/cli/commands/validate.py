"""`keen validate`: the validation engine on a project, outside any agent session."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from keen.cli.common import guarded, settings_or_fail, stdout_console
from keen.errors import InputError
from keen.validation import ValidationReport, validate_project

STATUS_STYLE = {"pass": "green", "warning": "yellow", "fail": "red", "skipped": "dim", "error": "magenta"}
TOP_FINDINGS = 5


def validate_command(directory: Path, categories: list[str] | None, fix: bool, as_json: bool) -> int:
    """Run the engine and print the report; the exit code is 0 (pass/warning), 1 (fail), 2 (bad input)."""

    def body() -> int:
        settings_or_fail()  # a broken configuration is reported by every command alike
        if not directory.is_dir():
            problem = "is not a directory" if directory.exists() else "does not exist"
            raise InputError(f"{directory} {problem}")
        # `--categories syntax,tests` and repeated options both work.
        selected = [name.strip() for entry in categories or [] for name in entry.split(",") if name.strip()]
        report = asyncio.run(validate_project(directory, categories=selected or None, fix=fix))
        if as_json:
            sys.stdout.write(json.dumps(report.to_dict(), ensure_ascii=False) + "\n")
            sys.stdout.flush()
        else:
            stdout_console().print(render_report(report, directory))
        return 1 if report.overall == "fail" else 0

    return guarded(body)


def render_report(report: ValidationReport, directory: Path) -> RenderableType:
    """The report as rich renderables: a category table, the top findings, the verdict."""
    table = Table(title=f"Validation of {directory}", title_justify="left")
    table.add_column("category")
    table.add_column("status")
    table.add_column("score", justify="right")
    table.add_column("summary", overflow="fold")
    for name, result in report.categories.items():
        table.add_row(
            name,
            Text(result.status, style=STATUS_STYLE[result.status]),
            "-" if result.score is None else str(result.score),
            result.summary,
        )
    parts: list[RenderableType] = [table]
    for name, result in report.categories.items():
        if result.status not in ("fail", "warning") or not result.findings:
            continue
        findings = result.sorted_findings()
        lines = Text(f"{name}: top findings\n", style="bold")
        for finding in findings[:TOP_FINDINGS]:
            where = f"{finding.location()} " if finding.location() else ""
            rule = f"[{finding.rule}] " if finding.rule else ""
            lines.append(f"  {finding.severity:<8} ", style=_severity_style(finding.severity))
            lines.append(f"{where}{rule}{finding.message.splitlines()[0]}\n")
        if len(findings) > TOP_FINDINGS:
            lines.append(f"  … and {len(findings) - TOP_FINDINGS} more\n", style="dim")
        parts.append(lines)
    if report.fixes_applied is not None:
        fixes = report.fixes_applied
        text = f"fixes applied: {fixes.count} in {len(fixes.files)} files"
        parts.append(Text(text + (f" ({fixes.reason})" if fixes.reason else "")))
    verdict = Text("overall: ")
    verdict.append(report.overall, style=f"bold {STATUS_STYLE[report.overall]}")
    verdict.append(f"  score {report.score if report.score is not None else '-'}/100")
    verdict.append(f"  languages {', '.join(report.languages) or 'none detected'}")
    verdict.append(f"  {report.duration_ms / 1000:.1f} s", style="dim")
    parts.append(verdict)
    return Group(*parts)


def _severity_style(severity: str) -> str:
    return {"critical": "bold red", "high": "red", "medium": "yellow"}.get(severity, "dim")
