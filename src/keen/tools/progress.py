"""Tools through which the agent reports progress: phases, plans and completion."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from keen.tools.context import ToolContext
from keen.tools.registry import tool


class ReportPhaseInput(BaseModel):
    phase: str = Field(description="EXPLORE, PLAN, FOUND, SUMMON or COMPLETE")
    summary: str = Field(
        min_length=1, max_length=4000, description="what the phase you leave found or produced"
    )


class ContinueWorkInput(BaseModel):
    next_action: str = Field(min_length=1, max_length=2000)
    reasoning: str | None = Field(default=None, max_length=4000)


class ReportCompleteInput(BaseModel):
    summary: str = Field(min_length=1, max_length=20_000, description="what was done, for the final report")
    success: bool = Field(default=True, description="false when the vision could not be achieved")
    next_steps: list[str] = Field(default_factory=list, max_length=50)


@tool(
    "report_phase",
    "Move to another phase of the lifecycle (EXPLORE → PLAN → FOUND → SUMMON → COMPLETE) with a short "
    "summary of what the phase you are leaving found or produced.",
    ReportPhaseInput,
)
async def report_phase(ctx: ToolContext, args: ReportPhaseInput) -> dict[str, Any]:
    return await ctx.agent.change_phase(args.phase, args.summary)


@tool(
    "continue_work",
    "Record your next action and why. It has no effect on control flow; use it to keep a plan visible.",
    ContinueWorkInput,
    read_only=True,
)
async def continue_work(ctx: ToolContext, args: ContinueWorkInput) -> dict[str, Any]:
    return {"recorded": True, "next_action": args.next_action}


@tool(
    "report_complete",
    "Finish the session. keen first runs the completion gate (build, tests, security); if it fails the "
    "completion is refused with the failures and you continue. Use success=false to report that the "
    "vision cannot be achieved.",
    ReportCompleteInput,
)
async def report_complete(ctx: ToolContext, args: ReportCompleteInput) -> dict[str, Any]:
    return await ctx.agent.request_completion(args.summary, args.success, args.next_steps)


TOOLS = [report_phase, continue_work, report_complete]
