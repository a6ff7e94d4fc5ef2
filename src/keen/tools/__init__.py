"""The agent's tools. `agent_tools` assembles the registry an agent of a given kind sees."""

from __future__ import annotations

from keen.tools.registry import Tool, ToolError, ToolRegistry, ToolResult, tool

__all__ = ["Tool", "ToolError", "ToolRegistry", "ToolResult", "agent_tools", "read_only_tools", "tool"]


def _core() -> list[Tool]:
    from keen.tools import files, git, progress, search, shell

    return [*files.TOOLS, *search.TOOLS, *shell.TOOLS, *git.TOOLS, *progress.TOOLS]


def agent_tools(*, validation: bool = True, summon: bool = True) -> ToolRegistry:
    """Every tool of SPEC section 4 an agent may use (web_search is the provider's own)."""
    tools = _core()
    if validation:
        from keen.tools import validate

        tools.extend(validate.TOOLS)
    if summon:
        from keen.tools import summon as summon_tools

        tools.extend(summon_tools.TOOLS)
    return ToolRegistry(tools)


def read_only_tools() -> ToolRegistry:
    """The conversation agent's tools: it can look, never change."""
    return ToolRegistry(t for t in _core() if t.read_only and t.name != "continue_work")
