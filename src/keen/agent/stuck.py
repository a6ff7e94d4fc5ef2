"""Stuck detection (SPEC 3.4): repeating the same call for the same result.

The same call with the same input and result 4 times in a row, or the same failing call 3 times,
earns a nudge; the next repetition after the nudge ends the session as `stuck`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

SAME_RESULT_LIMIT = 4
SAME_FAILURE_LIMIT = 3


@dataclass
class Verdict:
    nudge: str | None = None  # the reason to tell the agent
    stuck: str | None = None  # the reason the session ends


class StuckDetector:
    def __init__(self) -> None:
        self._last: tuple[str, str] | None = None
        self._result: str | None = None
        self._same_result = 0
        self._same_failure = 0
        self._nudged = False

    def observe(self, name: str, tool_input: Any, ok: bool, result: str) -> Verdict:
        call = (name, _digest(tool_input))
        digest = hashlib.sha256(result.encode()).hexdigest()
        if call != self._last:
            self._last, self._result = call, digest
            self._same_result = 1
            self._same_failure = 0 if ok else 1
            self._nudged = False
            return Verdict()
        self._same_result = self._same_result + 1 if digest == self._result else 1
        self._result = digest
        self._same_failure = 0 if ok else self._same_failure + 1
        reason = None
        if self._same_failure >= SAME_FAILURE_LIMIT:
            reason = f"{name} failed {self._same_failure} times in a row with the same input"
        elif self._same_result >= SAME_RESULT_LIMIT:
            reason = f"{name} was called {self._same_result} times in a row with the same input and result"
        if reason is None:
            return Verdict()
        if self._nudged:
            return Verdict(stuck=reason)
        self._nudged = True
        return Verdict(nudge=reason)


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()
