"""Reading test runners' machine-readable reports: JUnit XML (pytest, node --test, vitest) and
jest's `--json` output, into one shape of counts and first failures."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keen.text import clip

MESSAGE_LIMIT = 800
# pytest's failure text ends with "path/to/test_x.py:12: AssertionError".
_PYTEST_LOCATION = re.compile(r"^(?P<file>[^\s:][^:]*\.py):(?P<line>\d+): ")


@dataclass
class FailedCase:
    name: str
    message: str
    kind: str = "failure"  # failure | error
    file: str | None = None
    line: int | None = None

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
    message = (element.get("message") or "").strip() or _last_lines(text)
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
    )


def parse_jest_json(path: Path) -> CaseCounts | None:
    """Counts from jest's `--json --outputFile` report."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    counts = CaseCounts(
        passed=int(data.get("numPassedTests", 0)),
        failed=int(data.get("numFailedTests", 0)),
        errored=int(data.get("numRuntimeErrorTestSuites", 0)),
        skipped=int(data.get("numPendingTests", 0)) + int(data.get("numTodoTests", 0)),
    )
    for suite in data.get("testResults", []):
        for case in suite.get("assertionResults", []):
            if case.get("status") == "failed":
                messages = case.get("failureMessages") or [""]
                counts.failures.append(
                    FailedCase(
                        name=case.get("fullName") or case.get("title") or "?",
                        message=_clip(messages[0]),
                        file=suite.get("name"),
                    )
                )
        if suite.get("status") == "failed" and not suite.get("assertionResults"):
            counts.failures.append(
                FailedCase(name=suite.get("name", "?"), kind="error", message=_clip(suite.get("message", "")))
            )
    return counts


def _last_lines(text: str, n: int = 6) -> str:
    return "\n".join(text.strip().splitlines()[-n:])


def _clip(text: str) -> str:
    text = text.strip()
    return clip(text, MESSAGE_LIMIT)
