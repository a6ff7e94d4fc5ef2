"""What the attack tests share: the secret keen holds, and what a real session left behind."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from helpers import call, git, turn
from keen.tools.registry import ToolResult

SECRET = "sk-ant-api03-keen-test-secret-0123456789abcdef"
REDACTED = "[secret redacted by keen]"

AgentCall = Callable[..., Awaitable[ToolResult]]


@dataclass
class Run:
    """What a real session left in its event log."""

    finished: dict[str, Any]
    tools: list[dict[str, Any]]  # the tool.finished data, in order

    def output(self, index: int = 0) -> str:
        """stdout and stderr of the `index`-th tool call."""
        out = self.tools[index]["output"] or {}
        return f"{out.get('stdout', '')}{out.get('stderr', '')}"


def commands(*lines: str) -> dict[str, Any]:
    """One turn running each line as its own `run_command`."""
    return turn(*(call("run_command", command=line) for line in lines))


def diverge(repo: Path, name: str) -> None:
    """A branch `side` and the current branch, each changing the tracked file `name` its own
    way: merging `side` needs a merge of that file (a conflict, or a driver)."""
    git(repo, "checkout", "-q", "-b", "side")
    (repo / name).write_text("side\n")
    git(repo, "commit", "-qam", "side")
    git(repo, "checkout", "-q", "-")
    (repo / name).write_text("main\n")
    git(repo, "commit", "-qam", "main")
