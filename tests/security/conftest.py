"""Running attacks the way a hostile model would: as tool calls of a real agent session.

`breathe` runs the real `keen` command with the scripted model and the person's API key in its
environment, then reads what reached the event log. `agent_call` runs one tool call in this
process, through the registry the agent uses, when a test needs to time or cancel it.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import StubAgent, complete, run_keen, write_script
from keen.tools import files, shell
from keen.tools import git as git_tool
from keen.tools.context import ToolContext
from keen.tools.registry import ToolRegistry, ToolResult
from keen.tools.workspace import Workspace
from security.attack import SECRET, AgentCall, Run


@pytest.fixture
def breathe(tmp_path: Path) -> Callable[..., Run]:
    def run(
        *turns: dict[str, Any],
        agents: dict[str, list[dict[str, Any]]] | None = None,
        env: dict[str, str] | None = None,
        workspace: Path | None = None,
    ) -> Run:
        """Run the main agent's `turns` then completion, or a whole tree's scripted `agents`."""
        script = write_script(tmp_path / "script.json", agents or [*turns, complete()])
        env = {"ANTHROPIC_API_KEY": SECRET, **(env or {})}
        result = run_keen(
            "breathe",
            "probe keen's containment from the agent's own tool calls",
            "--model",
            f"scripted:{script}",
            "--dir",
            str(workspace or tmp_path / "w"),
            "--json",
            cwd=tmp_path,
            env=env,
        )
        assert result.returncode == 0, result.stderr
        finished = json.loads(result.stdout)
        shown = run_keen("sessions", "show", finished["session_id"], "--json", cwd=tmp_path, env=env)
        events = json.loads(shown.stdout)["events"]
        return Run(finished, [e["data"] for e in events if e["type"] == "tool.finished"])

    return run


@pytest.fixture
def outside_tmp() -> Iterator[Path]:
    """A directory outside /tmp (which the sandbox hides wholesale): hiding anything in it is
    the sandbox's own doing."""
    path = Path.home() / ".cache" / "keen-security-tests" / uuid.uuid4().hex
    path.mkdir(parents=True)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def bwrap_only() -> None:
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed")


@pytest.fixture
def workspace(repo: Path) -> Path:
    return repo.resolve()


@pytest.fixture
def agent_call(workspace: Path) -> AgentCall:
    registry = ToolRegistry([*files.TOOLS, *shell.TOOLS, *git_tool.TOOLS])

    async def run(name: str, raw_input: dict[str, Any]) -> ToolResult:
        ctx = ToolContext(workspace=Workspace(workspace), agent=StubAgent(), secret_values=(SECRET,))
        return await registry.execute(name, raw_input, ctx)

    return run
