"""Reading test runners' machine-readable reports into one shape of counts and first failures:
JUnit XML (pytest), the jest-style JSON of jest and vitest, mocha's JSON reporter and the TAP
stream of `node --test`.

Counts are the runner's own: passed, failed, errored (suites or modules that could not even be
loaded), skipped (skipped, pending and todo).
"""

from __future__ import annotations

import functools
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from keen.text import clip

T = TypeVar("T")

MESSAGE_LIMIT = 800
# pytest's failure text ends with "path/to/test_x.py:12: AssertionError".
_PYTEST_LOCATION = re.compile(r"^(?P<file>[^\s:][^:]*\.py):(?P<line>\d+): ")
# An exception as tracebacks show it ("E   ValueError: x", "INTERNALERROR> pytest.Pytest...Warning:
# x", "Exception during run: Error: x"), wherever it starts in the line.
_EXCEPTION_LINE = re.compile(
    r"(?:^|[\s>])(?P<exc>(?:[A-Za-z_][\w.]*)?(?:Error|Exception|Warning)(?: \[\w+\])?: .*)$"
)
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# Errors that mean a dependency is not installed. Python names a dotted module when only its
# last part is missing (a file the project lacks); Node a path when the import is relative.
_PYTHON_MISSING = re.compile(r"ModuleNotFoundError: No module named '(?P<name>[^'.]+)'")
_NODE_MISSING = re.compile(
    r"Cannot find (?:module|package) '(?P<name>[^']+)'|Failed to resolve import \"(?P<vite>[^\"]+)\""
)


@dataclass
class FailedCase:
    name: str
    message: str
    kind: str = "failure"  # failure | error
    file: str | None = None
    line: int | None = None
    missing: str | None = None  # the dependency whose absence caused it, if that was the cause

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class CaseCounts:
    passed: int = 0
    failed: int = 0
    errored: int = 0
    skipped: int = 0
    failures: list[FailedCase] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.passed + self.failed + self.errored + self.skipped

    def add(self, other: CaseCounts) -> None:
        self.passed += other.passed
        self.failed += other.failed
        self.errored += other.errored
        self.skipped += other.skipped
        self.failures += other.failures


def parse_junit(path: Path) -> CaseCounts | None:
    """Counts from a JUnit XML file; None when the file is missing or not JUnit XML."""
    try:
        tree = ET.parse(path)
    except (OSError, ET.ParseError):
        return None
    counts = CaseCounts()
    for case in tree.getroot().iter("testcase"):
        if case.find("testcase") is not None:  # node --test nests subtests; count the leaves
            continue
        failure = case.find("failure")
        element, kind = (failure, "failure") if failure is not None else (case.find("error"), "error")
        if element is not None:
            if kind == "failure":
                counts.failed += 1
            else:
                counts.errored += 1
            counts.failures.append(_junit_failure(case, element, kind))
        elif case.find("skipped") is not None:
            counts.skipped += 1
        else:
            counts.passed += 1
    return counts


def _junit_failure(case: ET.Element, element: ET.Element, kind: str) -> FailedCase:
    classname = case.get("classname") or ""
    name = case.get("name") or "?"
    text = element.text or ""
    message = (element.get("message") or "").strip()
    if not message or message == "collection failure":  # pytest says no more than that
        message = exception_line(text) or _last_lines(text)
    file = case.get("file")
    raw_line = case.get("line") or ""
    line = int(raw_line) + 1 if raw_line.isdigit() else None  # pytest writes it 0-based
    for text_line in reversed(text.splitlines()):
        if match := _PYTEST_LOCATION.match(text_line.strip()):
            file, line = match["file"], int(match["line"])
            break
    return FailedCase(
        name=f"{classname}::{name}" if classname else name,
        message=_clip(message),
        kind=kind,
        file=file,
        line=line,
        missing=missing_dependency(text or message),
    )


def _tolerant(parse: Callable[[T], CaseCounts | None]) -> Callable[[T], CaseCounts | None]:
    """A report of the wrong shape (written by a project's own code, or a runner's bug) is no
    report: the run is then judged by its exit code, never a crash."""

    @functools.wraps(parse)
    def read(source: T) -> CaseCounts | None:
        try:
            return parse(source)
        except (AttributeError, KeyError, TypeError, ValueError):
            return None

    return read


@_tolerant
def parse_jest_json(path: Path) -> CaseCounts | None:
    """Counts from the JSON report of jest (`--json --outputFile`) or vitest (`--reporter=json`)."""
    data = read_json(path)
    if data is None:
        return None
    suites = [s for s in data.get("testResults", []) if isinstance(s, dict)]
    # A suite that failed without running any test could not be loaded. jest counts these
    # itself; vitest's report only shows them as such suites.
    broken = [s for s in suites if s.get("status") == "failed" and not s.get("assertionResults")]
    counts = CaseCounts(
        passed=int(data.get("numPassedTests", 0)),
        failed=int(data.get("numFailedTests", 0)),
        errored=int(data.get("numRuntimeErrorTestSuites", len(broken))),
        skipped=int(data.get("numPendingTests", 0)) + int(data.get("numTodoTests", 0)),
    )
    for suite in suites:
        for case in suite.get("assertionResults", []):
            if case.get("status") == "failed":
                messages = case.get("failureMessages") or [""]
                file = suite.get("name")
                counts.failures.append(
                    FailedCase(
                        name=case.get("fullName") or case.get("title") or "?",
                        message=_clip(str(messages[0])),
                        file=file,
                        line=(case.get("location") or {}).get("line") or _stack_line(str(messages[0]), file),
                    )
                )
    for suite in broken:
        message = str(suite.get("message", ""))
        counts.failures.append(
            FailedCase(
                name=str(suite.get("name", "?")),
                kind="error",
                message=_clip(message),
                file=suite.get("name"),
                missing=missing_dependency(message),
            )
        )
    return counts


@_tolerant
def parse_mocha_json(data: dict[str, Any]) -> CaseCounts | None:
    """Counts from mocha's JSON reporter: `stats` as mocha prints them, then each failure.

    A failing hook is one failure in mocha's own count, and the tests it kept from running are
    not counted at all; so it is here.
    """
    stats = data.get("stats")
    if not isinstance(stats, dict):
        return None
    counts = CaseCounts(
        passed=int(stats.get("passes", 0)),
        failed=int(stats.get("failures", 0)),
        skipped=int(stats.get("pending", 0)),
    )
    for case in data.get("failures", []):
        err = case.get("err") or {}
        message = str(err.get("message") or err.get("stack") or "")
        counts.failures.append(
            FailedCase(
                name=str(case.get("fullTitle") or case.get("title") or "?"),
                message=_clip(message),
                file=case.get("file"),
                line=_stack_line(str(err.get("stack") or ""), case.get("file")),
                missing=missing_dependency(message),
            )
        )
    return counts


def find_mocha_json(text: str) -> dict[str, Any] | None:
    """mocha's JSON report inside its stdout (older mocha cannot write it to a file)."""
    decoder = json.JSONDecoder()
    for match in re.finditer(r'^\{\s*"stats"', text, re.MULTILINE):
        try:
            data, _ = decoder.raw_decode(text, match.start())
        except ValueError:
            continue
        if isinstance(data, dict):
            return data
    return None


_TAP_RESULT = re.compile(
    r"^(?P<indent>\s*)(?P<not>not )?ok \d+ - (?P<name>.*?)(?: # (?P<directive>SKIP|TODO)\b.*)?$"
)
_LOCATION = re.compile(r"^(?P<file>.+?):(?P<line>\d+)(?::\d+)?$")
_TAP_TOTAL = re.compile(r"^# (?P<key>tests|pass|fail|cancelled|skipped|todo) (?P<n>\d+)$")


def parse_node_tap(path: Path) -> CaseCounts | None:
    """Counts from the TAP stream of `node --test` (its `tap` reporter).

    The totals are node's own closing lines (`# pass 4`, `# fail 1`, ...): a test whose
    subtests fail fails too, exactly as node counts it. The failures listed are the tests that
    failed themselves (not the parents failing only because a subtest did), each with its error.
    A test file that could not be loaded is a failed test named after the file; what it printed
    on stderr (as `#` comments before it) says why.
    """
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return None
    totals: dict[str, int] = {}
    failures: list[FailedCase] = []
    comments: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if match := _TAP_TOTAL.match(line):
            totals[match["key"]] = int(match["n"])
        elif line.startswith("# ") and not line.startswith("# Subtest:"):
            comments.append(line[2:])
        elif (match := _TAP_RESULT.match(line)) and match["not"] and not match["directive"]:
            block, i = _tap_yaml(lines, i + 1)
            if block.get("failureType") != "subtestsFailed":
                failures.append(_tap_failure(match["name"], block, comments))
            comments = []
            continue
        elif _TAP_RESULT.match(line):
            comments = []
        i += 1
    if "tests" not in totals:
        return None
    return CaseCounts(
        passed=totals.get("pass", 0),
        failed=totals.get("fail", 0),
        errored=totals.get("cancelled", 0),
        skipped=totals.get("skipped", 0) + totals.get("todo", 0),
        failures=failures,
    )


def _tap_yaml(lines: list[str], start: int) -> tuple[dict[str, str], int]:
    """The YAML diagnostics block after a result line: its top-level scalar keys."""
    if start >= len(lines) or lines[start].strip() != "---":
        return {}, start
    indent = len(lines[start]) - len(lines[start].lstrip())
    block: dict[str, str] = {}
    key = None
    i = start + 1
    while i < len(lines) and lines[i].strip() != "...":
        text = lines[i]
        own_indent = len(text) - len(text.lstrip())
        if own_indent == indent and ":" in text:
            key, _, value = text.strip().partition(":")
            value = value.strip()
            block[key] = "" if value in ("|-", "|", ">-") else value.strip("'\"")
        elif key is not None and own_indent > indent:
            block[key] = (block[key] + "\n" + text.strip()).strip()
        i += 1
    return block, i + 1


def _tap_failure(name: str, block: dict[str, str], comments: list[str]) -> FailedCase:
    message = block.get("error", "")
    if block.get("exitCode") is not None and comments:
        # The file itself failed (it could not be loaded, or it crashed): its stderr says why.
        output = "\n".join(comments)
        message = exception_line(output) or _last_lines(output)
    location = _LOCATION.match(block.get("location", ""))
    return FailedCase(
        name=name,
        message=_clip(message),
        kind="failure",
        file=location["file"] if location else None,
        line=int(location["line"]) if location else None,
        missing=missing_dependency(message),
    )


def exception_line(text: str) -> str | None:
    """The last `SomeError: message` line of a traceback or a runner's output."""
    found = None
    for raw in _ANSI.sub("", text).splitlines():
        if match := _EXCEPTION_LINE.search(raw.strip()):
            found = match["exc"].strip()
    return found


def missing_dependency(text: str) -> str | None:
    """The package an error says is not installed; None for anything else.

    `No module named 'itsdangerous'` or `Cannot find module 'chai'` mean the environment lacks
    a dependency (or the project itself is not installed in it); `No module named 'app.views'`
    or `Cannot find module './views'` mean a file of the project is missing, a code error.
    """
    text = _ANSI.sub("", text)
    if match := _PYTHON_MISSING.search(text):
        return match["name"]
    for match in _NODE_MISSING.finditer(text):
        name = match["name"] or match["vite"]
        if name and not name.startswith((".", "/", "node:", "file:")):
            return name
    return None


def _stack_line(stack: str, file: str | None) -> int | None:
    """The line in `file` where the stack trace passed through it.

    Runners shorten paths in traces (mocha makes them relative to the working directory), so
    the file's path is tried whole, then without its leading folders.
    """
    if not file:
        return None
    parts = Path(file).parts
    for candidate in [file, *("/".join(parts[i:]) for i in range(1, len(parts)))]:
        if match := re.search(r"(?<![\w.-])" + re.escape(candidate) + r":(\d+)", stack):
            return int(match[1])
    return None


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from a report file; None when missing or not a JSON object."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _last_lines(text: str, n: int = 6) -> str:
    return "\n".join(text.strip().splitlines()[-n:])


def _clip(text: str) -> str:
    return clip(_ANSI.sub("", text).strip(), MESSAGE_LIMIT)
