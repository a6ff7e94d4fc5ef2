"""What a tool can see and do besides the file system: the calling agent's control surface."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

from keen.events.projections import Node, TreeProjection
from keen.tools.workspace import Workspace

if TYPE_CHECKING:
    from keen.tools.sandbox import Sandbox

DEFAULT_CHILD_ITERATIONS = 50


@dataclass
class SummonRequest:
    """One `summon_agent` call, as the tree receives it."""

    call_id: str
    vision: str
    specialization: str
    max_iterations: int = DEFAULT_CHILD_ITERATIONS
    budget: Decimal | None = None
    context: str | None = None


class TreeView(Protocol):
    """The agent tree as the tools read it."""

    projection: TreeProjection

    def status(self, only: str | None = None, include_metrics: bool = True) -> dict[str, Any]: ...

    def node_summary(self, node: Node) -> dict[str, Any]: ...

    def drawing(self) -> str: ...

    def running_children(self, parent_id: str) -> list[Node]: ...

    def find_child(self, parent_id: str, ref: str) -> Node | None: ...

    def git_branch_for(self, branch_name: str) -> str:
        """The git branch of a tree name (`summon-A` → `keen/<session>/summon-A`)."""
        ...


class AgentControl(Protocol):
    """The parts of a running agent that tools act on (phases, completion, the tree, events)."""

    session_id: str
    root_session_id: str
    branch_name: str
    depth: int
    max_parallel: int  # children of one parent that may run at once

    @property
    def phase(self) -> str: ...

    @property
    def tree(self) -> TreeView | None:
        """The agent tree, when this agent may summon (None for the conversation agent)."""
        ...

    async def change_phase(self, phase: str, summary: str) -> dict[str, Any]:
        """Move to `phase`; returns the tool output. Raises `ToolError` for a bad phase."""
        ...

    async def request_completion(self, summary: str, success: bool, next_steps: list[str]) -> dict[str, Any]:
        """Run the completion gate. Returns the output when refused-but-continuing is not the case:
        raises `ToolError` when refused, or a `SessionEnd` carrying the result when it ends."""
        ...

    async def summon(self, request: SummonRequest) -> dict[str, Any]:
        """Run a child agent to its end and merge it; returns what the parent gets back."""
        ...

    async def emit(self, type: str, data: dict[str, Any]) -> None:
        """Append an event of this agent to the session log."""
        ...


@dataclass
class ToolContext:
    workspace: Workspace
    agent: AgentControl
    call_id: str = ""
    # Secret values keen holds; never passed to commands the agent runs, redacted from results.
    secret_values: tuple[str, ...] = ()
    # Where commands run; None: the session's sandbox as the settings choose it.
    sandbox: Sandbox | None = None

    def command_sandbox(self) -> Sandbox:
        if self.sandbox is None:
            from keen.tools.sandbox import policy_from_settings, session_sandbox

            self.sandbox = session_sandbox(policy_from_settings(), self.agent.root_session_id)
        return self.sandbox
