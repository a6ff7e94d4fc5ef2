"""The `validate_project` tool: the validation engine on the agent's workspace (SPEC 4, 6)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from keen.tools.context import ToolContext
from keen.tools.registry import tool

MAX_FINDINGS_PER_CATEGORY = 15  # enough to act on; the rest is counted, not listed

CategoryName = Literal["syntax", "style", "tests", "security", "performance", "documentation"]


class ValidateInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    categories: list[CategoryName] | None = Field(
        default=None, description="Categories to run; all of them when omitted."
    )
    scope: list[str] | None = Field(
        default=None,
        description="Workspace paths (files or folders) to check; the whole project when omitted. "
        "Tests always run the whole suite.",
    )


@tool(
    "validate_project",
    "Validate the project with real tools: syntax (compile / node --check / tsc), style (ruff, ESLint), "
    "tests (pytest, npm test), security (bandit rules, hard-coded secrets, un-ignored .env), "
    "performance (complexity, oversized files) and documentation (README, docstrings). Returns the "
    "overall status (pass/warning/fail), a 0-100 score and each category's findings. Work is not "
    "complete until validation passes.",
    ValidateInput,
)
async def validate_project_tool(ctx: ToolContext, args: ValidateInput) -> dict[str, Any]:
    from keen.validation import validate_project  # its runners load when it runs, not with the tools

    scope = None
    if args.scope:
        # Confinement is the workspace's job: refuse paths leading out of it.
        scope = [ctx.workspace.relative(ctx.workspace.resolve(p)) for p in args.scope]
    report = await validate_project(ctx.workspace.root, categories=args.categories, scope=scope)
    await ctx.agent.emit("validation.finished", report.event_data())
    return report.to_dict(max_findings=MAX_FINDINGS_PER_CATEGORY)


TOOLS = [validate_project_tool]
