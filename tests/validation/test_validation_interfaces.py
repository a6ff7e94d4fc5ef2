"""The validate_project tool (through the registry) and the `keen validate` command core."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from keen.cli.commands.validate import validate_command
from keen.tools.context import ToolContext
from keen.tools.registry import ToolRegistry
from keen.tools.validate import MAX_FINDINGS_PER_CATEGORY, TOOLS
from keen.tools.workspace import Workspace
from validation.fixture_projects import copy_project

ProjectFactory = Callable[..., Path]


class RecordingAgent:
    """The parts of AgentControl the tool uses; records emitted events."""

    session_id = "s-1"
    root_session_id = "s-1"
    branch_name = "main"
    depth = 0
    phase = "COMPLETE"

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    async def change_phase(self, phase: str, summary: str) -> dict[str, Any]:
        raise NotImplementedError

    async def request_completion(self, summary: str, success: bool, next_steps: list[str]) -> dict[str, Any]:
        raise NotImplementedError

    async def emit(self, type: str, data: dict[str, Any]) -> None:
        self.events.append((type, data))


def _context(root: Path) -> tuple[ToolContext, RecordingAgent]:
    agent = RecordingAgent()
    return ToolContext(workspace=Workspace(root), agent=agent), agent


async def test_tool_validates_the_workspace_and_emits_an_event(make_project: ProjectFactory) -> None:
    many_unused = "".join(f"import mod{i}\n" for i in range(MAX_FINDINGS_PER_CATEGORY + 5))
    root = make_project({"calc/noisy.py": many_unused}, clean=True)
    ctx, agent = _context(root)

    result = await ToolRegistry(TOOLS).execute("validate_project", {"categories": ["style", "syntax"]}, ctx)

    assert result.ok, result.error
    assert result.output["overall"] in ("warning", "fail")
    style = result.output["categories"]["style"]
    assert len(style["findings"]) == MAX_FINDINGS_PER_CATEGORY
    assert style["findings_total"] == MAX_FINDINGS_PER_CATEGORY + 5
    [(event_type, data)] = agent.events
    assert event_type == "validation.finished"
    assert data["overall"] == result.output["overall"]
    assert data["score"] == result.output["score"]
    assert set(data["categories"]) == {"syntax", "style"}
    assert set(data["categories"]["style"]) == {"status", "score", "summary"}
    json.loads(result.content())  # what the model receives is one JSON document


async def test_tool_scope_is_confined_to_the_workspace(make_project: ProjectFactory) -> None:
    root = make_project(clean=True)
    ctx, agent = _context(root)

    result = await ToolRegistry(TOOLS).execute("validate_project", {"scope": ["../../etc"]}, ctx)

    assert not result.ok
    assert result.error is not None and "outside the workspace" in result.error
    assert agent.events == []


async def test_tool_rejects_an_unknown_category(make_project: ProjectFactory) -> None:
    ctx, _ = _context(make_project(clean=True))

    result = await ToolRegistry(TOOLS).execute("validate_project", {"categories": ["vibes"]}, ctx)

    assert not result.ok
    assert result.error is not None and "categories.0" in result.error


def test_validate_command_json(make_project: ProjectFactory, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_project(clean=True)

    code = validate_command(root, ["syntax,tests"], fix=False, as_json=True)

    document = json.loads(capsys.readouterr().out)
    assert code == 0
    assert document["overall"] == "pass"
    assert set(document["categories"]) == {"syntax", "tests"}
    assert document["categories"]["tests"]["details"]["passed"] == 2
    assert {"languages", "score", "fixes_applied", "duration_ms"} <= set(document)


def test_validate_command_fails_with_exit_1_and_renders(
    make_project: ProjectFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_project({"calc/broken.py": "def f(:\n"}, clean=True)

    code = validate_command(root, ["syntax"], fix=False, as_json=False)

    out = capsys.readouterr().out
    assert code == 1
    assert "syntax" in out and "fail" in out
    assert "calc/broken.py:1" in out


def test_validate_command_renders_tests_that_could_not_run_without_failing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = copy_project("js_mocha", tmp_path / "slug")  # its node_modules were never installed

    code = validate_command(root, ["tests"], fix=False, as_json=False)

    out = capsys.readouterr().out
    assert code == 0  # overall warning: nothing failed, nothing was proven
    assert "error" in out and "could not run: mocha is not installed" in out
    assert "overall: warning" in out


def test_validate_command_bad_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = validate_command(tmp_path / "nope", None, fix=False, as_json=True)

    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""
    assert f"{tmp_path / 'nope'} does not exist" in captured.err


def test_validate_command_bad_category(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = validate_command(tmp_path, ["speed"], fix=False, as_json=False)

    assert code == 2
    assert "unknown validation categories" in capsys.readouterr().err
