"""The agent tree: specialists summoned on their own git branches and merged back in order.

One place for branch naming (`child_branch_name`, `git_branch_name`). A child gets its own git
worktree on its own branch from the parent's HEAD (the parent's pending work is committed as a
checkpoint first), runs to its end with the budget and iterations its parent has left, and, when
it completed, is merged `--no-ff` into the parent's branch. A conflict aborts the merge and the
parent is told which files conflict; the branch stays for a merge by hand. The worktree of a
child that has ended is reused for the next one (`worktrees.park`), and what is parked is
removed at the session's end (`Tree.close`). Summoning is idempotent per tool call, which is
how a resumed session continues an interrupted child.
"""

from __future__ import annotations

import asyncio
import contextlib
import string
from collections.abc import Coroutine
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from keen.agent import worktrees
from keen.agent.spec import ROOT_BRANCH, AgentDeps, AgentSpec
from keen.events import types as ev
from keen.events.projections import Node, TreeProjection
from keen.events.types import Event
from keen.tools.context import SummonRequest
from keen.tools.registry import ToolError

if TYPE_CHECKING:
    from keen.agent.loop import Agent
    from keen.gitrepo import GitRepo

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
class _Child:
    """One child of a reply's summons: to run (new or resumed), or already finished."""

    session_id: str
    branch: str  # its tree name (summon-A)
    path: Path
    spec: AgentSpec | None = None
    deps: AgentDeps | None = None
    resume: bool = False
    finished: dict[str, Any] | None = None  # its session.finished data, once it has ended


async def _all_or_none(work: list[Coroutine[Any, Any, None]]) -> None:
    """Run `work` at the same time; if one fails or the caller is cancelled, the others are
    cancelled and awaited (each records its own end) before the error goes on."""
    tasks = [asyncio.ensure_future(w) for w in work]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            # A cancelled gather has cancelled its tasks already: a second cancel would land
            # inside a child's recording of its own end and leave it `running`.
            if not task.done() and not task.cancelling():
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


class ChildSessions(Protocol):
    """Where a child's `session.created` payload and its spec are made (the session service)."""

    def child_created(
        self,
        parent: AgentSpec,
        request: SummonRequest,
        *,
        session_id: str,
        branch_name: str,
        git_branch: str,
        worktree: Path,
        start_commit: str,
        budget: Decimal,
        max_iterations: int,
        model: str,
    ) -> dict[str, Any]: ...

    def spec(self, session_id: str, parent: AgentSpec | None, created: dict[str, Any]) -> AgentSpec: ...

    def new_id(self) -> str: ...


class Tree:
    """The live tree of one root session, shared by all its agents. Its state is fed from the
    events as they are recorded (`observe`, through `events.sink.ObservedSink`)."""

    def __init__(self, *, root_short_id: str, worktrees_dir: Path, sessions: ChildSessions) -> None:
        self.root_short_id = root_short_id
        self.worktrees_dir = worktrees_dir
        self.snapshots = worktrees.volatile(worktrees_dir)  # on disk, a worktree needs none
        self.git_dirs: dict[Path, Path] = {}  # worktree → its git directory, for snapshots
        self.spares: list[tuple[Path, Path]] = []  # parked worktrees (and git dirs) to reuse
        self._parking: set[asyncio.Future[None]] = set()
        self.sessions = sessions
        self.projection = TreeProjection()
        self.spawned: dict[str, dict[str, Any]] = {}  # call id → child.spawned data
        self.finished: dict[str, dict[str, Any]] = {}  # child session id → session.finished data
        self.reported: set[str] = set()  # child session ids with child.finished
        self.created: dict[str, Event] = {}  # child session id → its session.created
        self.events: list[Event] = []  # stored events of a resumed session

    def observe(self, event: Event) -> None:
        """Keep the projection and the spawn records current with a recorded event."""
        self.projection.apply(event)
        if event.type == ev.SESSION_CREATED and event.parent_session_id is not None:
            self.created[event.session_id] = event
        elif event.type == ev.CHILD_SPAWNED and event.data.get("call_id"):
            self.spawned[event.data["call_id"]] = {**event.data, "parent_session_id": event.session_id}
        elif event.type == ev.SESSION_FINISHED:
            self.finished[event.session_id] = event.data
        elif event.type == ev.CHILD_FINISHED:
            self.reported.add(event.data["child_session_id"])

    def load(self, events: list[Event]) -> None:
        """Rebuild from a stored log before resuming."""
        self.events = events
        for event in events:
            self.observe(event)

    @staticmethod
    def focus(specialization: str | None) -> str:
        return SPECIALIZATIONS.get(specialization or "general", SPECIALIZATIONS["general"])

    def git_branch_for(self, branch_name: str) -> str:
        return git_branch_name(self.root_short_id, branch_name)

    # -- summoning -----------------------------------------------------------------------------

    async def summon(self, parent: Agent, request: SummonRequest) -> dict[str, Any]:
        (result,) = await self.summon_many(parent, [request])
        if isinstance(result, ToolError):
            raise result
        return result

    async def summon_many(
        self, parent: Agent, requests: list[SummonRequest]
    ) -> list[dict[str, Any] | ToolError]:
        """The children of one reply: spawned one by one in call order from one checkpoint, run
        at the same time (at most the parent's `max_parallel`), and merged in call order once
        all have finished. Idempotent per call: after a resume, a child that had started is
        continued and one that had finished is only merged and reported."""
        slots: list[_Child | ToolError] = []
        try:
            for request in requests:
                try:
                    slots.append(await self._prepare(parent, request))
                except ToolError as exc:
                    slots.append(exc)
            limit = asyncio.Semaphore(max(1, parent.spec.max_parallel))
            children = [slot for slot in slots if isinstance(slot, _Child)]
            await _all_or_none([self._run_child(parent, child, limit) for child in children])
            results: list[dict[str, Any] | ToolError] = []
            for slot in slots:
                if isinstance(slot, ToolError):
                    results.append(slot)
                else:
                    assert slot.finished is not None
                    results.append(await self._merge_and_report(parent, slot.session_id, slot.finished))
        except BaseException:  # cancelled or failed: nothing is reused, and a cancel ends quickly
            children = [slot for slot in slots if isinstance(slot, _Child)]
            for child in children:
                self.git_dirs.pop(child.path, None)
            await worktrees.remove_all(
                parent.repo,
                [c.path for c in children],
                [worktrees.snapshot_ref(self.root_short_id, c.branch) for c in children],
            )
            raise
        for slot in slots:
            if isinstance(slot, _Child):
                self._park(parent.repo, slot)
        return results

    def _park(self, repo: GitRepo, child: _Child) -> None:
        """Park an ended child's worktree for the next child, or remove it, in the background:
        nothing waits for it but the next summon (`_spare`) and the session's end (`close`)."""
        git_dir = self.git_dirs.pop(child.path, None)
        ref = worktrees.snapshot_ref(self.root_short_id, child.branch)

        async def park() -> None:
            parked, _ = await asyncio.gather(
                worktrees.park(child.path, git_dir), repo.run("update-ref", "-d", ref, check=False)
            )
            if parked and git_dir is not None:
                self.spares.append((child.path, git_dir))
            else:
                await worktrees.remove(repo, child.path)

        task = asyncio.ensure_future(park())
        self._parking.add(task)
        task.add_done_callback(self._parking.discard)

    async def _spare(self) -> tuple[Path, Path] | None:
        """A parked worktree, once those being parked are."""
        if self._parking:
            await asyncio.wait(list(self._parking))
        return self.spares.pop() if self.spares else None

    async def close(self, repo: GitRepo) -> None:
        """At the end of the session: remove the parked worktrees, anything a killed keen left
        in the tree's worktree folder, and the snapshot refs."""
        if self._parking:
            await asyncio.wait(list(self._parking))
        self.spares.clear()
        folder = self.worktrees_dir / self.root_short_id
        left = sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
        if not left and not self.spawned:
            return  # no child ever: no git at all
        prefix = worktrees.snapshot_refs(self.root_short_id)
        listed = await repo.run("for-each-ref", "--format=%(refname)", prefix, check=False)
        await worktrees.remove_all(repo, left, listed.stdout.split())
        with contextlib.suppress(OSError):
            folder.rmdir()

    async def _prepare(self, parent: Agent, request: SummonRequest) -> _Child:
        """Spawn the child of one call (or find it again after a resume)."""
        record = self.spawned.get(request.call_id)
        if record is not None:
            child_id, path = record["child_session_id"], Path(record["worktree"])
            if child_id in self.finished:
                return _Child(child_id, record["branch"], path, finished=self.finished[child_id])
            if not path.is_dir():
                ref = worktrees.snapshot_ref(self.root_short_id, str(record["branch"]))
                self.git_dirs[path] = await worktrees.restore(parent.repo, path, record["git_branch"], ref)
            spec, deps = self._resumed_child(parent, child_id, record, path)
            return _Child(child_id, record["branch"], path, spec, deps, resume=True)
        self._check_limits(parent, request)
        repo = parent.repo
        checkpoint = await parent.commit_checkpoint(
            f"checkpoint before summoning a {request.specialization} agent"
        )
        # A crash after the child's session.created but before child.spawned left a child that
        # never ran: this call takes it over (same id, same name) instead of naming a new one.
        orphan = self._unspawned_child(parent.session_id, request.call_id)
        if orphan is not None:
            child_id, name = orphan.session_id, str(orphan.data["branch"])
        else:
            child_id = self.sessions.new_id()
            name = child_branch_name(parent.spec.branch_name, self._spawn_count(parent))
        git_branch = git_branch_name(self.root_short_id, name)
        path = self.worktrees_dir / self.root_short_id / name
        start = checkpoint or await repo.head()
        self.git_dirs[path] = await worktrees.create(repo, path, git_branch, start, await self._spare())
        deps = parent.deps
        meter = deps.meter.child(request.budget)
        iterations = deps.iterations.child(min(request.max_iterations, deps.iterations.remaining() - 1))
        created = self.sessions.child_created(
            parent.spec,
            request,
            session_id=child_id,
            branch_name=name,
            git_branch=git_branch,
            worktree=path,
            start_commit=start,
            budget=meter.budget.limit,
            max_iterations=iterations.limit,
            model=deps.model.name,
        )
        spec = self.sessions.spec(child_id, parent.spec, created)
        if orphan is None:
            await deps.sink.emit(spec.ref, ev.SESSION_CREATED, created)
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
                "budget_usd": meter.budget.limit,
                "max_iterations": iterations.limit,
                "worktree": str(path),
            },
        )
        return _Child(child_id, name, path, spec, replace(deps, meter=meter, iterations=iterations))

    async def _run_child(self, parent: Agent, child: _Child, limit: asyncio.Semaphore) -> None:
        if child.finished is not None:
            return
        from keen.agent.loop import Agent

        assert child.spec is not None and child.deps is not None
        async with limit:
            try:
                result = await Agent(child.spec, child.deps).run(
                    resume_events=self.events if child.resume else None
                )
            except BaseException:
                # Cancelled: the child recorded itself as cancelled; the parent hears it too
                # (unless the process is stopping: then both are resumed later).
                if child.session_id not in self.reported and not child.deps.stopping():
                    await parent.emit(
                        ev.CHILD_FINISHED,
                        {
                            "child_session_id": child.session_id,
                            "status": "cancelled",
                            "summary": "cancelled",
                            "merge": None,
                        },
                    )
                raise
        child.finished = result.finished_data()

    def _spawn_count(self, parent: Agent) -> int:
        return sum(1 for r in self.spawned.values() if r["parent_session_id"] == parent.session_id)

    def _unspawned_child(self, parent_id: str, call_id: str) -> Event | None:
        spawned = {r["child_session_id"] for r in self.spawned.values()}
        for child_id, created in self.created.items():
            options = created.data.get("options") or {}
            if created.parent_session_id == parent_id and options.get("call_id") == call_id:
                return None if child_id in spawned else created
        return None

    def _check_limits(self, parent: Agent, request: SummonRequest) -> None:
        if request.specialization not in SPECIALIZATIONS:
            raise ToolError(
                f"unknown specialization {request.specialization!r}; use one of: {', '.join(SPECIALIZATIONS)}"
            )
        depth = parent.spec.depth + 1
        if depth > parent.spec.max_depth:
            raise ToolError(
                f"cannot summon: a child would be at depth {depth} but the maximum depth is "
                f"{parent.spec.max_depth} (--max-depth); do this work yourself"
            )
        if self._spawn_count(parent) >= MAX_CHILDREN:
            raise ToolError(f"cannot summon: {parent.spec.branch_name} already has {MAX_CHILDREN} children")
        if parent.deps.iterations.remaining() <= 1:
            raise ToolError("cannot summon: no iterations are left for a child")

    def _resumed_child(
        self, parent: Agent, child_id: str, record: dict[str, Any], path: Path
    ) -> tuple[AgentSpec, AgentDeps]:
        created = self.created[child_id].data
        deps = parent.deps
        subtree = self._subtree(child_id)
        meter = deps.meter.child(Decimal(str(record["budget_usd"])))
        meter.budget.limit = Decimal(str(record["budget_usd"]))
        meter.budget.spent = sum((n.cost_usd for n in subtree), Decimal(0))
        iterations = deps.iterations.child(int(record["max_iterations"]))
        iterations.limit = int(record["max_iterations"])
        iterations.used = sum(n.iterations for n in subtree)
        spec = self.sessions.spec(child_id, parent.spec, {**created, "workspace": str(path)})
        return spec, replace(deps, meter=meter, iterations=iterations)

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
        listing = parent.repo.run("log", "--format=%H", f"{start}..{git_branch}", check=False)
        merge = node.merge
        if child_id in self.reported or finished["status"] != "completed":
            log = await listing
        else:  # the child's commits are listed while it merges (the merge leaves its branch as it is)
            log, merge = await asyncio.gather(listing, self._merge(parent, node, finished))
        commits = log.stdout.split() if log.ok else []
        if child_id not in self.reported:
            if finished["status"] != "completed":
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
        headline = " ".join(str(finished.get("summary") or "").split())[:60]
        message = f"keen: merge {node.branch} ({node.specialization}): {headline}"
        result = await repo.run(
            "merge", "--no-ff", "--no-edit", "-m", message, node.git_branch or "", check=False
        )
        if result.ok:
            commit, into = await repo.head_and_branch()
            await parent.emit(
                ev.GIT_MERGED, {"from": node.git_branch, "into": into, "commit": commit, "conflicts": []}
            )
            return {"result": "merged", "commit": commit}
        conflicts = (await repo.run("diff", "--name-only", "--diff-filter=U", check=False)).stdout.split()
        await repo.run("merge", "--abort", check=False)
        into = await repo.current_branch()
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

    async def snapshot(self, agent: Agent) -> None:
        """Keep what a child has changed so far safe from a machine restart (its worktree may
        live on a memory file system)."""
        if self.snapshots and agent.spec.parent_session_id is not None:
            ref = worktrees.snapshot_ref(self.root_short_id, agent.spec.branch_name)
            await worktrees.snapshot(agent.repo, ref, self.git_dirs.get(agent.repo.path))

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
