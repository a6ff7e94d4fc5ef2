"""Phase gates from session facts, the COMPLETE gate on real validation, the recovery message."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from keen.validation import CategoryResult, Finding, ValidationReport
from keen.validation.gates import SessionFacts, evaluate_gate, recovery_message, run_complete_gate

ProjectFactory = Callable[..., Path]

FAILING_TEST = """\
    from calc import mul


    def test_mul_by_zero():
        assert mul(7, 0) == 7, "anything times zero is zero"
"""


async def test_complete_gate_refuses_failing_tests(make_project: ProjectFactory) -> None:
    root = make_project({"tests/test_zero.py": FAILING_TEST}, clean=True)

    result, report = await run_complete_gate(root, SessionFacts(phase="COMPLETE"), "standard")

    assert report is not None
    assert list(report.categories) == ["syntax", "tests", "security"]
    assert result.passed is False
    [reason] = result.reasons
    assert reason.startswith("tests fail: 2 passed, 1 failed")
    message = recovery_message(result, report, attempt=1, max_attempts=3)
    assert "attempt 1 of 3" in message
    assert "test_mul_by_zero" in message
    assert "anything times zero is zero" in message
    assert "tests/test_zero.py:5" in message
    assert "2 more completion attempts" in message


async def test_complete_gate_passes_a_clean_project(make_project: ProjectFactory) -> None:
    root = make_project(clean=True)

    result, report = await run_complete_gate(root, SessionFacts(phase="COMPLETE"), "standard")

    assert result.passed, result.to_dict()
    assert report is not None and report.overall == "pass"
    assert {c["name"] for c in result.to_dict()["checks"]} == {
        "syntax passes",
        "tests pass",
        "no critical security finding",
    }


async def test_project_without_tests_passes_standard_but_not_strict(make_project: ProjectFactory) -> None:
    root = make_project(clean=True)
    (root / "tests" / "test_calc.py").unlink()

    standard, _ = await run_complete_gate(root, SessionFacts(phase="COMPLETE"), "standard")
    strict, strict_report = await run_complete_gate(root, SessionFacts(phase="COMPLETE"), "strict")

    assert standard.passed
    assert not strict.passed
    assert strict.reasons == ["the project has no tests: strict gates require tests"]
    assert strict_report is not None and "style" in strict_report.categories


async def test_strict_gate_requires_style(make_project: ProjectFactory) -> None:
    root = make_project({"calc/messy.py": "import os\nimport sys\nimport json\n"}, clean=True)

    result, report = await run_complete_gate(root, SessionFacts(phase="COMPLETE"), "strict")

    assert report is not None and report.categories["style"].status == "fail"
    assert not result.passed
    assert any(r.startswith("style fails") for r in result.reasons)
    assert "[F401]" in recovery_message(result, report, attempt=3, max_attempts=3)


async def test_gates_off_pass_without_running_anything(tmp_path: Path) -> None:
    result, report = await run_complete_gate(tmp_path / "missing", SessionFacts(phase="COMPLETE"), "off")

    assert result.passed and report is None


def _report(**categories: CategoryResult) -> ValidationReport:
    return ValidationReport(overall="fail", score=50, categories=categories, languages=["python"])


def test_critical_security_finding_blocks_completion() -> None:
    secret = Finding(
        "AWS access key id in source", file="app.py", line=3, rule="aws-access-key-id", severity="critical"
    )
    report = _report(
        syntax=CategoryResult("syntax", "pass", 100, "ok"),
        tests=CategoryResult("tests", "pass", 100, "3 passed", details={"has_tests": True}),
        security=CategoryResult("security", "fail", 50, "1 critical", findings=[secret]),
    )

    result = evaluate_gate("COMPLETE", SessionFacts(phase="COMPLETE", validation=report), "standard")

    assert not result.passed
    assert result.reasons == ["1 critical security finding(s): app.py:3 AWS access key id in source"]
    message = recovery_message(result, report, attempt=3, max_attempts=3)
    assert "app.py:3: AWS access key id in source" in message
    assert "last completion attempt" in message


def test_syntax_errors_are_listed_with_file_and_line() -> None:
    error = Finding("invalid syntax", file="pkg/mod.py", line=12, rule="SyntaxError", severity="high")
    report = _report(
        syntax=CategoryResult("syntax", "fail", 75, "1 syntax error", findings=[error]),
        tests=CategoryResult("tests", "warning", 0, "no tests found", details={"has_tests": False}),
        security=CategoryResult("security", "pass", 100, "none"),
    )

    result = evaluate_gate("COMPLETE", SessionFacts(phase="COMPLETE", validation=report), "standard")

    assert not result.passed
    assert "pkg/mod.py:12: invalid syntax" in recovery_message(result, report, 1, 3)


def test_complete_gate_without_validation_fails() -> None:
    result = evaluate_gate("COMPLETE", SessionFacts(phase="COMPLETE"), "standard")
    assert not result.passed
    assert result.reasons == ["the project has not been validated"]


@pytest.mark.parametrize(
    ("phase", "facts", "advisory_failed"),
    [
        ("EXPLORE", SessionFacts(phase="EXPLORE"), True),
        ("EXPLORE", SessionFacts(phase="EXPLORE", tool_counts={"read_files": 2}), False),
        ("PLAN", SessionFacts(phase="PLAN", tool_counts={"continue_work": 1}), False),
        ("FOUND", SessionFacts(phase="FOUND"), True),
        ("FOUND", SessionFacts(phase="FOUND", files_changed=["app.py"]), False),
        ("SUMMON", SessionFacts(phase="SUMMON", files_changed=["a.py"], children_summoned=1), False),
    ],
)
def test_earlier_phase_gates_are_advisory(phase: str, facts: SessionFacts, advisory_failed: bool) -> None:
    result = evaluate_gate(phase, facts, "strict")

    assert result.passed  # advisory checks never block
    assert result.reasons == []
    assert bool(result.advisories) is advisory_failed


def test_gates_off_always_pass() -> None:
    assert evaluate_gate("COMPLETE", SessionFacts(phase="COMPLETE"), "off").passed


def test_unknown_phase_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown phase"):
        evaluate_gate("DREAM", SessionFacts(phase="DREAM"), "standard")


COULD_NOT_RUN = CategoryResult(
    "tests",
    "error",
    None,
    "could not run: mocha is not installed (run npm install): the test script was not run",
    details={
        "has_tests": True,
        "could_not_run": [
            {
                "runner": "mocha",
                "reason": "mocha is not installed (run npm install): the test script was not run",
                "first_error": None,
                "environment": "npm test",
                "setup": ["npm ci"],
            }
        ],
    },
    reason="mocha is not installed (run npm install): the test script was not run",
)


@pytest.mark.parametrize("mode", ["standard", "strict"])
def test_tests_that_could_not_run_block_completion_with_how_to_set_them_up(mode: str) -> None:
    report = _report(
        syntax=CategoryResult("syntax", "pass", 100, "ok"),
        tests=COULD_NOT_RUN,
        security=CategoryResult("security", "pass", 100, "none"),
        style=CategoryResult("style", "pass", 100, "clean"),
    )

    result = evaluate_gate("COMPLETE", SessionFacts(phase="COMPLETE", validation=report), mode)  # type: ignore[arg-type]

    assert not result.passed
    assert result.reasons == [
        "tests could not run (not a test failure): mocha is not installed (run npm install): the test script was not run"
    ]
    message = recovery_message(result, report, attempt=1, max_attempts=3)
    assert "The tests could not run. That is not a test failure" in message
    assert "  Environment used: npm test\n" in message
    assert (
        "  Set the environment up with `run_command` in the workspace, then validate again:\n    npm ci\n"
        in message
    )
    assert "set up the environment the tests could not run in" in message
    assert "Failing tests:" not in message
