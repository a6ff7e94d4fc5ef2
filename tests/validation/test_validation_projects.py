"""The validation engine on the committed fixture projects (tests/validation/projects), each in
the environment its developers would use, with the exact counts its own runner reports."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from keen.validation import CategoryResult, validate_project
from keen.validation.external import tool_env
from keen.validation.gates import SessionFacts, recovery_message, run_complete_gate
from keen.validation.pyenv import find_program
from validation.fixture_projects import (
    PLUGIN_LOG_CONFTEST,
    PROJECTS,
    copy_project,
    install_editable,
    make_venv,
)

KEEN_PREFIX = Path(sys.prefix).resolve()


def counts(tests: CategoryResult) -> tuple[int, int, int, int]:
    d = tests.details
    return d["passed"], d["failed"], d["errored"], d["skipped"]


@pytest.fixture(autouse=True)
def no_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests put stand-in interpreters and tools in the test's temp dir, which keen's
    sandbox hides (it gives commands a private /tmp); the sandbox itself is tested in
    tests/security."""
    monkeypatch.setenv("KEEN_SANDBOX", "none")


def plugin_log(monkeypatch: pytest.MonkeyPatch, root: Path) -> Path:
    """Where the project's pytest run will record the plugins it loaded."""
    (root / "conftest.py").write_text(PLUGIN_LOG_CONFTEST)
    log = root / "loaded-plugins.json"  # inside the workspace: the only place the sandbox lets it write
    monkeypatch.setenv("FIXTURE_PLUGIN_LOG", str(log))
    return log


def loaded(log: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(log.read_text())
    return data


def keens_own(plugins: list[str]) -> list[str]:
    """The autoloaded plugins that come from keen's own environment."""
    return [p for p in plugins if Path(p).resolve().is_relative_to(KEEN_PREFIX)]


def bin_dir(tmp_path: Path, programs: dict[str, str]) -> Path:
    """A folder of small executables: {name: shell script body}."""
    folder = tmp_path / "bin"
    folder.mkdir(exist_ok=True)
    for name, body in programs.items():
        path = folder / name
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return folder


def python3_wrapper(venv: Path) -> str:
    return f'exec "{venv / "bin" / "python"}" "$@"'


@contextmanager
def edited(path: Path, old: str, new: str) -> Iterator[None]:
    """`path` with `old` replaced by `new` for the duration (shared installed copies)."""
    original = path.read_text()
    assert old in original
    path.write_text(original.replace(old, new))
    try:
        yield
    finally:
        path.write_text(original)


@pytest.fixture(scope="module")
def clean_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtualenv with pytest and nothing else (no plugins)."""
    return make_venv(tmp_path_factory.mktemp("envs") / "clean", "pytest")


# --- Python ------------------------------------------------------------------------------------


async def test_src_layout_package_runs_in_its_own_venv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = copy_project("py_srclayout", tmp_path / "tally")
    venv = make_venv(root / ".venv", "pytest")
    install_editable(venv, root / "src", PROJECTS / "py_dependency" / "src")
    log = plugin_log(monkeypatch, root)

    report = await validate_project(root, categories=["tests"])

    tests = report.categories["tests"]
    assert tests.status == "pass", tests.summary
    assert counts(tests) == (5, 0, 0, 1)  # pytest: "5 passed, 1 skipped"
    env = tests.details["environments"]["pytest"]
    assert (env["kind"], env["python"]) == (".venv", str(venv / "bin" / "python"))
    assert "pytest in the project's .venv, Python" in tests.summary
    assert loaded(log) == {"plugins": [], "prefix": str(venv)}


async def test_src_layout_without_its_environment_could_not_run_and_the_gate_says_how_to_set_it_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_venv: Path
) -> None:
    # The python3 on PATH has pytest, but not the project nor its dependency.
    python3_bin = bin_dir(tmp_path, {"python3": python3_wrapper(clean_venv)})
    monkeypatch.setenv("PATH", f"{python3_bin}{os.pathsep}{os.environ['PATH']}")
    root = copy_project("py_srclayout", tmp_path / "tally")

    report = await validate_project(root, categories=["syntax", "tests", "security"])

    tests = report.categories["tests"]
    assert tests.status == "error"
    assert (tests.passed, tests.score) == (False, None)
    assert report.overall == "warning"  # not a verdict on the code
    [blocked] = tests.details["could_not_run"]
    assert blocked["first_error"] == "ModuleNotFoundError: No module named 'keenfix_tally'"
    assert blocked["reason"] == (
        "pytest: 1 test file could not be loaded: keenfix_tally is not installed in "
        f"the python3 on PATH ({python3_bin / 'python3'})"
    )
    assert blocked["setup"] == [
        "python3 -m venv .venv",
        ".venv/bin/python -m pip install -e '.[test]'",
        "add .venv/ to .gitignore so the environment is not committed",
    ]
    assert tests.details["environments"]["pytest"]["kind"] == "python3"
    assert "No module named 'keenfix_tally'" in tests.summary

    gate, gate_report = await run_complete_gate(root, SessionFacts(phase="COMPLETE"), "standard")
    assert not gate.passed
    assert any(
        r.startswith("tests could not run (not a test failure): pytest: 1 test file") for r in gate.reasons
    )
    message = recovery_message(gate, gate_report, attempt=1, max_attempts=3)
    assert "The tests could not run. That is not a test failure" in message
    assert "First error: ModuleNotFoundError: No module named 'keenfix_tally'" in message
    assert "    .venv/bin/python -m pip install -e '.[test]'" in message

    # The agent sets the environment up as told (pip's editable install, without the network).
    venv = make_venv(root / ".venv", "pytest")
    install_editable(venv, root / "src", PROJECTS / "py_dependency" / "src")
    gate, _ = await run_complete_gate(root, SessionFacts(phase="COMPLETE"), "standard")
    assert gate.passed, gate.reasons


async def test_keens_interpreter_is_the_last_resort_and_loads_none_of_its_plugins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No python3 anywhere on PATH: only git, which the project scan uses.
    git = shutil.which("git")
    assert git is not None
    monkeypatch.setenv("PATH", str(bin_dir(tmp_path, {"git": f'exec "{git}" "$@"'})))
    root = copy_project("py_warnings", tmp_path / "shapes")
    log = plugin_log(monkeypatch, root)

    report = await validate_project(root, categories=["tests"])

    tests = report.categories["tests"]
    # keen's pytest-asyncio would turn its own deprecation warning into an INTERNALERROR here.
    assert tests.status == "pass", tests.summary
    assert counts(tests) == (6, 0, 0, 1)
    assert tests.details["environments"]["pytest"]["kind"] == "keen"
    assert loaded(log)["plugins"] == []


@pytest.mark.skipif(sys.prefix == sys.base_prefix, reason="keen is not running from a virtualenv")
async def test_keens_own_active_virtualenv_is_not_taken_for_the_projects(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_venv: Path
) -> None:
    # As when keen's tests (or keen) run with keen's own virtualenv activated.
    python3_bin = bin_dir(tmp_path, {"python3": python3_wrapper(clean_venv)})
    monkeypatch.setenv("VIRTUAL_ENV", sys.prefix)
    monkeypatch.setenv(
        "PATH", os.pathsep.join([str(KEEN_PREFIX / "bin"), str(python3_bin), os.environ["PATH"]])
    )
    root = copy_project("py_warnings", tmp_path / "shapes")
    log = plugin_log(monkeypatch, root)

    report = await validate_project(root, categories=["tests"])

    tests = report.categories["tests"]
    assert tests.status == "pass", tests.summary
    assert tests.details["environments"]["pytest"]["kind"] == "python3"
    assert loaded(log) == {"plugins": [], "prefix": str(clean_venv)}
    assert "VIRTUAL_ENV" not in tool_env()
    assert str(KEEN_PREFIX / "bin") not in tool_env()["PATH"].split(os.pathsep)


async def test_an_active_virtualenv_is_the_projects_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_venv: Path
) -> None:
    monkeypatch.setenv("VIRTUAL_ENV", str(clean_venv))
    root = copy_project("py_warnings", tmp_path / "shapes")
    log = plugin_log(monkeypatch, root)

    report = await validate_project(root, categories=["tests"])

    tests = report.categories["tests"]
    assert counts(tests) == (6, 0, 0, 1)
    env = tests.details["environments"]["pytest"]
    assert (env["kind"], env["description"]) == ("VIRTUAL_ENV", f"the active virtualenv {clean_venv}")
    assert loaded(log)["prefix"] == str(clean_venv)
    assert keens_own(loaded(log)["plugins"]) == []


@pytest.mark.parametrize(
    ("manager", "marker"), [("poetry", "poetry.lock"), ("pdm", "pdm.lock"), ("hatch", "hatch.toml")]
)
async def test_environment_managers_run_the_suite_in_their_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_venv: Path, manager: str, marker: str
) -> None:
    # A stand-in for the manager: `MANAGER run python ARGS` runs python in the environment it
    # manages, which is what the real tools do.
    body = f'[ "$1" = run ] && [ "$2" = python ] || exit 64\nshift 2\nexec "{clean_venv}/bin/python" "$@"'
    tools = bin_dir(tmp_path, {manager: body})
    monkeypatch.setenv("PATH", f"{tools}{os.pathsep}{os.environ['PATH']}")
    root = copy_project("py_warnings", tmp_path / "shapes")
    (root / marker).write_text("")
    log = plugin_log(monkeypatch, root)

    report = await validate_project(root, categories=["tests"])

    tests = report.categories["tests"]
    assert counts(tests) == (6, 0, 0, 1), tests.summary
    env = tests.details["environments"]["pytest"]
    assert (env["kind"], env["command"]) == (manager, f"{tools / manager} run python")
    assert loaded(log)["prefix"] == str(clean_venv)


@pytest.mark.slow
async def test_uv_project_runs_through_uv_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    uv = find_program("uv", tool_env())
    if uv is None:
        pytest.skip("uv is not installed")
    # Warm uv's cache in a scratch copy; without a reachable package index there is nothing to test.
    scratch = copy_project("py_uv", tmp_path / "scratch")
    sync = subprocess.run([uv, "sync", "--frozen"], cwd=scratch, capture_output=True, text=True, timeout=600)
    if sync.returncode != 0:
        pytest.skip(f"uv sync failed (no package index reachable?): {sync.stderr[-300:]}")
    root = copy_project("py_uv", tmp_path / "clock")
    log = plugin_log(monkeypatch, root)

    report = await validate_project(root, categories=["tests"])

    tests = report.categories["tests"]
    assert tests.status == "pass", tests.summary
    assert counts(tests) == (6, 0, 0, 0)
    env = tests.details["environments"]["pytest"]
    assert (env["kind"], env["command"]) == ("uv", f"{uv} run --frozen python")
    assert Path(env["python"]).parent.parent == root / ".venv"  # uv created the project's env
    assert loaded(log) == {"plugins": [], "prefix": str(root / ".venv")}
    assert (root / "uv.lock").read_text() == (PROJECTS / "py_uv" / "uv.lock").read_text()


async def test_a_collection_error_in_the_projects_code_is_a_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_venv: Path
) -> None:
    monkeypatch.setenv("VIRTUAL_ENV", str(clean_venv))
    root = copy_project("py_warnings", tmp_path / "shapes")
    (root / "test_more.py").write_text(
        "from shapes import triangle\n\n\ndef test_triangle():\n    assert triangle\n"
    )

    report = await validate_project(root, categories=["tests"])

    tests = report.categories["tests"]
    assert tests.status == "fail"
    assert counts(tests) == (0, 0, 1, 0)  # pytest stops at collection errors
    assert tests.details["failures"][0]["message"].startswith("ImportError: cannot import name 'triangle'")


async def test_a_broken_pytest_configuration_could_not_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_venv: Path
) -> None:
    monkeypatch.setenv("VIRTUAL_ENV", str(clean_venv))
    root = copy_project("py_warnings", tmp_path / "shapes")
    with (root / "pyproject.toml").open("a") as config:
        config.write('addopts = "--cov=shapes"\n')  # pytest-cov is not installed

    report = await validate_project(root, categories=["tests"])

    tests = report.categories["tests"]
    assert tests.status == "error"
    [blocked] = tests.details["could_not_run"]
    assert blocked["reason"].startswith("pytest stopped with a usage or configuration error (exit 4)")
    assert "unrecognized arguments: --cov=shapes" in blocked["first_error"]


async def test_a_unittest_suite_runs_with_unittest_where_there_is_no_pytest(tmp_path: Path) -> None:
    root = copy_project("py_unittest", tmp_path / "temps")
    venv = make_venv(root / ".venv")  # the project's environment: the standard library only

    report = await validate_project(root, categories=["tests"])

    tests = report.categories["tests"]
    assert tests.status == "pass", tests.summary
    assert counts(tests) == (4, 0, 0, 1)  # unittest: "Ran 5 tests", "OK (skipped=1)"
    assert tests.details["runners"] == ["unittest"]
    env = tests.details["environments"]["unittest"]
    assert (env["kind"], env["python"]) == (".venv", str(venv / "bin" / "python"))

    (root / "test_more.py").write_text(
        "import unittest\n\n\nclass More(unittest.TestCase):\n    def test_wrong(self):\n"
        "        self.assertEqual(1 + 1, 3)\n"
    )
    report = await validate_project(root, categories=["tests"])

    tests = report.categories["tests"]
    assert tests.status == "fail"
    assert counts(tests) == (4, 1, 0, 1)  # unittest: "FAILED (failures=1, skipped=1)"
    [failure] = tests.details["failures"]
    assert (failure["name"], failure["file"], failure["line"]) == (
        "test_more.More.test_wrong",
        "test_more.py",
        6,
    )
    assert failure["message"] == "AssertionError: 2 != 3"

    (root / "test_more.py").write_text("import left_pad_nope\n")
    report = await validate_project(root, categories=["tests"])

    tests = report.categories["tests"]
    assert tests.status == "error"
    [blocked] = tests.details["could_not_run"]
    assert blocked["first_error"] == "ModuleNotFoundError: No module named 'left_pad_nope'"
    assert blocked["setup"] == [".venv/bin/python -m pip install left_pad_nope"]


# --- JavaScript --------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("project", "runner", "expected", "command"),
    [
        # mocha: "6 passing, 1 pending"
        ("js_mocha", "mocha", (6, 0, 0, 1), "npm test -- --reporter json --reporter-option output=REPORT"),
        # jest: "4 passed, 1 skipped, 1 todo"
        ("js_jest", "jest", (4, 0, 0, 2), "npm test -- --json --outputFile=REPORT"),
        # vitest: "4 passed | 1 skipped"
        ("js_vitest", "vitest", (4, 0, 0, 1), "npm test -- --run --reporter=json --outputFile=REPORT"),
    ],
)
async def test_the_counts_are_the_runners_own(
    npm_project: Any, project: str, runner: str, expected: tuple[int, int, int, int], command: str
) -> None:
    root = npm_project(project)

    report = await validate_project(root, categories=["tests"])

    tests = report.categories["tests"]
    assert tests.status == "pass", tests.summary
    assert counts(tests) == expected
    assert tests.details["runners"] == [runner]
    assert tests.details["environments"][runner]["command"] == command
    assert f"({runner} via {command})" in tests.summary


@pytest.mark.slow
async def test_a_mocha_failure_is_reported_with_its_message_and_place(npm_project: Any) -> None:
    root = npm_project("js_mocha")

    with edited(root / "lib" / "slug.js", ".join(sep)", '.join("-")'):
        report = await validate_project(root, categories=["tests"])

    tests = report.categories["tests"]
    assert tests.status == "fail"
    assert counts(tests) == (5, 1, 0, 1)
    [failure] = tests.details["failures"]
    assert failure["name"] == "slug with a separator uses it between words"
    assert failure["message"].startswith("Expected values to be strictly equal")
    assert "+ 'a-b-c'\n- 'a_b_c'" in failure["message"]
    assert (failure["file"], failure["line"]) == ("test/slug.js", 29)


@pytest.mark.slow
async def test_mocha_before_other_commands_is_run_directly_from_node_modules(npm_project: Any) -> None:
    root = npm_project("js_mocha")

    with edited(root / "package.json", '"test": "mocha"', '"test": "mocha && node -e 0"'):
        report = await validate_project(root, categories=["tests"])

    tests = report.categories["tests"]
    assert counts(tests) == (6, 0, 0, 1)
    command = tests.details["environments"]["mocha"]["command"]
    assert command.startswith(f"{root / 'node_modules' / '.bin' / 'mocha'} --reporter json")


async def test_mocha_without_node_modules_could_not_run(tmp_path: Path) -> None:
    root = copy_project("js_mocha", tmp_path / "slug")

    report = await validate_project(root, categories=["tests"])

    tests = report.categories["tests"]
    assert tests.status == "error"
    [blocked] = tests.details["could_not_run"]
    assert blocked["reason"] == "mocha is not installed (run npm install): the test script was not run"
    assert blocked["setup"] == ["npm install"]


async def test_node_test_counts_are_nodes_own(tmp_path: Path) -> None:
    root = copy_project("js_node_test", tmp_path / "stack")

    report = await validate_project(root, categories=["tests"])

    tests = report.categories["tests"]
    assert tests.status == "pass", tests.summary
    assert counts(tests) == (6, 0, 0, 2)  # node: "# pass 6", "# skipped 1", "# todo 1"
    assert tests.details["runners"] == ["node --test"]


async def test_a_node_test_failure_counts_as_node_counts_it(tmp_path: Path) -> None:
    root = copy_project("js_node_test", tmp_path / "stack")
    stack = root / "lib" / "stack.js"
    stack.write_text(stack.read_text().replace("this.#items.pop()", "this.#items.shift()"))

    report = await validate_project(root, categories=["tests"])

    tests = report.categories["tests"]
    assert tests.status == "fail"
    assert counts(tests) == (5, 1, 0, 2)  # node: "# pass 5", "# fail 1"
    [failure] = tests.details["failures"]
    assert failure["name"] == "pops what was pushed last"
    assert (failure["file"], failure["line"]) == ("test/stack.test.js", 12)
    assert "1 !== 2" in failure["message"]


async def test_a_node_test_file_needing_an_uninstalled_package_could_not_run(tmp_path: Path) -> None:
    root = copy_project("js_node_test", tmp_path / "stack")
    (root / "test" / "pad.test.js").write_text(
        'const pad = require("left-pad");\nrequire("node:test")("pads", () => pad("1", 2));\n'
    )

    report = await validate_project(root, categories=["tests"])

    tests = report.categories["tests"]
    assert tests.status == "error", tests.summary
    [blocked] = tests.details["could_not_run"]
    assert blocked["first_error"] == "Error: Cannot find module 'left-pad'"
    assert (
        blocked["reason"]
        == "node --test: 1 test file could not be loaded: left-pad is not installed in node_modules"
    )
    assert blocked["setup"] == ["npm install"]


@pytest.mark.slow
async def test_a_jest_failure_is_reported_with_its_place(npm_project: Any) -> None:
    root = npm_project("js_jest")

    with edited(root / "money.js", 'cents < 0 ? "-" : ""', '""'):
        report = await validate_project(root, categories=["tests"])

    tests = report.categories["tests"]
    assert counts(tests) == (3, 1, 0, 2)
    [failure] = tests.details["failures"]
    assert failure["name"] == "format negative amounts"
    assert (failure["file"], failure["line"]) == ("money.test.js", 15)
    assert 'Expected: "-2.50 USD"' in failure["message"]


@pytest.mark.slow
async def test_eslint_and_tsc_run_from_the_projects_node_modules(npm_project: Any) -> None:
    root = npm_project("js_tools")

    report = await validate_project(root, categories=["syntax", "style"])
    assert report.categories["style"].status == "pass", report.categories["style"].summary
    assert report.categories["style"].details["linters"] == ["eslint"]
    assert report.categories["syntax"].status == "pass", report.categories["syntax"].summary
    assert report.categories["syntax"].details["files_checked"] == {"javascript": 2, "typescript": 1}

    with (
        edited(root / "src" / "shout.js", "  return", "  const unused = 1;\n  return"),
        edited(root / "src" / "greet.ts", "const hello: string", "const hello: number"),
    ):
        report = await validate_project(root, categories=["syntax", "style"])

    [lint] = report.categories["style"].findings
    assert (lint.file, lint.line, lint.rule) == ("src/shout.js", 3, "no-unused-vars")
    syntax = report.categories["syntax"]
    assert syntax.status == "fail"
    [typing] = syntax.findings
    assert (typing.file, typing.line, typing.rule) == ("src/greet.ts", 3, "TS2322")
