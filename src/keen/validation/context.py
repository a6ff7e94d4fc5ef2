"""What every category check receives: the project, the limits and shared results."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from keen.validation.detect import ProjectFiles
from keen.validation.external import tool_env
from keen.validation.report import CategoryResult, Timeouts


@dataclass
class CheckContext:
    root: Path  # resolved
    project: ProjectFiles
    timeouts: Timeouts = field(default_factory=Timeouts)
    env: dict[str, str] = field(default_factory=tool_env)
    # The tests category's result once it has run (performance reads its duration).
    tests_result: CategoryResult | None = None

    def lint_targets(self) -> list[str]:
        """What linters are pointed at: the scope entries, or the whole project."""
        return list(self.project.scope) if self.project.scope else ["."]


Check = Callable[[CheckContext], Awaitable[CategoryResult]]
