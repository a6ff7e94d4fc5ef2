"""The prompts built from an agent's spec, next to their templates (`keen breathe --dry-run`
shows the same text the agent gets)."""

from __future__ import annotations

from decimal import Decimal

from keen.agent.phases import PHASE_PURPOSE, Phase
from keen.agent.prompts.render import render
from keen.agent.spec import AgentSpec

MAX_COMPLETION_REFUSALS = 3


def system_prompt(
    spec: AgentSpec, *, tool_names: list[str], budget: Decimal, max_iterations: int, focus: str = ""
) -> str:
    """The system prompt of an agent."""
    return render(
        "system.j2",
        role="root" if spec.parent_session_id is None else "child",
        vision=spec.vision,
        workspace=spec.workspace,
        specialization=spec.specialization or "general",
        specialization_focus=focus,
        parent_branch=spec.parent_branch or "the root agent",
        parent_expectation=spec.parent_expectation or "a summary of what you did and what is left",
        branch_name=spec.branch_name,
        git_branch=spec.git_branch or "",
        depth=spec.depth,
        max_depth=spec.max_depth,
        max_parallel=spec.max_parallel,
        phases=[(p.value, PHASE_PURPOSE[p]) for p in Phase],
        can_summon="summon_agent" in tool_names,
        has_validation="validate_project" in tool_names,
        gates=spec.gates,
        max_refusals=MAX_COMPLETION_REFUSALS,
        max_iterations=max_iterations,
        budget=f"{budget:.2f}",
    )


def first_message(spec: AgentSpec) -> str:
    """The first user turn: the vision, the starting phase and the workspace."""
    return render("first_message.j2", vision=spec.vision, phase=spec.phase.value, workspace=spec.workspace)
