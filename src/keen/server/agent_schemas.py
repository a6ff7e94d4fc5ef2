"""The request and response bodies of `/api/v1/agents` (SPEC 8.5)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from keen.runner.server_runs import Execution
from keen.server.schemas import StrictModel

Phase = Literal["EXPLORE", "PLAN", "FOUND", "SUMMON", "COMPLETE"]
Gates = Literal["standard", "strict", "off"]
USD = r"^[0-9]{1,7}(\.[0-9]{1,6})?$"


class ExecuteOptions(StrictModel):
    max_iterations: int = Field(default=100, ge=1, le=10_000)
    budget: str = Field(
        default="50", pattern=USD, description="USD for the whole agent tree, a decimal string"
    )
    model: str | None = Field(default=None, min_length=3, max_length=500, description="PROVIDER:NAME")
    phase: Phase = "EXPLORE"
    max_depth: int = Field(default=10, ge=0, le=25)
    gates: Gates = "standard"
    web_search: bool = True


class ExecuteBody(StrictModel):
    vision: str = Field(min_length=1, max_length=100_000)
    options: ExecuteOptions = Field(default_factory=ExecuteOptions)
    repo_url: str | None = Field(
        default=None, min_length=1, max_length=2000, description="A repository to clone"
    )

    def execution(self) -> Execution:
        o = self.options
        return Execution(
            vision=self.vision,
            model=o.model,
            max_iterations=o.max_iterations,
            budget=o.budget,
            phase=o.phase,
            max_depth=o.max_depth,
            gates=o.gates,
            web_search=o.web_search,
            repo_url=self.repo_url,
        )


class Totals(BaseModel):
    iterations: int
    tool_calls: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cost_usd: str
    credits: str


class SessionOut(BaseModel):
    """A session (an agent of a tree, or its root) as the API shows it."""

    id: str
    short_id: str
    status: str
    phase: str | None
    vision: str
    branch: str
    git_branch: str | None
    parent: str | None
    root: str
    kind: str
    specialization: str | None
    depth: int
    model: str
    totals: Totals
    created_at: str
    finished_at: str | None
    summary: str | None
    error: str | None


class SessionPage(BaseModel):
    items: list[SessionOut]
    total: int
    limit: int
    offset: int


class EventOut(BaseModel):
    seq: int
    session_id: str
    root_session_id: str
    parent_session_id: str | None
    type: str
    ts: str
    data: dict[str, Any]


class EventPage(BaseModel):
    items: list[EventOut]
    after_seq: int = Field(description="Ask for the events after this seq next")


class TreeNode(BaseModel):
    session_id: str
    parent_session_id: str | None
    branch: str
    git_branch: str | None
    specialization: str | None
    depth: int
    phase: str
    status: str
    cost_usd: str
    iterations: int
    tokens: dict[str, int]
    tool_calls: int
    files: list[str]
    merge: dict[str, Any] | None
    summary: str | None
    duration_ms: int | None
    children: list[TreeNode]


class TreeOut(BaseModel):
    root: TreeNode | None
    last_seq: int


class FileOut(BaseModel):
    path: str
    type: Literal["file", "dir", "symlink"]
    size: int | None = None
    target: str | None = None


class FileList(BaseModel):
    items: list[FileOut]
    truncated: bool
