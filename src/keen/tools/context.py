"""What a tool can see and do besides the file system: the calling agent's control surface."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from keen.tools.workspace import Workspace

if TYPE_CHECKING:
    from keen.tools.sandbox import Sandbox


class AgentControl(Protocol):
    """The parts of a running agent that tools act on (phases, completion, the tree, events)."""

    session_id: str
    root_session_id: str
    branch_name: str
    depth: int

    @property
    def phase(self) -> str: ...

    async def change_phase(self, phase: str, summary: str) -> dict[str, Any]:
        """Move to `phase`; returns the tool output. Raises `ToolError` for a bad phase."""
        ...

    async def request_completion(self, summary: str, success: bool, next_steps: list[str]) -> dict[str, Any]:
        """Run the completion gate. Returns the output when accepted; raises `ToolError` if not."""
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
