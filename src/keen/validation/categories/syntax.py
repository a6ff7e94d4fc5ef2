"""syntax: does every source file parse?

Python files are byte-compiled in-process with `compile()` (exactly what the interpreter does
at import, without writing .pyc files); JavaScript files go through `node --check`, TypeScript
projects (a tsconfig.json) through `tsc --noEmit`. A language whose tool is missing is listed
under `not_checked`; the category is skipped only when nothing at all could be checked.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import warnings
from pathlib import Path

from keen.validation.context import CheckContext
from keen.validation.external import ToolUnavailable, find_node_tool, run_tool, tail
from keen.validation.report import CategoryResult, Finding, plural

NAME = "syntax"
NODE_CHECK_PARALLEL = 4
PENALTY_PER_BAD_FILE = 25

_NODE_LOCATION = re.compile(r"^(?P<file>.+):(?P<line>\d+)$")
_NODE_ERROR = re.compile(r"^\w*Error: .+$")
# `tsc --pretty false` prints one diagnostic per line in this documented form.
_TSC_LINE = re.compile(r"^(?P<file>.+?)\((?P<line>\d+),(?P<col>\d+)\): error (?P<code>TS\d+): (?P<msg>.*)$")
_TSC_GLOBAL = re.compile(r"^error (?P<code>TS\d+): (?P<msg>.*)$")


async def check(ctx: CheckContext) -> CategoryResult:
    project = ctx.project
    findings: list[Finding] = []
    checked: dict[str, int] = {}
    not_checked: list[str] = []

    if project.python:
        findings += await asyncio.to_thread(compile_python, ctx.root, project.python)
        checked["python"] = len(project.python)

    javascript = [f for f in project.javascript if Path(f).suffix != ".jsx"]  # JSX is not JS
    if javascript:
        node = shutil.which("node")
        if node is None:
            not_checked.append(f"node is not installed: {len(javascript)} JavaScript files not checked")
        else:
            findings += await _node_check(ctx, node, javascript)
            checked["javascript"] = len(javascript)

    if project.has_tsconfig and (project.typescript or not project.scoped):
        try:
            findings += await _tsc(ctx)
            checked["typescript"] = len(project.typescript)
        except ToolUnavailable as exc:
            not_checked.append(f"{exc}: TypeScript not checked")

    details = {"files_checked": checked, "errors": len(findings), "not_checked": not_checked}
    if not checked:
        reason = "; ".join(not_checked) or "no Python, JavaScript or TypeScript files to check"
        return CategoryResult.skipped(NAME, reason, details)
    total = sum(checked.values())
    if not findings:
        summary = f"{plural(total, 'file')} parse{'s' if total == 1 else ''} cleanly"
        return CategoryResult(NAME, "pass", 100, summary + _suffix(not_checked), details=details)
    bad_files = len({f.file for f in findings})
    first = findings[0]
    summary = (
        f"{plural(len(findings), 'syntax error')} in {plural(bad_files, 'file')}, "
        f"first {first.location()}: {first.message}"
    )
    score = max(0, 100 - PENALTY_PER_BAD_FILE * bad_files)
    return CategoryResult(NAME, "fail", score, summary + _suffix(not_checked), findings, details)


def compile_python(root: Path, files: list[str]) -> list[Finding]:
    """Byte-compile each file in memory; one finding per file that does not compile."""
    out: list[Finding] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SyntaxWarnings (invalid escapes) are not errors
        for rel in files:
            try:
                source = (root / rel).read_bytes()
            except OSError as exc:
                out.append(Finding(f"cannot read: {exc.strerror}", file=rel, severity="high", tool="python"))
                continue
            try:
                compile(source, rel, "exec", dont_inherit=True)
            except SyntaxError as exc:
                out.append(
                    Finding(
                        exc.msg,
                        file=rel,
                        line=exc.lineno,
                        column=exc.offset,
                        rule=type(exc).__name__,
                        severity="high",
                        tool="python",
                    )
                )
            except ValueError as exc:  # e.g. NUL bytes in the source
                out.append(Finding(str(exc), file=rel, rule="ValueError", severity="high", tool="python"))
    return out


async def _node_check(ctx: CheckContext, node: str, files: list[str]) -> list[Finding]:
    slots = asyncio.Semaphore(NODE_CHECK_PARALLEL)

    async def one(rel: str) -> Finding | None:
        async with slots:
            result = await run_tool(
                [node, "--check", rel], cwd=ctx.root, timeout=ctx.timeouts.syntax, env=ctx.env
            )
        if result.timed_out:
            return Finding(
                f"node --check timed out after {ctx.timeouts.syntax:g} s",
                file=rel,
                severity="high",
                tool="node",
            )
        if result.ok:
            return None
        return _node_finding(rel, result.stderr)

    results = await asyncio.gather(*(one(f) for f in files))
    return [f for f in results if f is not None]


def _node_finding(rel: str, stderr: str) -> Finding:
    lines = stderr.strip().splitlines()
    line_no = None
    if lines and (match := _NODE_LOCATION.match(lines[0])):
        line_no = int(match["line"])
    message = next((ln.strip() for ln in lines if _NODE_ERROR.match(ln.strip())), None) or tail(stderr, 3)
    return Finding(message, file=rel, line=line_no, rule="SyntaxError", severity="high", tool="node")


async def _tsc(ctx: CheckContext) -> list[Finding]:
    tsc = find_node_tool(ctx.root, "tsc")
    if tsc is None:
        raise ToolUnavailable("tsc is not installed")
    result = await run_tool(
        [tsc, "--noEmit", "--pretty", "false", "-p", "tsconfig.json"],
        cwd=ctx.root,
        timeout=ctx.timeouts.linters,
        env=ctx.env,
    )
    if result.timed_out:
        return [Finding(f"tsc timed out after {ctx.timeouts.linters:g} s", severity="high", tool="tsc")]
    findings = []
    for line in result.stdout.splitlines():
        if match := _TSC_LINE.match(line):
            findings.append(
                Finding(
                    match["msg"],
                    file=match["file"],
                    line=int(match["line"]),
                    column=int(match["col"]),
                    rule=match["code"],
                    severity="high",
                    tool="tsc",
                )
            )
        elif match := _TSC_GLOBAL.match(line):
            findings.append(Finding(match["msg"], rule=match["code"], severity="high", tool="tsc"))
    if not result.ok and not findings:
        output = tail(result.stdout + result.stderr)
        message = f"tsc failed (exit {result.exit_code}): {output}"
        findings.append(Finding(message, severity="high", tool="tsc"))
    return findings


def _suffix(notes: list[str]) -> str:
    return f" ({'; '.join(notes)})" if notes else ""
