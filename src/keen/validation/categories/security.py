"""security: ruff's bandit rules (`S`), hard-coded secrets, and `.env` files git would commit.

Severities: hard-coded secrets and private keys are `critical`; an un-ignored `.env` is `high`;
ruff's rules carry bandit's severity for the same check (`HIGH_RULES` / `LOW_RULES`, the rest
medium). In test code only high-severity ruff rules count (asserts, fixture passwords and
subprocess calls are normal there). The category fails on any critical or high finding.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from keen.gitrepo import GitRepo
from keen.validation.context import CheckContext
from keen.validation.detect import SKIP_DIRS, in_scope, is_test_file
from keen.validation.external import ToolFailed, ToolUnavailable
from keen.validation.report import CategoryResult, Finding, Severity, Status
from keen.validation.ruff import RuffDiagnostic, ruff_check
from keen.validation.secrets import scan_file

NAME = "security"
HIGH_RULES = frozenset(
    {
        "S201",
        "S202",
        "S304",
        "S312",
        "S321",
        "S324",
        "S401",
        "S402",
        "S413",
        "S501",
        "S502",
        "S505",
        "S507",
        "S602",
        "S605",
        "S609",
        "S701",
    }
)
LOW_RULES = frozenset(
    {
        "S101",
        "S105",
        "S106",
        "S107",
        "S110",
        "S112",
        "S311",
        "S403",
        "S404",
        "S405",
        "S406",
        "S407",
        "S408",
        "S409",
        "S410",
        "S411",
        "S504",
        "S603",
        "S606",
        "S607",
    }
)
PASSWORD_RULES = frozenset({"S105", "S106", "S107"})
PENALTY = {"critical": 50, "high": 20, "medium": 5, "low": 1}
PENALTY_CAP = {"medium": 40, "low": 20}  # many small findings should not outweigh one real hole
ENV_TEMPLATE_SUFFIXES = (".example", ".sample", ".template", ".dist", ".defaults", ".schema")


async def check(ctx: CheckContext) -> CategoryResult:
    project = ctx.project
    findings: list[Finding] = []
    not_checked: list[str] = []
    checks: list[str] = []

    # The secrets scan reads every file in a thread while ruff runs: neither waits for the other.
    scan = asyncio.ensure_future(asyncio.to_thread(_scan_secrets, ctx.root, project.checked))
    if project.python:
        try:
            diagnostics = await ruff_check(
                ctx.root, ctx.lint_targets(), timeout=ctx.timeouts.linters, env=ctx.env, select=["S"]
            )
        except (ToolUnavailable, ToolFailed) as exc:
            not_checked.append(f"{exc}: bandit rules not checked")
        except BaseException:
            scan.cancel()
            raise
        else:
            checks.append("ruff S")
            findings += [f for d in diagnostics if not d.is_syntax_error and (f := _ruff_finding(d))]

    secrets = await scan
    checks.append("secrets")
    secret_lines = {(f.file, f.line) for f in secrets}
    # ruff's "possible hard-coded password" on a line the secret scan already flagged is one finding.
    findings = [f for f in findings if not (f.rule in PASSWORD_RULES and (f.file, f.line) in secret_lines)]
    findings += secrets

    findings += await _env_files(ctx)
    checks.append(".env files")

    counts = {sev: sum(1 for f in findings if f.severity == sev) for sev in PENALTY}
    penalty = sum(min(PENALTY[sev] * n, PENALTY_CAP.get(sev, 100)) for sev, n in counts.items())
    score = max(0, 100 - penalty)
    details = {"checks": checks, "by_severity": counts, "not_checked": not_checked}
    status: Status
    if counts["critical"] or counts["high"]:
        status = "fail"
    elif findings:
        status = "warning"
    else:
        status = "pass"
    if findings:
        summary = ", ".join(f"{n} {sev}" for sev, n in counts.items() if n)
        summary += " security finding" if len(findings) == 1 else " security findings"
    else:
        summary = "no security findings"
    if not_checked:
        summary += f" ({'; '.join(not_checked)})"
    return CategoryResult(NAME, status, score, summary, findings, details)


def _ruff_finding(d: RuffDiagnostic) -> Finding | None:
    code = d.code or ""
    severity: Severity = "high" if code in HIGH_RULES else "low" if code in LOW_RULES else "medium"
    if is_test_file(d.file) and severity != "high":
        return None
    return Finding(
        d.message, file=d.file, line=d.line, column=d.column, rule=code, severity=severity, tool="ruff"
    )


def _scan_secrets(root: Path, files: list[str]) -> list[Finding]:
    out: list[Finding] = []
    for rel in files:
        out += scan_file(root, rel)
    return out


async def _env_files(ctx: CheckContext) -> list[Finding]:
    """`.env` files git would pick up (any `.env` when the project is not a git repository)."""
    candidates = [rel for rel in _find_env_files(ctx.root) if in_scope(rel, ctx.project.scope)]
    if not candidates:
        return []
    if ctx.project.is_git:
        result = await GitRepo(ctx.root).run("check-ignore", "--", *candidates, check=False)
        ignored = {line.strip() for line in result.stdout.splitlines()}
        exposed = [rel for rel in candidates if rel not in ignored]
        why = "is not ignored by git: add it to .gitignore so its secrets are never committed"
    else:
        exposed = candidates
        why = "is in a project without git: make it a repository and list .env in .gitignore"
    return [
        Finding(f"{rel} {why}", file=rel, rule="env-file-not-ignored", severity="high", tool="git")
        for rel in exposed
    ]


def _find_env_files(root: Path) -> list[str]:
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS]
        for name in filenames:
            if (name == ".env" or name.startswith(".env.")) and not name.endswith(ENV_TEMPLATE_SUFFIXES):
                out.append((Path(dirpath) / name).relative_to(root).as_posix())
    return sorted(out)
