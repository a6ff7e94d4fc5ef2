"""What an agent is (`AgentSpec`), what it runs on (`AgentDeps`) and what it returns.

Specs are built in one place, `keen.runner.sessions`, from a session's `session.created`
payload, so a new session, a resumed one and a summoned child are described the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keen.agent.budget import IterationPool, Meter
from keen.agent.completion import CompletionGate
from keen.agent.phases import Phase
from keen.events.sink import EventSink
from keen.events.types import ROOT_BRANCH, SessionRef
from keen.gitrepo import FileChanges

if TYPE_CHECKING:
    from keen.agent.tree import Tree
    from keen.llm.base import Model
    from keen.tools.registry import ToolRegistry
    from keen.tools.sandbox import Sandbox

__all__ = ["DEFAULT_MAX_PARALLEL", "ROOT_BRANCH", "AgentDeps", "AgentResult", "AgentSpec"]

DEFAULT_MAX_PARALLEL = 3  # children of one parent that run at the same time (SPEC 3.6)


def _never() -> bool:
    return False


@dataclass
class AgentSpec:
    """Who the agent is and what it may do."""

    session_id: str
    short_id: str
    root_session_id: str
    parent_session_id: str | None
    vision: str
    workspace: Path
    branch_name: str = ROOT_BRANCH
    git_branch: str | None = None
    specialization: str | None = None
    depth: int = 0
    max_iterations: int = 100
    max_depth: int = 10
    max_parallel: int = DEFAULT_MAX_PARALLEL  # children of this agent that run at once
    phase: Phase = Phase.EXPLORE
    gates: str = "standard"
    parent_branch: str | None = None
    parent_expectation: str | None = None
    start_commit: str = "HEAD"  # what "files changed" is measured against

    @property
    def ref(self) -> SessionRef:
        return SessionRef(self.session_id, self.root_session_id, self.parent_session_id)


@dataclass
class AgentDeps:
    """What an agent runs on; a child gets the same with a meter and a pool of its parent's."""

    model: Model
    tools: ToolRegistry
    sink: EventSink
    meter: Meter
    iterations: IterationPool
    gate: CompletionGate
    secret_values: tuple[str, ...] = ()
    retry_base_delay: float = 1.0
    tree: Tree | None = None  # when summoning is available
    sandbox: Sandbox | None = None  # the tree's sandbox for commands (None: as the settings say)
    # True while the process running the tree is stopping: a cancellation then suspends the
    # agents (nothing is recorded as ended, so the tree is resumed later) instead of ending them.
    stopping: Callable[[], bool] = _never


@dataclass
class AgentResult:
    session_id: str
    status: str
    summary: str
    error: str | None
    iterations: int  # this agent and its children
    cost_usd: Decimal  # this agent and its children
    files: FileChanges
    report: dict[str, Any] | None = None
    duration_ms: int = 0
    credits: Decimal | None = None  # this agent and its children (server modes)

    def finished_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "status": self.status,
            "summary": self.summary,
            **self.files.as_dict(),
            "iterations": self.iterations,
            "cost_usd": self.cost_usd,
            "credits": self.credits,
            "duration_ms": self.duration_ms,
        }
        if self.error:
            data["error"] = self.error
        if self.report is not None:
            data["report"] = self.report
        return data
