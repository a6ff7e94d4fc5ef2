"""Phase gates: checks computed from what really happened in a session.

EXPLORE, PLAN, FOUND and SUMMON gates are advisory: their checks are reported (and can be
turned into nudges) but never block. The COMPLETE gate blocks completion (SPEC 6.2/6.3):
- standard: syntax passes, the tests pass when the project has tests, no critical security
  finding;
- strict: also style passes and tests exist (and ran);
- off: always passes, nothing is run.
A category that was skipped (its tool is missing) satisfies the standard gate with a note and
fails the strict one: strict means "proven", not "not disproven". Tests that could not run
(`error`: the project's environment is not set up) fail both, and the recovery message says
how to set the environment up.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from keen.validation.engine import validate_project
from keen.validation.report import COULD_NOT_RUN, CategoryResult, Timeouts, ValidationReport

GateMode = Literal["standard", "strict", "off"]
PHASES = ("EXPLORE", "PLAN", "FOUND", "SUMMON", "COMPLETE")
EXPLORING_TOOLS = frozenset({"get_project_tree", "read_files", "search_files", "run_command", "git"})
PLANNING_TOOLS = frozenset({"continue_work", "report_phase"})


@dataclass
class SessionFacts:
    """What the session has actually done, gathered by the agent loop from its events."""

    phase: str
    files_changed: list[str] = field(default_factory=list)
    validation: ValidationReport | None = None  # the latest report
    tests_run: bool = False
    commands_run: int = 0
    tool_counts: dict[str, int] = field(default_factory=dict)  # tool name -> calls so far
    children_summoned: int = 0


@dataclass
class GateCheck:
    name: str
    passed: bool
    detail: str
    required: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "detail": self.detail, "required": self.required}


@dataclass
class GateResult:
    phase: str
    mode: GateMode
    passed: bool
    checks: list[GateCheck] = field(default_factory=list)

    @property
    def reasons(self) -> list[str]:
        """Why the gate failed: the details of the failed required checks."""
        return [c.detail for c in self.checks if c.required and not c.passed]

    @property
    def advisories(self) -> list[str]:
        return [c.detail for c in self.checks if not c.required and not c.passed]

    def to_dict(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "mode": self.mode,
            "passed": self.passed,
            "checks": [c.to_dict() for c in self.checks],
            "reasons": self.reasons,
            "advisories": self.advisories,
        }


def evaluate_gate(phase: str, facts: SessionFacts, mode: GateMode) -> GateResult:
    """The gate of `phase` over `facts` (see the module docstring for the rules)."""
    phase = phase.upper()
    if phase not in PHASES:
        raise ValueError(f"unknown phase {phase!r}; phases are {', '.join(PHASES)}")
    if mode == "off":
        return GateResult(phase, mode, True, [GateCheck("gates", True, "gates are off", required=False)])
    checks = (
        _complete(facts, mode)
        if phase == "COMPLETE"
        else [replace(c, required=False) for c in _ADVISORY[phase](facts)]
    )
    return GateResult(phase, mode, all(c.passed for c in checks if c.required), checks)


async def run_complete_gate(
    root: Path, facts: SessionFacts, mode: GateMode, *, timeouts: Timeouts | None = None
) -> tuple[GateResult, ValidationReport | None]:
    """Validate the workspace (syntax, tests, security; style too when strict) and gate on it."""
    if mode == "off":
        return evaluate_gate("COMPLETE", facts, mode), None
    categories = ["syntax", "tests", "security"] + (["style"] if mode == "strict" else [])
    report = await validate_project(root, categories=categories, timeouts=timeouts)
    return evaluate_gate("COMPLETE", replace(facts, validation=report), mode), report


# --- the checks ---------------------------------------------------------------------------------


def _explored(facts: SessionFacts) -> list[GateCheck]:
    used = sum(n for name, n in facts.tool_counts.items() if name in EXPLORING_TOOLS)
    return [
        GateCheck(
            "explored",
            used > 0,
            f"{used} look(s) at the workspace"
            if used
            else "the workspace has not been looked at (get_project_tree, read_files, search_files)",
        )
    ]


def _planned(facts: SessionFacts) -> list[GateCheck]:
    used = sum(n for name, n in facts.tool_counts.items() if name in PLANNING_TOOLS)
    return [
        GateCheck(
            "plan recorded",
            used > 0,
            "a plan was recorded"
            if used
            else "no plan recorded yet (continue_work or a report_phase summary)",
        )
    ]


def _changed(facts: SessionFacts) -> list[GateCheck]:
    n = len(facts.files_changed)
    return [GateCheck("files changed", n > 0, f"{n} file(s) changed" if n else "no files changed yet")]


def _implemented(facts: SessionFacts) -> list[GateCheck]:
    checks = _changed(facts)
    if facts.children_summoned:
        detail = f"{facts.children_summoned} specialist(s) summoned"
        checks.append(GateCheck("children summoned", True, detail))
    return checks


_ADVISORY: dict[str, Callable[[SessionFacts], list[GateCheck]]] = {
    "EXPLORE": _explored,
    "PLAN": _planned,
    "FOUND": _changed,
    "SUMMON": _implemented,
}


def _complete(facts: SessionFacts, mode: GateMode) -> list[GateCheck]:
    report = facts.validation
    if report is None:
        return [GateCheck("validation", False, "the project has not been validated")]
    strict = mode == "strict"
    checks = [
        _syntax_check(report.category("syntax"), strict),
        _tests_check(report.category("tests"), strict),
    ]
    critical = report.critical_findings()
    checks.append(
        GateCheck(
            "no critical security finding",
            not critical,
            "no critical security finding"
            if not critical
            else f"{len(critical)} critical security finding(s): "
            + "; ".join(f"{f.location()} {f.message}" for f in critical[:5]),
        )
    )
    if strict:
        checks.append(_style_check(report.category("style")))
    return checks


def _syntax_check(result: CategoryResult | None, strict: bool) -> GateCheck:
    if result is None:
        return GateCheck("syntax passes", False, "syntax was not validated")
    if result.status == "skipped":
        return GateCheck("syntax passes", not strict, f"syntax not checked: {result.reason}")
    return GateCheck(
        "syntax passes",
        result.status != "fail",
        "all files parse" if result.status != "fail" else f"syntax errors: {result.summary}",
    )


def _tests_check(result: CategoryResult | None, strict: bool) -> GateCheck:
    name = "tests exist and pass" if strict else "tests pass"
    if result is None:
        return GateCheck(name, False, "tests were not validated")
    if result.status == "skipped":
        return GateCheck(name, not strict, f"tests could not be run: {result.reason}")
    if result.status == COULD_NOT_RUN:
        return GateCheck(name, False, f"tests could not run (not a test failure): {result.reason}")
    if not result.details.get("has_tests"):
        return GateCheck(
            name, not strict, "the project has no tests" + (": strict gates require tests" if strict else "")
        )
    if result.status == "fail":
        return GateCheck(name, False, f"tests fail: {result.summary}")
    return GateCheck(name, True, result.summary)


def _style_check(result: CategoryResult | None) -> GateCheck:
    if result is None:
        return GateCheck("style passes", False, "style was not validated")
    if result.status == "skipped":
        return GateCheck("style passes", False, f"style could not be checked: {result.reason}")
    return GateCheck(
        "style passes",
        result.status != "fail",
        result.summary if result.status != "fail" else f"style fails: {result.summary}",
    )


# --- recovery message ---------------------------------------------------------------------------

_templates = Environment(
    loader=PackageLoader("keen.validation", "templates"),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
    autoescape=select_autoescape(enabled_extensions=("html", "xml")),  # .j2 prompts are plain text
)


def recovery_message(
    result: GateResult, report: ValidationReport | None, attempt: int, max_attempts: int
) -> str:
    """What the agent is told when completion is refused: what failed, exactly, and what to do."""
    syntax = report.category("syntax") if report else None
    tests = report.category("tests") if report else None
    style = report.category("style") if report else None
    return _templates.get_template("completion_blocked.j2").render(
        result=result,
        reasons=result.reasons,
        attempt=attempt,
        max_attempts=max_attempts,
        remaining=max(0, max_attempts - attempt),
        syntax_errors=syntax.sorted_findings()[:10] if syntax and syntax.status == "fail" else [],
        test_failures=(tests.details.get("failures", [])[:5]) if tests and tests.status == "fail" else [],
        test_problem=tests.reason if tests and tests.status == "fail" else None,
        could_not_run=tests.details.get("could_not_run", [])
        if tests and tests.status == COULD_NOT_RUN
        else [],
        critical=report.critical_findings()[:10] if report else [],
        style_findings=style.sorted_findings()[:10] if style and style.status == "fail" else [],
        strict=result.mode == "strict",
    )
