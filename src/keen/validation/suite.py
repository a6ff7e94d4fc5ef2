"""One test runner's outcome, and the line between "the suite failed" and "it could not run".

A suite that ran and had failing tests failed. A suite that could not run at all says why
instead: its environment lacks the runner or a dependency (every failure it reported is a
missing package), or the runner stopped before running anything (a broken configuration).
That is not a verdict on the code, and the agent is told how to set the environment up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from keen.validation.testreports import CaseCounts, FailedCase


@dataclass
class SuiteRun:
    runner: str
    counts: CaseCounts = field(default_factory=CaseCounts)
    duration_ms: int = 0
    ok: bool = True  # the runner's own verdict (exit code)
    has_tests: bool = True
    timed_out: bool = False
    problem: str | None = None  # why the run failed without per-test results
    counted: bool = True  # False when only the exit code is known
    could_not_run: str | None = None  # why the suite could not run at all; names the runner
    first_error: str | None = None  # the first error it printed, e.g. "ModuleNotFoundError: ..."
    environment: dict[str, Any] = field(default_factory=dict)  # where (and how) it ran
    setup: list[str] = field(default_factory=list)  # commands that would set the environment up

    def blocked(self, reason: str, first_error: str | None = None) -> SuiteRun:
        self.could_not_run = reason
        self.first_error = first_error
        return self


def missing_dependencies(counts: CaseCounts) -> list[FailedCase]:
    """The failures when every one of them is a missing package; [] otherwise.

    One real failure among them means the suite did run and fail: that is what it reports.
    """
    if not counts.failures or not all(f.missing for f in counts.failures):
        return []
    return counts.failures


def missing_summary(runner: str, failures: list[FailedCase], where: str) -> str:
    """'pytest: 2 test files could not be loaded: itsdangerous is not installed in ...'."""
    names = sorted({f.missing for f in failures if f.missing})
    files = f"{len(failures)} test file{'s' if len(failures) != 1 else ''} could not be loaded"
    return (
        f"{runner}: {files}: {', '.join(names)} {'is' if len(names) == 1 else 'are'} not installed in {where}"
    )
