"""The agent tree: specialists summoned on their own git branches and merged back in order.

One place for branch naming (`child_branch_name`, `git_branch_name`). A child gets its own git
worktree on its own branch from the parent's HEAD (the parent's pending work is committed as a
checkpoint first), runs to its end with the budget and iterations its parent has left, and, when
it completed, is merged `--no-ff` into the parent's branch. A conflict aborts the merge and the
parent is told which files conflict; the branch stays for a merge by hand. Summoning is
idempotent per tool call, which is how a resumed session continues an interrupted child.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keen.agent.budget import BudgetMeter
from keen.errors import WorkspaceError
from keen.events import types as ev
from keen.events.projections import Node, TreeProjection
from keen.events.types import Event
from keen.gitrepo import GitRepo
from keen.tools.registry import ToolError

if TYPE_CHECKING:
    from keen.agent.loop import Agent, AgentDeps, AgentSpec

SPECIALIZATIONS: dict[str, str] = {
    "frontend": "UI components, styling, accessibility, client logic",
    "backend": "server logic, APIs, auth, data processing",
    "database": "schema, migrations, queries, integrity",
    "testing": "test design and automation, coverage",
    "security": "authn/authz, secrets, vulnerability fixes",
    "devops": "build, CI/CD, deployment, monitoring",
    "general": "full-stack work and coordination",
}
MAX_CHILDREN = 26
DEFAULT_CHILD_ITERATIONS = 50
ROOT_BRANCH = "main"


def child_branch_name(parent_branch: str, index: int) -> str:
    """The tree name of a parent's `index`-th child (0-based): main → summon-A, summon-A → summon-A-B."""
    if not 0 <= index < MAX_CHILDREN:
        raise ValueError(f"a parent has at most {MAX_CHILDREN} children (index {index})")
    letter = string.ascii_uppercase[index]
    return f"summon-{letter}" if parent_branch == ROOT_BRANCH else f"{parent_branch}-{letter}"


def git_branch_name(session_short_id: str, branch_name: str) -> str:
    """The git branch of a child: `keen/<session short id>/<name>`, so sessions never collide."""
    return f"keen/{session_short_id}/{branch_name}"


@dataclass
class SummonRequest:
    call_id: str
    vision: str
    specialization: str
    max_iterations: int = DEFAULT_CHILD_ITERATIONS
    budget: Decimal | None = None
    context: str | None = None


class Tree:
    """The live tree of one root session, shared by all its agents."""

    def __init__(self, *, root_short_id: str, worktrees_dir: Path) -> None:
        self.root_short_id = root_short_id
        self.worktrees_dir = worktrees_dir
        self.projection = TreeProjection()
        self.spawned: dict[str, dict[str, Any]] = {}  # call id → child.spawned data
        self.finished: dict[str, dict[str, Any]] = {}  # child session id → session.finished data
        self.reported: set[str] = set()  # child session ids with child.finished
        self.events: list[Event] = []  # stored events of a resumed session

    def observe(self, item: Any) -> None:
        """Bus callback: keep the projection and the spawn records current."""
        if not isinstance(item, Event):
            return
        self.projection.apply(item)
        if item.type == ev.CHILD_SPAWNED and item.data.get("call_id"):
            self.spawned[item.data["call_id"]] = {**item.data, "parent_session_id": item.session_id}
        elif item.type == ev.SESSION_FINISHED:
            self.finished[item.session_id] = item.data
        elif item.type == ev.CHILD_FINISHED:
            self.reported.add(item.data["child_session_id"])

    def load(self, events: list[Event]) -> None:
        """Rebuild from a stored log before resuming."""
        self.events = events
        for event in events:
            self.observe(event)

    @staticmethod
    def focus(specialization: str | None) -> str:
        return SPECIALIZATIONS.get(specialization or "general", SPECIALIZATIONS["general"])

    # -- summoning -----------------------------------------------------------------------------

    async def summon(self, parent: Agent, request: SummonRequest) -> dict[str, Any]:
        record = self.spawned.get(request.call_id)
        if record is not None:
            return await self._continue(parent, record)
        self._check_limits(parent, request)
        repo = parent.repo
        checkpoint = await parent.commit_checkpoint(
            f"checkpoint before summoning a {request.specialization} agent"
        )
        index = len(self.projection.nodes[parent.session_id].children)
        name = child_branch_name(parent.branch_name, index)
        git_branch = git_branch_name(self.root_short_id, name)
        path = self.worktrees_dir / self.root_short_id / name
        path.parent.mkdir(parents=True, exist_ok=True)
        await repo.run("worktree", "add", "-q", "-b", git_branch, str(path), "HEAD")
        start = await repo.head()
        spec, deps = self._child(parent, request, name, git_branch, path, start)
        try:
            await parent.deps.sink.emit(
                spec.ref, ev.SESSION_CREATED, self._created_data(parent, spec, request, deps)
            )
            await parent.emit(
                ev.CHILD_SPAWNED,
                {
                    "call_id": request.call_id,
                    "child_session_id": spec.session_id,
                    "branch": name,
                    "git_branch": git_branch,
                    "specialization": request.specialization,
                    "vision": request.vision,
                    "checkpoint": checkpoint,
                    "start_commit": start,
                    "budget_usd": deps.budget.limit,
                    "max_iterations": deps.iterations.limit,
                    "worktree": str(path),
                },
            )
            return await self._run_and_merge(parent, spec, deps, resume=False)
        finally:
            await self._remove_worktree(repo, path)

    def _check_limits(self, parent: Agent, request: SummonRequest) -> None:
        if request.specialization not in SPECIALIZATIONS:
            raise ToolError(
                f"unknown specialization {request.specialization!r}; use one of: {', '.join(SPECIALIZATIONS)}"
            )
        depth = parent.depth + 1
        if depth > parent.spec.max_depth:
            raise ToolError(
                f"cannot summon: a child would be at depth {depth} but the maximum depth is "
                f"{parent.spec.max_depth} (--max-depth); do this work yourself"
            )
        node = self.projection.nodes[parent.session_id]
        if len(node.children) >= MAX_CHILDREN:
            raise ToolError(f"cannot summon: {parent.branch_name} already has {MAX_CHILDREN} children")
        running = [c for c in node.children if self.projection.nodes[c].status in ("created", "running")]
        if running:
            raise ToolError(
                f"cannot summon: child {self.projection.nodes[running[0]].branch} is still running"
            )
        if parent.deps.iterations.remaining() <= 1:
            raise ToolError("cannot summon: no iterations are left for a child")

    def _child(
        self, parent: Agent, request: SummonRequest, name: str, git_branch: str, path: Path, start: str
    ) -> tuple[AgentSpec, AgentDeps]:
        from keen.agent.loop import AgentSpec, new_session_id

        deps = parent.deps
        budget = deps.budget.child(request.budget)
        iterations = deps.iterations.child(min(request.max_iterations, deps.iterations.remaining() - 1))
        session_id = new_session_id()
        spec = AgentSpec(
            session_id=session_id,
            short_id=session_id[:8],
            root_session_id=parent.root_session_id,
            parent_session_id=parent.session_id,
            vision=request.vision,
            workspace=path,
            branch_name=name,
            git_branch=git_branch,
            specialization=request.specialization,
            depth=parent.depth + 1,
            max_iterations=iterations.limit,
            max_depth=parent.spec.max_depth,
            gates=parent.spec.gates,
            parent_branch=parent.branch_name,
            parent_expectation=_expectation(request.context),
            start_commit=start,
        )
        child_deps = _replace_deps(deps, budget=budget, meter=BudgetMeter(budget), iterations=iterations)
        return spec, child_deps

    def _created_data(
        self, parent: Agent, spec: AgentSpec, request: SummonRequest, deps: AgentDeps
    ) -> dict[str, Any]:
        return {
            "vision": spec.vision,
            "options": {
                "max_iterations": deps.iterations.limit,
                "budget": deps.budget.limit,
                "context": request.context,
                "call_id": request.call_id,
            },
            "branch": spec.branch_name,
            "git_branch": spec.git_branch,
            "specialization": spec.specialization,
            "depth": spec.depth,
            "model": parent.deps.model.name,
            "workspace": str(spec.workspace),
            "start_commit": spec.start_commit,
            "short_id": spec.short_id,
            "phase": spec.phase.value,
            "kind": "agent",
            "parent_expectation": spec.parent_expectation,
        }

    async def _run_and_merge(
        self, parent: Agent, spec: AgentSpec, deps: AgentDeps, *, resume: bool
    ) -> dict[str, Any]:
        from keen.agent.loop import Agent

        child = Agent(spec, deps)
        try:
            result = await child.run(resume_events=self.events if resume else None)
        except BaseException:
            # Cancelled: the child recorded itself as cancelled; the parent hears it too.
            if spec.session_id not in self.reported:
                await parent.emit(
                    ev.CHILD_FINISHED,
                    {
                        "child_session_id": spec.session_id,
                        "status": "cancelled",
                        "summary": "cancelled",
                        "merge": None,
                    },
                )
            raise
        return await self._merge_and_report(parent, spec.session_id, result.finished_data())

    async def _continue(self, parent: Agent, record: dict[str, Any]) -> dict[str, Any]:
        """The same summon call again after a resume: finish the child, merge and report once."""
        child_id = record["child_session_id"]
        path = Path(record["worktree"])
        if child_id not in self.finished:
            if not path.is_dir():
                await self._restore_worktree(parent.repo, path, record["git_branch"])
            try:
                spec, deps = self._resumed_child(parent, child_id, record, path)
                return await self._run_and_merge(parent, spec, deps, resume=True)
            finally:
                await self._remove_worktree(parent.repo, path)
        await self._remove_worktree(parent.repo, path)
        return await self._merge_and_report(parent, child_id, self.finished[child_id])

    def _resumed_child(
        self, parent: Agent, child_id: str, record: dict[str, Any], path: Path
    ) -> tuple[AgentSpec, AgentDeps]:
        from keen.agent.loop import AgentSpec

        created = next(
            e for e in self.events if e.session_id == child_id and e.type == ev.SESSION_CREATED
        ).data
        deps = parent.deps
        subtree = self._subtree(child_id)
        budget = deps.budget.child(Decimal(str(record["budget_usd"])))
        budget.limit = Decimal(str(record["budget_usd"]))
        budget.spent = sum((n.cost_usd for n in subtree), Decimal(0))
        iterations = deps.iterations.child(int(record["max_iterations"]))
        iterations.limit = int(record["max_iterations"])
        iterations.used = sum(n.iterations for n in subtree)
        spec = AgentSpec(
            session_id=child_id,
            short_id=created.get("short_id", child_id[:8]),
            root_session_id=parent.root_session_id,
            parent_session_id=parent.session_id,
            vision=created["vision"],
            workspace=path,
            branch_name=created["branch"],
            git_branch=created["git_branch"],
            specialization=created["specialization"],
            depth=int(created["depth"]),
            max_iterations=iterations.limit,
            max_depth=parent.spec.max_depth,
            gates=parent.spec.gates,
            parent_branch=parent.branch_name,
            parent_expectation=created.get("parent_expectation"),
            start_commit=created["start_commit"],
        )
        return spec, _replace_deps(deps, budget=budget, meter=BudgetMeter(budget), iterations=iterations)

    def _subtree(self, session_id: str) -> list[Node]:
        node = self.projection.nodes[session_id]
        out = [node]
        for child in node.children:
            out.extend(self._subtree(child))
        return out

    async def _merge_and_report(
        self, parent: Agent, child_id: str, finished: dict[str, Any]
    ) -> dict[str, Any]:
        node = self.projection.nodes[child_id]
        git_branch = node.git_branch or ""
        start = next(r["start_commit"] for r in self.spawned.values() if r["child_session_id"] == child_id)
        log = await parent.repo.run("log", "--format=%H", f"{start}..{git_branch}", check=False)
        commits = log.stdout.split() if log.ok else []
        merge = node.merge
        if child_id not in self.reported:
            if finished["status"] == "completed":
                merge = await self._merge(parent, node, finished)
            else:
                merge = {
                    "result": "not_merged",
                    "reason": f"the child ended {finished['status']}; its work stays on {git_branch}",
                }
            await parent.emit(
                ev.CHILD_FINISHED,
                {
                    "child_session_id": child_id,
                    "status": finished["status"],
                    "summary": finished.get("summary"),
                    "merge": merge,
                },
            )
        files = {k: finished.get(k, []) for k in ("files_created", "files_modified", "files_deleted")}
        return {
            "child_session_id": child_id,
            "branch": node.branch,
            "git_branch": git_branch,
            "specialization": node.specialization,
            "status": finished["status"],
            "summary": finished.get("summary"),
            "files_changed": files,
            "commits": commits,
            "merge": merge,
            "iterations": finished.get("iterations"),
            "cost_usd": finished.get("cost_usd"),
        }

    async def _merge(self, parent: Agent, node: Node, finished: dict[str, Any]) -> dict[str, Any]:
        repo = parent.repo
        into = await repo.current_branch()
        headline = " ".join(str(finished.get("summary") or "").split())[:60]
        message = f"keen: merge {node.branch} ({node.specialization}): {headline}"
        result = await repo.run(
            "merge", "--no-ff", "--no-edit", "-m", message, node.git_branch or "", check=False
        )
        if result.ok:
            commit = await repo.head()
            await parent.emit(
                ev.GIT_MERGED, {"from": node.git_branch, "into": into, "commit": commit, "conflicts": []}
            )
            return {"result": "merged", "commit": commit}
        conflicts = (await repo.run("diff", "--name-only", "--diff-filter=U", check=False)).stdout.split()
        await repo.run("merge", "--abort", check=False)
        await parent.emit(
            ev.GIT_MERGED, {"from": node.git_branch, "into": into, "commit": None, "conflicts": conflicts}
        )
        if not conflicts:
            detail = (result.stderr or result.stdout).strip()
            return {"result": "failed", "error": detail, "branch": node.git_branch}
        return {
            "result": "conflicts",
            "conflicts": conflicts,
            "branch": node.git_branch,
            "hint": (
                f"the merge was aborted; merge {node.git_branch} yourself with the git tool "
                f"and resolve {', '.join(conflicts)}"
            ),
        }

    async def _remove_worktree(self, repo: GitRepo, path: Path) -> None:
        if path.exists():
            await repo.run("worktree", "remove", "--force", str(path), check=False)
        await repo.run("worktree", "prune", check=False)

    async def _restore_worktree(self, repo: GitRepo, path: Path, git_branch: str) -> None:
        await repo.run("worktree", "prune", check=False)
        path.parent.mkdir(parents=True, exist_ok=True)
        result = await repo.run("worktree", "add", "-q", str(path), git_branch, check=False)
        if not result.ok:
            raise WorkspaceError(f"cannot restore the worktree of {git_branch}: {result.stderr.strip()}")

    # -- reading the tree -----------------------------------------------------------------------

    def status(self, only: str | None = None, include_metrics: bool = True) -> dict[str, Any]:
        nodes = [
            n
            for n in self.projection.nodes.values()
            if only is None or n.status == only or n.specialization == only
        ]
        out: dict[str, Any] = {
            "nodes": [self.node_summary(n) for n in nodes],
            "drawing": self.drawing(),
        }
        if include_metrics:
            every = list(self.projection.nodes.values())
            out["metrics"] = {
                "agents": len(every),
                "running": sum(1 for n in every if n.status == "running"),
                "completed": sum(1 for n in every if n.status == "completed"),
                "max_depth": max((n.depth for n in every), default=0),
                "cost_usd": format(self.projection.tree_cost(), "f"),
                "iterations": sum(n.iterations for n in every),
                "tool_calls": sum(n.tool_calls for n in every),
            }
        return out

    def node_summary(self, node: Node) -> dict[str, Any]:
        data = node.to_dict(self.projection.nodes)
        data["children"] = [self.projection.nodes[c].branch for c in node.children]
        return data

    def drawing(self) -> str:
        root = self.projection.root()
        if root is None:
            return ""
        lines: list[str] = []

        def walk(node: Node, prefix: str, last: bool, top: bool) -> None:
            role = node.specialization or "root"
            label = f"{node.branch} [{role}] {node.phase} {node.status} ${node.cost_usd:.4f}"
            if node.merge:
                label += f" merge={node.merge.get('result')}"
            lines.append(label if top else f"{prefix}{'└── ' if last else '├── '}{label}")
            child_prefix = "" if top else prefix + ("    " if last else "│   ")
            for i, child in enumerate(node.children):
                walk(self.projection.nodes[child], child_prefix, i == len(node.children) - 1, False)

        walk(root, "", True, True)
        return "\n".join(lines)

    def running_children(self, parent_id: str) -> list[Node]:
        node = self.projection.nodes[parent_id]
        return [
            self.projection.nodes[c]
            for c in node.children
            if self.projection.nodes[c].status in ("created", "running")
        ]

    def find_child(self, parent_id: str, ref: str) -> Node | None:
        for child_id in self.projection.nodes[parent_id].children:
            node = self.projection.nodes[child_id]
            if ref in (node.branch, node.session_id, node.git_branch) or child_id.startswith(ref):
                return node
        return None


def _expectation(context: str | None) -> str:
    base = "a summary of what you did, what is left, and anything the parent must know to integrate your work"
    return f"{base}. Context from your parent: {context}" if context else base


def _replace_deps(deps: AgentDeps, **changes: Any) -> AgentDeps:
    from dataclasses import replace

    return replace(deps, **changes)
