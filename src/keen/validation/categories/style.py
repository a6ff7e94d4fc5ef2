"""style: lint findings from ruff (Python) and ESLint (JS/TS, only when the project configures it).

Both are the project's own when it has them: ruff from its virtualenv, ESLint from its
`node_modules/.bin` (started directly: `npx` would add its own start-up to every run).

The score falls with finding density: 100 - 10 per finding per 100 lines of checked code, so a
large clean-ish project is not punished for its size. The category fails below 80 (more than
two findings per 100 lines) and is a warning when there are findings at all.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from keen.validation.context import CheckContext
from keen.validation.detect import JAVASCRIPT_SUFFIXES, TYPESCRIPT_SUFFIXES
from keen.validation.external import ToolFailed, ToolUnavailable, find_node_tool, run_tool, tail
from keen.validation.report import CategoryResult, Finding, graded, plural
from keen.validation.ruff import ruff_check

NAME = "style"
PASS_SCORE = 80
PENALTY_PER_FINDING_PER_100_LINES = 10


async def check(ctx: CheckContext) -> CategoryResult:
    project = ctx.project
    findings: list[Finding] = []
    lines_checked = 0
    linters: list[str] = []
    not_checked: list[str] = []

    if project.python:
        try:
            diagnostics = await ruff_check(
                ctx.root, ctx.lint_targets(), timeout=ctx.timeouts.linters, env=ctx.env
            )
        except ToolUnavailable as exc:
            not_checked.append(f"{exc}: Python not linted")
        except ToolFailed as exc:
            return CategoryResult(NAME, "fail", 0, str(exc), reason=str(exc))
        else:
            linters.append("ruff")
            lines_checked += sum(project.lines(f) for f in project.python)
            findings += [
                Finding(
                    d.message,
                    file=d.file,
                    line=d.line,
                    column=d.column,
                    rule=d.code,
                    severity="medium" if (d.code or "").startswith("F") else "low",
                    tool="ruff",
                )
                for d in diagnostics
                if not d.is_syntax_error  # reported by the syntax category
            ]

    js_files = project.with_suffix(JAVASCRIPT_SUFFIXES | TYPESCRIPT_SUFFIXES)
    if js_files and project.eslint_configured:
        try:
            findings += await _eslint(ctx)
            linters.append("eslint")
            lines_checked += sum(project.lines(f) for f in js_files)
        except ToolUnavailable as exc:
            not_checked.append(f"{exc}: JavaScript/TypeScript not linted")
        except ToolFailed as exc:
            return CategoryResult(NAME, "fail", 0, str(exc), reason=str(exc))

    details = {
        "linters": linters,
        "findings": len(findings),
        "lines_checked": lines_checked,
        "not_checked": not_checked,
        "by_rule": _by_rule(findings),
    }
    if not linters:
        reason = "; ".join(not_checked) or "no files with a configured linter"
        return CategoryResult.skipped(NAME, reason, details)
    density = 100 * len(findings) / max(lines_checked, 1)
    score = max(0, round(100 - PENALTY_PER_FINDING_PER_100_LINES * density))
    status = graded(bool(findings), score, PASS_SCORE)
    if not findings:
        summary = f"no lint findings ({', '.join(linters)})"
    else:
        files = len({f.file for f in findings})
        summary = f"{plural(len(findings), 'lint finding')} in {plural(files, 'file')}"
        summary += f" ({density:.1f} per 100 lines)"
    details["per_100_lines"] = round(density, 2)
    return CategoryResult(NAME, status, score, summary, findings, details)


async def _eslint(ctx: CheckContext) -> list[Finding]:
    eslint = find_node_tool(ctx.root, "eslint")  # the project's own, from node_modules/.bin
    if eslint is None:
        raise ToolUnavailable("ESLint is configured but not installed (run npm install)")
    targets = ctx.lint_targets()
    result = await run_tool(
        [eslint, "-f", "json", *targets],
        cwd=ctx.root,
        timeout=ctx.timeouts.linters,
        env=ctx.env,
    )
    if result.timed_out:
        raise ToolFailed(f"eslint timed out after {ctx.timeouts.linters:g} s")
    try:
        reports = json.loads(result.stdout)
    except ValueError as exc:
        raise ToolFailed(f"eslint printed no JSON (exit {result.exit_code}): {tail(result.stderr)}") from exc
    findings = []
    for report in reports:
        rel = os.path.relpath(report.get("filePath", ""), ctx.root)
        for msg in report.get("messages", []):
            findings.append(
                Finding(
                    str(msg.get("message", "")),
                    file=Path(rel).as_posix(),
                    line=msg.get("line"),
                    column=msg.get("column"),
                    rule=msg.get("ruleId"),
                    severity="medium" if msg.get("severity") == 2 else "low",
                    tool="eslint",
                )
            )
    return findings


def _by_rule(findings: list[Finding], top: int = 10) -> dict[str, int]:
    counts: dict[str, int] = {}
    for f in findings:
        key = f.rule or "?"
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1])[:top])
