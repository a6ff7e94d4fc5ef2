"""Fixtures for the workspace tools: a real temp workspace, a ToolContext and the registry."""

from __future__ import annotations

import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from helpers import StubAgent
from keen.gitrepo import git_env
from keen.tools import files, git, search, shell
from keen.tools.context import ToolContext
from keen.tools.registry import ToolRegistry, ToolResult
from keen.tools.workspace import Workspace

Call = Callable[..., Awaitable[ToolResult]]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    return workspace.resolve()


@pytest.fixture
def ctx(root: Path) -> ToolContext:
    return ToolContext(workspace=Workspace(root), agent=StubAgent(), call_id="call-1")


@pytest.fixture
def registry() -> ToolRegistry:
    return ToolRegistry([*files.TOOLS, *search.TOOLS, *shell.TOOLS, *git.TOOLS])


@pytest.fixture
def call(registry: ToolRegistry, ctx: ToolContext) -> Call:
    """Run a tool the way the agent does: raw input validated by the registry."""

    async def run(name: str, raw_input: Any, context: ToolContext | None = None) -> ToolResult:
        return await registry.execute(name, raw_input, context or ctx)

    return run


def _git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, env=git_env(), capture_output=True, text=True, check=True)
    return done.stdout


@pytest.fixture
def run_git() -> Callable[..., str]:
    """Git from the test side, to set up and inspect repositories independently of the tool."""
    return _git


@pytest.fixture
def repo(root: Path) -> Path:
    """The workspace as a git repository on `main` with one commit."""
    _git(root, "init", "-q", "-b", "main")
    (root / "README.md").write_text("hello\n")
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "initial")
    return root
