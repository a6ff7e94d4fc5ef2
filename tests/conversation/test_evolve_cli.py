"""`keen evolve`: an improvement vision built from a real validation of the project."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import call, complete, git, run_keen, turn, write_script

CALC = "def add(a, b):\n    return a - b\n"
TEST_CALC = (
    "from calc import add\n\n\ndef test_add_sums_two_numbers():\n    assert add(2, 3) == 5, 'add must sum'\n"
)


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    """A small Python project whose only test fails, with no README."""
    path = tmp_path / "calc-project"
    path.mkdir()
    (path / "calc.py").write_text(CALC)
    (path / "test_calc.py").write_text(TEST_CALC)
    git(path, "init", "-q", "-b", "main")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "initial")
    return path


def test_dry_run_writes_a_vision_naming_the_real_failures(
    broken: Path, tmp_path: Path, keen_home: Path
) -> None:
    result = run_keen(
        "evolve",
        "--dir",
        str(broken),
        "--dry-run",
        "--focus",
        "correct arithmetic",
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    path = broken / "evolution-vision.md"
    assert f"Evolution vision written: {path}" in result.stdout
    text = path.read_text()
    assert "calc-project" in text
    assert "test_add_sums_two_numbers" in text  # the failing test, by name
    assert "add must sum" in text and "assert -1 == 5" in text  # and its message
    assert "test_calc.py" in text
    assert "correct arithmetic" in text  # the focus
    assert "no README" in text  # documentation finding
    assert "overall **fail**" in text
    # No model: no key is configured and nothing was stored.
    assert not (keen_home / "keen.db").exists()


def test_dry_run_on_a_project_without_tests_asks_for_them(tmp_path: Path) -> None:
    project = tmp_path / "p"
    project.mkdir()
    (project / "app.py").write_text('"""An app."""\n\n\ndef main():\n    """Run."""\n    return 1\n')
    result = run_keen("evolve", "--dir", str(project), "--dry-run", "--json", cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["dry_run"] is True and data["path"] == str(project / "evolution-vision.md")
    assert "## Missing tests" in data["vision"] and "## Failing tests" not in data["vision"]


def test_evolve_runs_the_agent_with_150_iterations_and_the_vision(broken: Path, tmp_path: Path) -> None:
    script = write_script(
        tmp_path / "fix.json",
        [turn(call("edit_file", path="calc.py", old_text="a - b", new_text="a + b")), complete("fixed add")],
    )
    result = run_keen(
        "evolve", "--dir", str(broken), "--model", f"scripted:{script}", "--json", cwd=tmp_path, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads(result.stdout)
    assert data["status"] == "completed" and data["files_modified"] == ["calc.py"]
    shown = run_keen("sessions", "show", data["session_id"], "--json", cwd=tmp_path)
    session = json.loads(shown.stdout)
    created = next(e for e in session["events"] if e["type"] == "session.created")["data"]
    assert created["options"]["max_iterations"] == 150
    assert "test_add_sums_two_numbers" in created["vision"]


def test_bad_input_is_refused_before_validating(tmp_path: Path, keen_home: Path) -> None:
    missing = run_keen("evolve", "--dir", "nowhere", "--dry-run", cwd=tmp_path)
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    no_key = run_keen("evolve", "--dir", str(tmp_path), cwd=tmp_path)
    assert no_key.returncode == 2 and "ANTHROPIC_API_KEY" in no_key.stderr
    assert "Validating" not in no_key.stdout
    assert not (keen_home / "keen.db").exists()


def test_vision_from_a_report_covers_every_kind_of_finding(tmp_path: Path) -> None:
    from keen.agent.evolve import evolution_vision
    from keen.validation.report import CategoryResult, Finding, ValidationReport

    lint = [Finding("line too long", file="big.py", line=n, rule="E501", severity="low") for n in range(1, 4)]
    report = ValidationReport(
        overall="fail",
        score=31,
        languages=["python"],
        categories={
            "syntax": CategoryResult(
                "syntax",
                "fail",
                0,
                "1 error",
                [Finding("invalid syntax", file="a.py", line=2, rule="SyntaxError")],
            ),
            "style": CategoryResult("style", "warning", 80, "3 findings", lint),
            "tests": CategoryResult(
                "tests", "fail", 0, "pytest timed out after 300 s", reason="pytest timed out after 300 s"
            ),
            "security": CategoryResult(
                "security",
                "fail",
                35,
                "1 critical",
                [Finding("hard-coded password", file="s.py", line=1, rule="S105", severity="critical")],
            ),
            "performance": CategoryResult(
                "performance", "skipped", None, "skipped: tests timed out", reason="no data"
            ),
        },
    )
    text = evolution_vision(report, workspace=tmp_path, focus=None)
    assert "a.py:2: [SyntaxError] invalid syntax" in text
    assert "big.py: 3 style findings (E501 ×3)" in text
    assert "- pytest timed out after 300 s" in text  # the suite's failure, though no test is named
    assert "s.py:1: [S105] hard-coded password (critical)" in text
    assert "performance: no data" in text  # what could not be checked is said
    assert "## Focus" not in text
