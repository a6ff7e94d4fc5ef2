"""Read models built from events: the agent tree with each node's progress.

The CLI view, `keen sessions show --tree` and the API draw the tree from this, so they all
agree with the log.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from keen.events import types as ev
from keen.events.types import Event


@dataclass
class Node:
    session_id: str
    parent_id: str | None
    branch: str
    specialization: str | None
    depth: int
    git_branch: str | None = None
    vision: str = ""
    phase: str = "EXPLORE"
    status: str = "created"
    cost_usd: Decimal = Decimal(0)
    iterations: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    tool: str | None = None  # the tool running now
    tool_calls: int = 0
    files: list[str] = field(default_factory=list)
    merge: dict[str, Any] | None = None
    summary: str | None = None
    children: list[str] = field(default_factory=list)
    started_at: Any = None
    finished_at: Any = None

    def to_dict(self, nodes: dict[str, Node]) -> dict[str, Any]:
        duration = None
        if self.started_at is not None and self.finished_at is not None:
            duration = int((self.finished_at - self.started_at).total_seconds() * 1000)
        return {
            "session_id": self.session_id,
            "parent_session_id": self.parent_id,
            "branch": self.branch,
            "git_branch": self.git_branch,
            "specialization": self.specialization,
            "depth": self.depth,
            "phase": self.phase,
            "status": self.status,
            "cost_usd": format(self.cost_usd, "f"),
            "iterations": self.iterations,
            "tokens": {"input": self.input_tokens, "output": self.output_tokens},
            "tool_calls": self.tool_calls,
            "files": self.files,
            "merge": self.merge,
            "summary": self.summary,
            "duration_ms": duration,
            "children": [nodes[c].to_dict(nodes) for c in self.children if c in nodes],
        }


class TreeProjection:
    def __init__(self) -> None:
        self.nodes: dict[str, Node] = {}
        self.root_id: str | None = None
        self.last_seq = 0

    def branches(self) -> dict[str, str]:
        """Each agent's tree name (`main`, `summon-A`, …) by its session id."""
        return {sid: node.branch for sid, node in self.nodes.items()}

    def apply(self, event: Event) -> None:
        self.last_seq = max(self.last_seq, event.seq)
        d = event.data
        if event.type == ev.SESSION_CREATED:
            node = Node(
                session_id=event.session_id,
                parent_id=event.parent_session_id,
                branch=d.get("branch", ev.ROOT_BRANCH),
                specialization=d.get("specialization"),
                depth=int(d.get("depth", 0)),
                git_branch=d.get("git_branch"),
                vision=d.get("vision", ""),
                phase=d.get("phase", "EXPLORE"),
            )
            self.nodes[node.session_id] = node
            if node.parent_id is None:
                self.root_id = node.session_id
            elif node.parent_id in self.nodes:
                self.nodes[node.parent_id].children.append(node.session_id)
            return
        found = self.nodes.get(event.session_id)
        if found is None:
            return
        node = found
        if event.type in (ev.SESSION_STARTED, ev.SESSION_RESUMED):
            node.status = "running"
            node.started_at = node.started_at or event.ts
        elif event.type == ev.PHASE_CHANGED:
            node.phase = d["to"]
        elif event.type == ev.MODEL_RESPONDED:
            node.iterations += 1
            node.cost_usd += Decimal(str(d.get("cost_usd", "0")))
            usage = d.get("usage", {})
            node.input_tokens += int(usage.get("input_tokens", 0)) + int(usage.get("cache_read_tokens", 0))
            node.output_tokens += int(usage.get("output_tokens", 0))
        elif event.type == ev.TOOL_STARTED:
            node.tool = d.get("name")
        elif event.type == ev.TOOL_FINISHED:
            node.tool = None
            node.tool_calls += 1
        elif event.type == ev.CHILD_FINISHED:
            child = self.nodes.get(d.get("child_session_id", ""))
            if child is not None:
                child.merge = d.get("merge")
        elif event.type == ev.SESSION_FINISHED:
            node.status = d["status"]
            node.summary = d.get("summary")
            node.tool = None
            node.finished_at = event.ts
            node.files = [
                *d.get("files_created", []),
                *d.get("files_modified", []),
                *d.get("files_deleted", []),
            ]

    def root(self) -> Node | None:
        return self.nodes.get(self.root_id) if self.root_id else None

    def tree_cost(self) -> Decimal:
        return sum((n.cost_usd for n in self.nodes.values()), Decimal(0))

    def to_dict(self) -> dict[str, Any] | None:
        root = self.root()
        return root.to_dict(self.nodes) if root else None

    @classmethod
    def from_events(cls, events: list[Event]) -> TreeProjection:
        projection = cls()
        for event in events:
            projection.apply(event)
        return projection
