"""Reading the runners: which runner a package.json script starts, and their reports (TAP,
mocha and vitest JSON), with the line between a missing dependency and a failing test."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from keen.validation.npmscript import find_runner
from keen.validation.suite import missing_dependencies
from keen.validation.testreports import (
    exception_line,
    find_mocha_json,
    missing_dependency,
    parse_jest_json,
    parse_mocha_json,
    parse_node_tap,
)


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("mocha", ("mocha", "test", True, ["mocha"], {})),
        (
            "mocha --reporter spec test/",
            ("mocha", "test", True, ["mocha", "--reporter", "spec", "test/"], {}),
        ),
        ("eslint . && mocha", ("mocha", "test", True, ["mocha"], {})),
        ("mocha && eslint .", ("mocha", "test", False, ["mocha"], {})),
        ("nyc --reporter lcov mocha --recursive", ("mocha", "test", True, ["mocha", "--recursive"], {})),
        ("cross-env NODE_ENV=test jest", ("jest", "test", True, ["jest"], {"NODE_ENV": "test"})),
        ("CI=1 jest --coverage 2>&1", ("jest", "test", True, ["jest", "--coverage"], {"CI": "1"})),
        ("npx vitest run", ("vitest", "test", True, ["vitest", "run"], {})),
        ("c8 node --test test/", ("node --test", "test", True, ["node", "--test", "test/"], {})),
        (
            "node --experimental-vm-modules node_modules/jest/bin/jest.js",
            (
                "jest",
                "test",
                True,
                ["node", "--experimental-vm-modules", "node_modules/jest/bin/jest.js"],
                {},
            ),
        ),
        ("npm run lint && npm run unit", ("mocha", "unit", True, ["mocha", "test/unit"], {})),
        ("yarn unit", ("mocha", "unit", True, ["mocha", "test/unit"], {})),
    ],
)
def test_the_runner_a_test_script_starts(script: str, expected: tuple[object, ...]) -> None:
    call = find_runner({"test": script, "unit": "mocha test/unit", "lint": "eslint ."})

    assert call is not None
    assert (call.runner, call.script, call.last, call.words, call.env) == expected


@pytest.mark.parametrize(
    "script",
    ["tap test/*.js", 'node -e "process.exit(0)"', "(cd test && mocha)", "mocha 'unbalanced", "npm run test"],
)
def test_scripts_without_a_known_runner(script: str) -> None:
    assert find_runner({"test": script}) is None


def test_npm_arguments_reach_the_runner_through_its_script() -> None:
    call = find_runner({"test": "npm run unit", "unit": "mocha"})

    assert call is not None
    assert call.npm_argv("npm", ["--reporter", "json"]) == ["npm", "run", "unit", "--", "--reporter", "json"]
    assert find_runner({"test": "mocha"}).npm_argv("npm", []) == ["npm", "test"]  # type: ignore[union-attr]


TAP = """\
TAP version 13
# Subtest: math
    # Subtest: adds
    ok 1 - adds
      ---
      duration_ms: 1.7
      ...
    # Subtest: later
    ok 2 - later # TODO
      ---
      duration_ms: 0.2
      ...
    1..2
ok 1 - math
  ---
  duration_ms: 5.7
  type: 'suite'
  ...
# Subtest: parent
    # Subtest: child bad
    not ok 1 - child bad
      ---
      duration_ms: 2.7
      location: '/p/test/a.test.js:12:11'
      failureType: 'testCodeFailure'
      error: |-
        child broke

        1 !== 2
      code: 'ERR_ASSERTION'
      ...
    1..1
not ok 2 - parent
  ---
  duration_ms: 12.1
  location: '/p/test/a.test.js:10:1'
  failureType: 'subtestsFailed'
  error: '1 subtest failed'
  ...
# Error: Cannot find module 'left-pad'
# Require stack:
# - /p/test/c.test.js
# Subtest: /p/test/c.test.js
not ok 3 - /p/test/c.test.js
  ---
  duration_ms: 195.5
  location: '/p/test/c.test.js:1:1'
  failureType: 'testCodeFailure'
  exitCode: 1
  error: 'test failed'
  ...
# Subtest: skipped
ok 4 - skipped # SKIP
1..4
# tests 6
# suites 1
# pass 1
# fail 3
# cancelled 0
# skipped 1
# todo 1
# duration_ms 862.5
"""


def test_node_tap_counts_are_nodes_totals_and_failures_are_the_tests_that_failed(tmp_path: Path) -> None:
    report = tmp_path / "report.tap"
    report.write_text(TAP)

    counts = parse_node_tap(report)

    assert counts is not None
    assert (counts.passed, counts.failed, counts.errored, counts.skipped) == (1, 3, 0, 2)
    bad, unloadable = counts.failures  # the parent failed only because its subtest did
    assert (bad.name, bad.file, bad.line, bad.missing) == ("child bad", "/p/test/a.test.js", 12, None)
    assert bad.message == "child broke\n1 !== 2"
    assert (unloadable.message, unloadable.missing) == ("Error: Cannot find module 'left-pad'", "left-pad")


def test_a_tap_stream_without_totals_is_no_report(tmp_path: Path) -> None:
    report = tmp_path / "report.tap"
    report.write_text("TAP version 13\nok 1 - a\n")
    assert parse_node_tap(report) is None
    assert parse_node_tap(tmp_path / "absent.tap") is None


MOCHA = {
    "stats": {"suites": 2, "tests": 4, "passes": 1, "pending": 2, "failures": 2},
    "failures": [
        {
            "fullTitle": "m bad",
            "file": "/p/test/m.test.js",
            "err": {
                "message": "mocha broke",
                "stack": "AssertionError: mocha broke\n    at Context (test/m.test.js:4:21)",
            },
        },
        {
            "fullTitle": 'm "before all" hook for "never"',
            "file": "/p/test/m.test.js",
            "err": {"message": "hook boom"},
        },
    ],
}


def test_mocha_json_counts_hooks_as_mocha_does() -> None:
    counts = parse_mocha_json(MOCHA)

    assert counts is not None
    assert (counts.passed, counts.failed, counts.errored, counts.skipped) == (1, 2, 0, 2)
    assert [(f.name, f.line) for f in counts.failures] == [
        ("m bad", 4),
        ('m "before all" hook for "never"', None),
    ]


@pytest.mark.parametrize(
    "data",
    [
        {"stats": []},
        {"stats": {"passes": "many"}},
        {"stats": {}, "failures": [3]},
        {"stats": {}, "failures": 7},
    ],
)
def test_a_mocha_report_of_the_wrong_shape_is_no_report(data: dict[str, object]) -> None:
    assert parse_mocha_json(data) is None


def test_a_jest_report_of_the_wrong_shape_is_no_report(tmp_path: Path) -> None:
    report = tmp_path / "jest.json"
    report.write_text('{"numPassedTests": "lots", "testResults": 5}')
    assert parse_jest_json(report) is None


def test_mocha_json_is_found_in_stdout_among_other_output() -> None:
    stdout = "console output from a test\n" + json.dumps(MOCHA, indent=2) + "\n"

    assert find_mocha_json(stdout) == MOCHA
    assert find_mocha_json("no report here") is None


def test_vitest_json_counts_suites_that_could_not_load_as_errors(tmp_path: Path) -> None:
    report = tmp_path / "vitest.json"
    report.write_text(
        json.dumps(
            {
                "numPassedTests": 2,
                "numFailedTests": 0,
                "numPendingTests": 1,
                "numTodoTests": 1,
                "testResults": [
                    {"name": "/p/a.test.js", "status": "passed", "assertionResults": [{"status": "passed"}]},
                    {
                        "name": "/p/b.test.js",
                        "status": "failed",
                        "message": "Cannot find package 'left-pad' imported from '/p/b.test.js'",
                        "assertionResults": [],
                    },
                ],
            }
        )
    )

    counts = parse_jest_json(report)

    assert counts is not None
    assert (counts.passed, counts.failed, counts.errored, counts.skipped) == (2, 0, 1, 2)
    assert missing_dependencies(counts) == counts.failures
    assert counts.failures[0].missing == "left-pad"


@pytest.mark.parametrize(
    ("text", "missing"),
    [
        ("E   ModuleNotFoundError: No module named 'itsdangerous'", "itsdangerous"),
        ("ModuleNotFoundError: No module named 'app.views'", None),  # a file of the project is missing
        ("Error: Cannot find module 'chai'\nRequire stack:", "chai"),
        ("Error: Cannot find module './lib/missing'", None),
        (
            "Error [ERR_MODULE_NOT_FOUND]: Cannot find package '@scope/pkg' imported from /p/x.mjs",
            "@scope/pkg",
        ),
        ('Failed to resolve import "lodash-es" from "src/a.ts". Does the file exist?', "lodash-es"),
        ("ImportError: cannot import name 'nope' from 'os'", None),
        ("AssertionError: 1 != 2", None),
    ],
)
def test_missing_dependencies_are_told_apart_from_code_errors(text: str, missing: str | None) -> None:
    assert missing_dependency(text) == missing


@pytest.mark.parametrize(
    ("output", "line"),
    [
        (
            "Traceback:\n  x\nE   ModuleNotFoundError: No module named 'x'\n",
            "ModuleNotFoundError: No module named 'x'",
        ),
        (
            "INTERNALERROR>   File 'x'\nINTERNALERROR> pytest.PytestDeprecationWarning: unset",
            "pytest.PytestDeprecationWarning: unset",
        ),
        (" Exception during run: Error: Cannot find module 'chai'", "Error: Cannot find module 'chai'"),
        ("all good", None),
    ],
)
def test_the_first_error_is_the_exception_a_traceback_ended_with(output: str, line: str | None) -> None:
    assert exception_line(output) == line
