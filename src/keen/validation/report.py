"""What validation produces: findings, per-category results and the whole report.

These are plain dataclasses so the engine, the gates, the agent tool and the CLI share one shape;
`to_dict()` is the JSON form used in tool results, events and `keen validate --json`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Status = Literal["pass", "warning", "fail", "skipped", "error"]
# A category whose tool ran but could not do its job (a test suite that could not run): not
# passing, and not a verdict on the code either. Only the tests category uses it.
COULD_NOT_RUN: Status = "error"
Severity = Literal["critical", "high", "medium", "low", "info"]

CATEGORY_NAMES: tuple[str, ...] = ("syntax", "style", "tests", "security", "performance", "documentation")

SEVERITY_ORDER: dict[str, int] = {"critical": 0, "high": 1, "medium": 2, "low": 3, "info": 4}


def plural(n: int, noun: str) -> str:
    """'1 file', '3 files': summaries are read by people and models alike."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def graded(has_findings: bool, score: int, pass_score: int) -> Status:
    """The usual verdict: clean passes, findings above the bar warn, below it fail."""
    if not has_findings:
        return "pass"
    return "warning" if score >= pass_score else "fail"


@dataclass(frozen=True)
class Timeouts:
    """Seconds each kind of external tool may run before its process group is killed."""

    tests: float = 300.0
    linters: float = 120.0  # ruff, eslint, tsc
    syntax: float = 30.0  # one `node --check` of one file
    probe: float = 30.0  # quick checks such as "is pytest importable"


@dataclass
class Finding:
    message: str
    file: str | None = None
    line: int | None = None
    column: int | None = None
    rule: str | None = None
    severity: Severity = "medium"
    tool: str | None = None

    def location(self) -> str:
        if self.file is None:
            return ""
        return f"{self.file}:{self.line}" if self.line is not None else self.file

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"message": self.message, "severity": self.severity}
        for key in ("file", "line", "column", "rule", "tool"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out


@dataclass
class CategoryResult:
    """One category's verdict.

    `status`: `pass` (clean), `warning` (passes, with remarks), `fail`, `error` (could not
    run, e.g. a test suite in an environment without its dependencies; `reason` says why) or
    `skipped` (nothing could be checked, e.g. the tool is not installed; `reason` says why).
    `score` is 0-100, or None when skipped or could not run.
    """

    name: str
    status: Status
    score: int | None
    summary: str
    findings: list[Finding] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    duration_ms: int = 0
    reason: str | None = None

    @property
    def passed(self) -> bool | None:
        """True for pass/warning, False for fail and could-not-run, None for skipped (neither)."""
        if self.status == "skipped":
            return None
        return self.status in ("pass", "warning")

    @classmethod
    def skipped(cls, name: str, reason: str, details: dict[str, Any] | None = None) -> CategoryResult:
        return cls(
            name=name,
            status="skipped",
            score=None,
            summary=f"skipped: {reason}",
            details=details or {},
            reason=reason,
        )

    def sorted_findings(self) -> list[Finding]:
        return sorted(self.findings, key=lambda f: SEVERITY_ORDER.get(f.severity, 9))

    def to_dict(self, max_findings: int | None = None) -> dict[str, Any]:
        findings = self.sorted_findings()
        shown = findings if max_findings is None else findings[:max_findings]
        out: dict[str, Any] = {
            "status": self.status,
            "score": self.score,
            "passed": self.passed,
            "summary": self.summary,
            "findings": [f.to_dict() for f in shown],
            "details": self.details,
            "duration_ms": self.duration_ms,
        }
        if len(shown) < len(findings):
            out["findings_total"] = len(findings)
        if self.reason is not None:
            out["reason"] = self.reason
        return out


@dataclass
class FixSummary:
    """Safe auto-fixes applied before checking (only when asked for)."""

    count: int = 0
    files: list[str] = field(default_factory=list)
    reason: str | None = None  # why nothing could be fixed, e.g. ruff missing

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"count": self.count, "files": self.files}
        if self.reason is not None:
            out["reason"] = self.reason
        return out


@dataclass
class ValidationReport:
    overall: Literal["pass", "warning", "fail"]
    score: int | None
    categories: dict[str, CategoryResult]
    languages: list[str]
    fixes_applied: FixSummary | None = None
    duration_ms: int = 0

    def category(self, name: str) -> CategoryResult | None:
        return self.categories.get(name)

    def critical_findings(self) -> list[Finding]:
        security = self.categories.get("security")
        if security is None:
            return []
        return [f for f in security.findings if f.severity == "critical"]

    def event_data(self) -> dict[str, Any]:
        """The `validation.finished` event: the verdict and each category's status, not findings."""
        return {
            "overall": self.overall,
            "score": self.score,
            "languages": self.languages,
            "categories": {
                name: {"status": c.status, "score": c.score, "summary": c.summary}
                for name, c in self.categories.items()
            },
        }

    def to_dict(self, max_findings: int | None = None) -> dict[str, Any]:
        """The JSON form; `max_findings` trims each category's list (most severe kept)."""
        return {
            "overall": self.overall,
            "score": self.score,
            "categories": {name: c.to_dict(max_findings) for name, c in self.categories.items()},
            "languages": self.languages,
            "fixes_applied": self.fixes_applied.to_dict() if self.fixes_applied else None,
            "duration_ms": self.duration_ms,
        }
