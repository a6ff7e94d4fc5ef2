"""Tools of the agent tree: summon a specialist, coordinate children, read the tree."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from keen.tools.context import DEFAULT_CHILD_ITERATIONS, SummonRequest, ToolContext, TreeView
from keen.tools.registry import ToolError, tool

Specialization = Literal["frontend", "backend", "database", "testing", "security", "devops", "general"]


class SummonInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    vision: str = Field(min_length=10, max_length=30_000, description="What the specialist must achieve.")
    specialization: Specialization
    max_iterations: int = Field(
        default=DEFAULT_CHILD_ITERATIONS, ge=1, le=10_000, description="Model calls the child may make."
    )
    budget: Decimal | None = Field(
        default=None, gt=0, description="USD cap for the child (and its children)."
    )
    context: str | None = Field(default=None, max_length=20_000, description="What the child should know.")


class CoordinateInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Literal["status", "validate_sequential", "check_dependencies", "sync_phase"]
    dependencies: list[str] = Field(default_factory=list, description="Child branches or session ids.")
    target_phase: str | None = None


class AgentStatusInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    filter: str | None = Field(default=None, description="Only nodes with this status or specialization.")
    include_metrics: bool = True


def _tree(ctx: ToolContext) -> TreeView:
    tree = ctx.agent.tree
    if tree is None:
        raise ToolError("the agent tree is not available in this session")
    return tree


@tool(
    "summon_agent",
    "Hand a well-separated part of the work to a specialist child agent (frontend, backend, database, "
    "testing, security, devops, general). The child works on its own git branch in its own worktree "
    "from your current commit (your pending changes are committed first) and you wait for it. Several "
    "summon_agent calls in one reply run their children at the same time (up to --max-parallel) and "
    "are merged in call order when all have finished. A completed child's branch is merged into yours "
    "(--no-ff); on a conflict the merge is aborted and you get the conflicting files and the branch. "
    "Returns the child's status, summary, files, commits, merge result, iterations and cost. Its "
    "budget and iterations come out of yours.",
    SummonInput,
)
async def summon_agent(ctx: ToolContext, args: SummonInput) -> dict[str, Any]:
    _tree(ctx)
    return await ctx.agent.summon(summon_request(ctx.call_id, args))


def summon_request(call_id: str, args: SummonInput) -> SummonRequest:
    """What the tree receives for one `summon_agent` call (one call, or one of a parallel reply)."""
    return SummonRequest(
        call_id=call_id,
        vision=args.vision,
        specialization=args.specialization,
        max_iterations=args.max_iterations,
        budget=args.budget,
        context=args.context,
    )


@tool(
    "coordinate_agents",
    "Coordinate with your children: `status` (your children and the tree), `validate_sequential` "
    "(checks that no parent runs more children at once than --max-parallel), `check_dependencies` (which of the "
    "given children finished and were merged), `sync_phase` (move yourself to `target_phase` once "
    "none of your children is running).",
    CoordinateInput,
)
async def coordinate_agents(ctx: ToolContext, args: CoordinateInput) -> dict[str, Any]:
    tree = _tree(ctx)
    me = ctx.agent.session_id
    nodes = tree.projection.nodes
    if args.action == "status":
        children = [tree.node_summary(nodes[c]) for c in nodes[me].children]
        return {"children": children, "drawing": tree.drawing()}
    if args.action == "validate_sequential":
        running = {n.branch: [c.branch for c in tree.running_children(sid)] for sid, n in nodes.items()}
        busy = {parent: kids for parent, kids in running.items() if kids}
        limit = ctx.agent.max_parallel
        return {
            "valid": all(len(kids) <= limit for kids in busy.values()),
            "max_parallel": limit,
            "running_children": busy,
        }
    if args.action == "check_dependencies":
        if not args.dependencies:
            raise ToolError("check_dependencies needs `dependencies`: child branches or session ids")
        results = [_dependency(tree, me, ref) for ref in args.dependencies]
        return {"dependencies": results, "satisfied": all(r["finished"] and r["merged"] for r in results)}
    if not args.target_phase:
        raise ToolError("sync_phase needs `target_phase`")
    still_running = [c.branch for c in tree.running_children(me)]
    if still_running:
        raise ToolError(
            f"cannot move to {args.target_phase}: children still running: {', '.join(still_running)}"
        )
    done = [nodes[c].branch for c in nodes[me].children]
    summary = f"children done: {', '.join(done)}" if done else "no children to wait for"
    return await ctx.agent.change_phase(args.target_phase, summary)


def _dependency(tree: TreeView, me: str, ref: str) -> dict[str, Any]:
    node = tree.find_child(me, ref)
    if node is None:
        return {"ref": ref, "found": False, "status": None, "finished": False, "merged": False}
    finished = node.status not in ("created", "running")
    merged = bool(node.merge and node.merge.get("result") == "merged")
    return {
        "ref": ref,
        "found": True,
        "branch": node.branch,
        "status": node.status,
        "finished": finished,
        "merged": merged,
    }


@tool(
    "get_agent_status",
    "The agent tree: every node (session id, branch, specialization, phase, status, depth, cost, "
    "duration, children), tree metrics, and a text drawing.",
    AgentStatusInput,
    read_only=True,
)
async def get_agent_status(ctx: ToolContext, args: AgentStatusInput) -> dict[str, Any]:
    return _tree(ctx).status(only=args.filter, include_metrics=args.include_metrics)


TOOLS = [summon_agent, coordinate_agents, get_agent_status]
