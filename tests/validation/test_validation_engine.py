"""The validation engine on real fixture projects with real tools (compile, ruff, pytest, node)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from helpers import processes_with, wait_for
from keen.errors import InputError
from keen.validation import Timeouts, validate_project

ProjectFactory = Callable[..., Path]


async def test_python_syntax_error_fails_naming_file_and_line(make_project: ProjectFactory) -> None:
    root = make_project({"calc/broken.py": "def f(:\n    return 1\n"}, clean=True)

    report = await validate_project(root, categories=["syntax"])

    syntax = report.categories["syntax"]
    assert syntax.status == "fail"
    assert report.overall == "fail"
    [finding] = syntax.findings
    assert (finding.file, finding.line) == ("calc/broken.py", 1)
    assert "calc/broken.py:1" in syntax.summary


async def test_failing_pytest_reports_counts_and_assertion_message(make_project: ProjectFactory) -> None:
    failing = """\
        from calc import add


        def test_add_is_wrong():
            assert add(2, 2) == 5, "two and two make four"


        def test_add_ok():
            assert add(1, 1) == 2
    """
    root = make_project({"tests/test_more.py": failing}, clean=True)

    report = await validate_project(root, categories=["tests"])

    tests = report.categories["tests"]
    assert tests.status == "fail"
    assert report.overall == "fail"
    assert (tests.details["passed"], tests.details["failed"], tests.details["errored"]) == (3, 1, 0)
    [failure] = tests.details["failures"]
    assert failure["name"].endswith("test_add_is_wrong")
    assert "two and two make four" in failure["message"]
    assert failure["file"] == "tests/test_more.py"
    assert failure["line"] == 5
    assert "two and two make four" in tests.summary


async def test_clean_project_with_passing_tests_passes_overall(make_project: ProjectFactory) -> None:
    root = make_project(clean=True, git=True)

    report = await validate_project(root)

    statuses = {name: c.status for name, c in report.categories.items()}
    assert statuses == {name: "pass" for name in statuses}, report.to_dict()
    assert report.overall == "pass"
    assert report.score == 100
    assert report.languages == ["python"]
    assert report.categories["tests"].details["passed"] == 2
    # Validation leaves nothing behind in the workspace.
    leftovers = [p.name for p in root.rglob("*") if p.name in (".ruff_cache", ".pytest_cache", "__pycache__")]
    assert leftovers == []


async def test_ruff_findings_are_counted(make_project: ProjectFactory) -> None:
    messy = 'import os\nimport sys\n\n\ndef f():\n    """Doc."""\n    return 1\n'
    root = make_project({"calc/messy.py": messy}, clean=True)

    report = await validate_project(root, categories=["style"])

    style = report.categories["style"]
    assert style.details["findings"] == 2
    assert sorted((f.file, f.line, f.rule) for f in style.findings) == [
        ("calc/messy.py", 1, "F401"),
        ("calc/messy.py", 2, "F401"),
    ]
    assert style.status in ("warning", "fail")
    assert style.score is not None and style.score < 100


async def test_no_tests_is_said_clearly_and_is_not_a_failure(make_project: ProjectFactory) -> None:
    root = make_project(clean=True)
    (root / "tests" / "test_calc.py").unlink()

    report = await validate_project(root, categories=["syntax", "tests"])

    tests = report.categories["tests"]
    assert tests.status == "warning"
    assert tests.summary == "no tests found"
    assert tests.details["has_tests"] is False
    assert report.overall == "warning"


async def test_javascript_syntax_error_caught_by_node_check(make_project: ProjectFactory) -> None:
    root = make_project(
        {
            "package.json": '{"name": "web", "version": "1.0.0"}',
            "src/ok.js": "export const answer = 42;\n",
            "src/bad.js": "const a = 1;\nfunction f( {\n  return 2;\n}\n",
        }
    )

    report = await validate_project(root, categories=["syntax"])

    syntax = report.categories["syntax"]
    assert report.languages == ["javascript"]
    assert syntax.status == "fail"
    assert syntax.details["files_checked"] == {"javascript": 2}
    [finding] = syntax.findings
    assert finding.file == "src/bad.js"
    assert finding.line == 3
    assert finding.message.startswith("SyntaxError")


async def test_node_test_script_results_are_read_from_junit(make_project: ProjectFactory) -> None:
    root = make_project(
        {
            "package.json": '{"name": "web", "version": "1.0.0", "scripts": {"test": "node --test"}}',
            "test/math.test.js": """\
            const test = require("node:test");
            const assert = require("node:assert");
            test("adds", () => { assert.strictEqual(1 + 1, 2); });
            test("breaks", () => { assert.strictEqual(1 + 1, 3, "math is broken"); });
        """,
        }
    )

    report = await validate_project(root, categories=["tests"])

    tests = report.categories["tests"]
    assert tests.status == "fail"
    assert tests.details["runners"] == ["node --test"]
    assert (tests.details["passed"], tests.details["failed"]) == (1, 1)
    assert "math is broken" in tests.details["failures"][0]["message"]


async def test_hung_test_suite_times_out_promptly_and_is_killed(make_project: ProjectFactory) -> None:
    hanging = """\
        import time
        from pathlib import Path


        def test_hangs():
            Path("pytest.started").write_text("yes")
            time.sleep(60)
    """
    root = make_project({"tests/test_hang.py": hanging}, clean=True)

    started = time.monotonic()
    report = await validate_project(root, categories=["tests"], timeouts=Timeouts(tests=5))
    elapsed = time.monotonic() - started

    tests = report.categories["tests"]
    assert elapsed < 20
    assert tests.status == "fail"
    assert tests.reason is not None and "timed out after 5 s" in tests.reason
    assert tests.details["timed_out"] is True
    assert report.overall == "fail"
    assert (root / "pytest.started").exists()
    # The sandboxed pytest has a PID of its own namespace: look for it from outside.
    wait_for(lambda: processes_with(str(root)) == [], timeout=5)


async def test_fix_applies_safe_fixes_and_reports_them(make_project: ProjectFactory) -> None:
    messy = 'import os\nimport sys\n\n\ndef f():\n    """Doc."""\n    return sys.argv\n'
    root = make_project({"calc/messy.py": messy}, clean=True)

    report = await validate_project(root, categories=["style"], fix=True)

    assert report.fixes_applied is not None
    assert report.fixes_applied.count == 1
    assert report.fixes_applied.files == ["calc/messy.py"]
    assert "import os" not in (root / "calc/messy.py").read_text()
    assert report.categories["style"].status == "pass"


async def test_without_fix_files_are_left_untouched(make_project: ProjectFactory) -> None:
    messy = 'import os\n\n\ndef f():\n    """Doc."""\n    return 1\n'
    root = make_project({"calc/messy.py": messy}, clean=True)
    # A project config asking ruff to fix must not turn a check into an edit.
    with (root / "pyproject.toml").open("a") as config:
        config.write("\n[tool.ruff]\nfix = true\n")

    report = await validate_project(root)

    assert (root / "calc/messy.py").read_text() == messy
    assert report.fixes_applied is None
    assert report.categories["style"].details["findings"] == 1


async def test_scope_restricts_the_files_checked(make_project: ProjectFactory) -> None:
    root = make_project({"calc/broken.py": "def f(:\n", "other/fine.py": "x = 1\n"}, clean=True)

    report = await validate_project(root, categories=["syntax"], scope=["other"])

    assert report.categories["syntax"].status == "pass"
    assert report.categories["syntax"].details["files_checked"] == {"python": 1}


async def test_scope_outside_the_project_is_refused(make_project: ProjectFactory) -> None:
    root = make_project(clean=True)
    with pytest.raises(InputError, match="outside the project"):
        await validate_project(root, scope=["../elsewhere"])


async def test_unknown_category_is_refused(make_project: ProjectFactory) -> None:
    root = make_project(clean=True)
    with pytest.raises(InputError, match="unknown validation categories: speed"):
        await validate_project(root, categories=["syntax", "speed"])


async def test_only_selected_categories_run(make_project: ProjectFactory) -> None:
    root = make_project(clean=True)

    report = await validate_project(root, categories=["documentation", "syntax"])

    assert list(report.categories) == ["syntax", "documentation"]


async def test_missing_tool_makes_the_category_skipped(
    make_project: ProjectFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A machine without ruff: keen's own copy hidden, and nothing on PATH.
    monkeypatch.setattr("keen.validation.ruff.find_ruff", lambda: None)
    root = make_project(clean=True)

    report = await validate_project(root, categories=["style", "syntax"])

    style = report.categories["style"]
    assert style.status == "skipped"
    assert style.passed is None
    assert style.score is None
    assert style.reason is not None and "ruff is not installed" in style.reason
    assert report.score == 100  # skipped categories are left out of the mean


@pytest.mark.parametrize("git", [True, False], ids=["git", "no-git"])
async def test_languages_detected_and_ignored_paths_left_out(make_project: ProjectFactory, git: bool) -> None:
    root = make_project(
        {
            "app.py": "x = 1\n",
            "web/index.ts": "export const x: number = 1;\n",
            "web/main.js": "console.log(1);\n",
            ".venv/lib/broken.py": "def f(:\n",
            "node_modules/pkg/broken.js": "function (\n",
            "generated/broken.py": "def f(:\n",
            ".gitignore": "generated/\n",
        },
        git=git,
    )

    report = await validate_project(root, categories=["syntax"])

    assert report.languages == ["python", "javascript", "typescript"]
    assert report.categories["syntax"].status == "pass"
    assert report.categories["syntax"].details["files_checked"] == {"python": 1, "javascript": 1}


async def test_empty_directory_has_no_languages(tmp_path: Path) -> None:
    report = await validate_project(tmp_path, categories=["syntax", "tests"])

    assert report.languages == []
    assert report.categories["syntax"].status == "skipped"
    assert report.categories["tests"].details["has_tests"] is False


async def test_project_tests_do_not_see_keens_secrets(
    make_project: ProjectFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-" + "ant-" + "k" * 30)
    snooping = """\
        import os


        def test_no_keen_secret_in_environment():
            assert "ANTHROPIC_API_KEY" not in os.environ
    """
    root = make_project({"tests/test_env.py": snooping}, clean=True)

    report = await validate_project(root, categories=["tests"])

    assert report.categories["tests"].status == "pass", report.categories["tests"].summary


async def test_typescript_without_tsc_is_skipped_with_the_reason(
    make_project: ProjectFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("keen.validation.categories.syntax.find_node_tool", lambda root, name: None)
    root = make_project({"tsconfig.json": "{}", "src/index.ts": "export const x: number = 1;\n"})

    report = await validate_project(root, categories=["syntax"])

    syntax = report.categories["syntax"]
    assert report.languages == ["typescript"]
    assert syntax.status == "skipped"
    assert syntax.reason == "tsc is not installed: TypeScript not checked"


async def test_eslint_configured_but_not_installed_is_skipped(make_project: ProjectFactory) -> None:
    root = make_project({"eslint.config.js": "export default [];\n", "src/app.js": "console.log(1);\n"})

    report = await validate_project(root, categories=["style"])

    style = report.categories["style"]
    assert style.status == "skipped"
    assert style.reason is not None and "ESLint is configured but not installed" in style.reason


@pytest.mark.parametrize(
    ("script", "status"), [('node -e "process.exit(0)"', "pass"), ('node -e "process.exit(3)"', "fail")]
)
async def test_other_npm_test_scripts_are_judged_by_exit_code(
    make_project: ProjectFactory, script: str, status: str
) -> None:
    package = {"name": "web", "version": "1.0.0", "scripts": {"test": script}}
    root = make_project({"package.json": json.dumps(package)})

    report = await validate_project(root, categories=["tests"])

    tests = report.categories["tests"]
    assert tests.status == status
    assert tests.details["runners"] == ["npm test"]
    assert "only an exit code" in tests.summary
    if status == "fail":
        assert tests.reason is not None and "npm test exited with 3" in tests.reason


async def test_tests_run_under_the_projects_own_virtualenv(make_project: ProjectFactory) -> None:
    root = make_project(clean=True)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root / ".venv")], check=True)

    report = await validate_project(root, categories=["tests"])

    # That virtualenv has no pytest: the suite is not run with keen's interpreter instead, and
    # an environment without the runner is "could not run", not a skipped category.
    tests = report.categories["tests"]
    assert tests.status == "error"
    assert tests.reason == f"pytest is not installed for {root / '.venv' / 'bin' / 'python'}"
    assert tests.details["has_tests"] is True
