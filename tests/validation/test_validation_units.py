"""Pieces of the engine with no external tool: report parsing, scoring, the overall rule, docs."""

from __future__ import annotations

from pathlib import Path

from keen.validation import CategoryResult, Finding, ValidationReport
from keen.validation.categories.documentation import docstring_coverage, read_readme
from keen.validation.engine import overall_status, weighted_score
from keen.validation.testreports import parse_jest_json, parse_junit

JUNIT = """\
<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" tests="5">
  <testcase classname="tests.test_a" name="test_ok" file="tests/test_a.py" line="0"/>
  <testcase classname="tests.test_a" name="test_bad" file="tests/test_a.py" line="3">
    <failure message="AssertionError: totals differ&#10;assert 3 == 4">def test_bad():
&gt;       assert 3 == 4, "totals differ"
E       AssertionError: totals differ

tests/test_a.py:5: AssertionError</failure>
  </testcase>
  <testcase classname="tests.test_a" name="test_boom"><error message="fixture 'db' not found"/></testcase>
  <testcase classname="tests.test_a" name="test_later"><skipped message="not yet"/></testcase>
  <testcase classname="tests.test_a" name="test_ok2"/>
</testsuite></testsuites>
"""


def test_junit_counts_and_first_failure(tmp_path: Path) -> None:
    report = tmp_path / "junit.xml"
    report.write_text(JUNIT)

    counts = parse_junit(report)

    assert counts is not None
    assert (counts.passed, counts.failed, counts.errored, counts.skipped) == (2, 1, 1, 1)
    failure, error = counts.failures
    assert failure.name == "tests.test_a::test_bad"
    assert failure.message.startswith("AssertionError: totals differ")
    assert (failure.file, failure.line) == ("tests/test_a.py", 5)
    assert (error.kind, error.message) == ("error", "fixture 'db' not found")


def test_missing_or_broken_junit_is_none(tmp_path: Path) -> None:
    assert parse_junit(tmp_path / "absent.xml") is None
    (tmp_path / "broken.xml").write_text("<testsuites>")
    assert parse_junit(tmp_path / "broken.xml") is None


def test_jest_json_report(tmp_path: Path) -> None:
    report = tmp_path / "jest.json"
    report.write_text(
        '{"numPassedTests": 4, "numFailedTests": 1, "numPendingTests": 2, "numTodoTests": 0,'
        ' "numRuntimeErrorTestSuites": 0, "testResults": [{"name": "/p/sum.test.js", "status": "failed",'
        ' "assertionResults": [{"status": "failed", "fullName": "sum adds",'
        ' "failureMessages": ["expect(received).toBe(expected)"]}]}]}'
    )

    counts = parse_jest_json(report)

    assert counts is not None
    assert (counts.passed, counts.failed, counts.skipped) == (4, 1, 2)
    assert counts.failures[0].name == "sum adds"


def _result(name: str, status: str, score: int | None, **kw: object) -> CategoryResult:
    return CategoryResult(name, status, score, "", **kw)  # type: ignore[arg-type]


def test_weighted_score_leaves_skipped_categories_out() -> None:
    results = {
        "syntax": _result("syntax", "pass", 100),
        "tests": _result("tests", "fail", 50),
        "style": CategoryResult.skipped("style", "ruff is not installed"),
    }
    # (20 * 100 + 25 * 50) / 45
    assert weighted_score(results) == 72
    assert weighted_score({"style": CategoryResult.skipped("style", "x")}) is None


def test_overall_status_rule() -> None:
    clean = {
        "syntax": _result("syntax", "pass", 100),
        "tests": _result("tests", "pass", 100, details={"has_tests": True}),
        "security": _result("security", "pass", 100),
        "documentation": _result("documentation", "pass", 100),
    }
    assert overall_status(clean, 100) == "pass"
    assert overall_status(clean, 60) == "warning"  # below the threshold
    assert overall_status({**clean, "documentation": _result("documentation", "fail", 20)}, 90) == "warning"
    assert overall_status({**clean, "syntax": _result("syntax", "fail", 75)}, 90) == "fail"
    assert overall_status({**clean, "tests": _result("tests", "fail", 50)}, 90) == "fail"
    no_tests = _result("tests", "warning", 0, details={"has_tests": False})
    assert overall_status({**clean, "tests": no_tests}, 90) == "warning"
    critical = Finding("key", severity="critical")
    warned = _result("security", "fail", 50, findings=[critical])
    assert overall_status({**clean, "security": warned}, 90) == "fail"
    high = _result("security", "fail", 80, findings=[Finding("env", severity="high")])
    assert overall_status({**clean, "security": high}, 90) == "warning"


def test_tests_that_could_not_run_are_no_pass_and_no_fail() -> None:
    clean = {
        "syntax": _result("syntax", "pass", 100),
        "tests": _result("tests", "pass", 100, details={"has_tests": True}),
    }
    could_not_run = _result("tests", "error", None, details={"has_tests": True})

    assert overall_status({**clean, "tests": could_not_run}, 100) == "warning"
    assert could_not_run.passed is False
    assert could_not_run.to_dict()["passed"] is False
    assert weighted_score({**clean, "tests": could_not_run}) == 100  # not scored


def test_report_to_dict_trims_findings_most_severe_first() -> None:
    findings = [Finding(f"f{i}", severity="low") for i in range(5)] + [Finding("worst", severity="critical")]
    report = ValidationReport(
        overall="fail",
        score=40,
        categories={"security": _result("security", "fail", 40, findings=findings)},
        languages=["python"],
    )

    data = report.to_dict(max_findings=2)["categories"]["security"]

    assert [f["message"] for f in data["findings"]] == ["worst", "f0"]
    assert data["findings_total"] == 6
    assert data["passed"] is False


def test_readme_sections_are_recognised(tmp_path: Path) -> None:
    (tmp_path / "README.rst").write_text("Tool\n====\n\nGetting the code\n----------------\n\nRun it.\n")
    facts = read_readme(tmp_path)
    assert facts.path == "README.rst"
    assert not facts.has_install and facts.words < 50

    (tmp_path / "README.md").write_text(
        "# Tool\n\n## Install\n\npip install tool\n\n## Usage\n\ntool --help\n"
    )
    facts = read_readme(tmp_path)
    assert facts.path == "README.md"
    assert facts.has_install and facts.has_usage


def test_docstring_coverage_counts_public_definitions_only(tmp_path: Path) -> None:
    (tmp_path / "mod.py").write_text(
        '"""Module."""\n\n'
        "def public():\n    '''Documented.'''\n\n"
        "def bare():\n    pass\n\n"
        "def _private():\n    pass\n\n"
        "class Thing:\n    '''A thing.'''\n\n    def method(self):\n        pass\n\n"
        "    def _hidden(self):\n        pass\n"
    )

    documented, missing = docstring_coverage(tmp_path, ["mod.py"])

    assert documented == 2
    assert [(name, line) for _, line, _, name in missing] == [("bare", 6), ("Thing.method", 15)]


async def test_a_ruff_that_prints_nothing_is_a_failure_not_a_clean_pass(tmp_path: Path) -> None:
    """A ruff that could not run (exit 1, no output) must not read as "no findings"."""
    import os

    import pytest

    from keen.validation.external import ToolFailed
    from keen.validation.ruff import ruff_check

    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    for name in ("python", "ruff"):
        (bin_dir / name).write_text("#!/bin/sh\nexit 1\n")
        (bin_dir / name).chmod(0o755)
    (tmp_path / "mod.py").write_text("import os\n")
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    with pytest.raises(ToolFailed, match="printed no JSON"):
        await ruff_check(tmp_path, ["."], timeout=30, env=env)
