"""Rich renderables for sessions: the live view, event lines, the tree and the final report."""

from __future__ import annotations

import json
from collections import deque
from decimal import Decimal
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from keen.cli.common import print_lines
from keen.events import types as ev
from keen.events.bus import Item, LiveDelta
from keen.events.projections import Node, TreeProjection
from keen.events.types import Event
from keen.text import clip

STATUS_STYLE = {
    "completed": "green",
    "running": "cyan",
    "created": "dim",
    "cancelled": "yellow",
    "max_iterations": "yellow",
    "budget_exhausted": "yellow",
    "stuck": "red",
    "failed": "red",
    "interrupted": "yellow",
}


def money(value: Decimal | str | None) -> str:
    return f"${Decimal(str(value or 0)):.4f}"


def _short(value: Any, limit: int = 90) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = " ".join(text.split())
    return clip(text, limit)


def event_line(event: Event, branches: dict[str, str] | None = None) -> Text:
    """One readable line for an event, prefixed with its seq and the agent's branch."""
    d = event.data
    who = (branches or {}).get(event.session_id, event.session_id[:8])
    line = Text(f"{event.seq:>5} ", style="dim", no_wrap=True, overflow="ellipsis")
    line.append(f"{who:<12} ", style="magenta")
    line.append(f"{event.type:<20} ", style="bold")
    line.append(_detail(event.type, d))
    return line


def _detail(type_: str, d: dict[str, Any]) -> str:
    if type_ == ev.SESSION_CREATED:
        return _short(d.get("vision", ""))
    if type_ == ev.MODEL_RETRYING:
        return retrying_text(d)
    if type_ in (ev.SESSION_STARTED, ev.SESSION_RESUMED):
        return f"pid {d.get('pid')}"
    if type_ == ev.PHASE_CHANGED:
        return f"{d.get('from')} → {d.get('to')}: {_short(d.get('summary', ''), 70)}"
    if type_ == ev.MODEL_RESPONDED:
        calls = ", ".join(c["name"] for c in d.get("tool_calls", [])) or "no tool call"
        return f"#{d.get('iteration')} {money(d.get('cost_usd'))} → {calls}"
    if type_ == ev.TOOL_STARTED:
        return f"{d.get('name')} {_short(d.get('input', {}), 70)}"
    if type_ == ev.TOOL_FINISHED:
        state = "ok" if d.get("ok") else f"error: {_short(d.get('error') or '', 60)}"
        return f"{d.get('name')} {state} ({d.get('duration_ms', 0)} ms)"
    if type_ == ev.SESSION_FINISHED:
        return f"{d.get('status')}: {_short(d.get('summary') or '', 70)}"
    if type_ == ev.CHILD_SPAWNED:
        return f"{d.get('branch')} ({d.get('specialization')}): {_short(d.get('vision', ''), 60)}"
    if type_ == ev.CHILD_FINISHED:
        return f"{d.get('status')}, merge {(d.get('merge') or {}).get('result', '-')}"
    if type_ == ev.GIT_COMMITTED:
        headline = str(d.get("message") or "").splitlines()[0] if d.get("message") else ""
        return f"{str(d.get('commit') or '')[:10]} {_short(headline, 60)} ({len(d.get('files', []))} files)"
    if type_ == ev.GIT_MERGED:
        conflicts = d.get("conflicts") or []
        outcome = f"conflicts: {', '.join(conflicts)}" if conflicts else str(d.get("commit") or "")[:10]
        return f"{d.get('from')} → {d.get('into')} {outcome}"
    if type_ == ev.GATE_EVALUATED:
        verdict = "passed" if d.get("passed") else "failed: " + "; ".join(d.get("reasons", []))
        return _short(f"{d.get('phase')} gate ({d.get('mode')}) {verdict}", 90)
    if type_ == ev.AGENT_NUDGED:
        return str(d.get("reason"))
    if type_ == ev.COMPLETION_BLOCKED:
        return _short("; ".join(d.get("reasons", [])), 80)
    if type_ == ev.VALIDATION_FINISHED:
        return f"{d.get('overall')} (score {d.get('score')})"
    return _short(d, 80)


def retrying_text(d: dict[str, Any]) -> str:
    """A `model.retrying` event: `model unreachable at …, retrying in 2.6 s, attempt 3/6`."""
    return (
        f"{d.get('problem')}, retrying in {float(d.get('delay_s') or 0):.1f} s, "
        f"attempt {d.get('next_attempt')}/{d.get('max_attempts')}"
    )


def tree_renderable(projection: TreeProjection) -> RenderableType:
    root = projection.root()
    if root is None:
        return Text("(no session)")
    tree = Tree(_node_label(root))
    _add_children(tree, root, projection)
    return tree


def _add_children(branch: Tree, node: Node, projection: TreeProjection) -> None:
    for child_id in node.children:
        child = projection.nodes[child_id]
        _add_children(branch.add(_node_label(child)), child, projection)


def _node_label(node: Node) -> Text:
    label = Text(node.branch, style="bold")
    if node.specialization:
        label.append(f" [{node.specialization}]", style="blue")
    label.append(f"  {node.phase}", style="cyan")
    label.append(f"  {node.status}", style=STATUS_STYLE.get(node.status, ""))
    label.append(f"  {money(node.cost_usd)}  it {node.iterations}", style="dim")
    if node.tool:
        label.append(f"  ▶ {node.tool}", style="yellow")
    if node.merge:
        label.append(
            f"  merge: {node.merge.get('result')}",
            style="green" if node.merge.get("result") == "merged" else "red",
        )
    return label


class SessionView:
    """Follows a session tree's events: a live panel on a terminal, plain lines otherwise."""

    def __init__(
        self,
        console: Console,
        *,
        model: str,
        budget: Decimal,
        max_iterations: int,
        live: bool,
        verbose: bool = False,
        title: str = "keen breathe",
    ) -> None:
        self.console = console
        self.title = title
        self.model = model
        self.budget = budget
        self.max_iterations = max_iterations
        self.verbose = verbose
        self.tree = TreeProjection()
        self.lines: deque[Text] = deque(maxlen=12)
        self.stream = ""
        self.scripted = model.startswith("scripted:")
        self._live = Live(console=console, refresh_per_second=8, transient=False) if live else None

    def __enter__(self) -> SessionView:
        if self._live is not None:
            self._live.update(self.render())
            self._live.start()
        else:
            scripted = " (scripted model: replies come from a script)" if self.scripted else ""
            self.console.print(Text(f"{self.title} · {self.model}{scripted}", "dim"), soft_wrap=True)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.update(self.render(final=True))
            self._live.stop()

    def handle(self, item: Item) -> None:
        if isinstance(item, LiveDelta):
            if item.kind == "text":
                self.stream = (self.stream + item.text)[-400:]
            return
        self.tree.apply(item)
        branches = self.tree.branches()
        lines = [event_line(item, branches)]
        if item.type == ev.MODEL_RESPONDED:
            self.stream = ""
            if self.verbose and item.data.get("text"):
                lines.append(Text("      " + _short(item.data["text"], 400), style="italic"))
        if item.type == ev.SESSION_CREATED and item.data.get("workspace_note"):
            lines.append(Text(f"      note: {item.data['workspace_note']}", style="yellow"))
        if self._live is None:
            print_lines(self.console, lines)
        else:
            self.lines.extend(lines)
            self._live.update(self.render())

    def render(self, final: bool = False) -> RenderableType:
        spent = self.tree.tree_cost()
        root = self.tree.root()
        head = Table.grid(padding=(0, 2))
        head.add_row(
            Text("keen", style="bold magenta"),
            Text(self.model + ("  [scripted]" if self.scripted else ""), style="dim"),
        )
        head.add_row(
            Text("phase", style="dim"),
            Text(root.phase if root else "-", style="cyan"),
        )
        total_iterations = sum(n.iterations for n in self.tree.nodes.values())
        head.add_row(Text("iteration", style="dim"), Text(f"{total_iterations} / {self.max_iterations}"))
        head.add_row(Text("cost", style="dim"), Text(f"{money(spent)} of {money(self.budget)}"))
        running = [f"{n.branch}: {n.tool}" for n in self.tree.nodes.values() if n.tool]
        head.add_row(Text("running", style="dim"), Text(", ".join(running) or "-", style="yellow"))
        parts: list[RenderableType] = [head, tree_renderable(self.tree), Text("")]
        parts.extend(self.lines)
        if self.stream and not final:
            parts.append(Text("  " + " ".join(self.stream.split())[-200:], style="italic dim"))
        return Panel(Group(*parts), title=self.title, border_style="magenta")


def report_renderable(
    data: dict[str, Any], session_id: str, projection: TreeProjection | None = None
) -> RenderableType:
    """The final report of a session from its `session.finished` data."""
    status = data.get("status", "?")
    table = Table.grid(padding=(0, 2))
    table.add_row(Text("status", style="dim"), Text(status, style=STATUS_STYLE.get(status, "bold")))
    table.add_row(Text("session", style="dim"), Text(session_id))
    table.add_row(Text("summary", style="dim"), Text(data.get("summary") or "-"))
    if data.get("error") and data.get("error") != data.get("summary"):
        table.add_row(Text("error", style="dim"), Text(str(data["error"]), style="red"))
    for key, label in (
        ("files_created", "created"),
        ("files_modified", "modified"),
        ("files_deleted", "deleted"),
    ):
        files = data.get(key) or []
        table.add_row(Text(label, style="dim"), Text(", ".join(files) if files else "-"))
    table.add_row(Text("iterations", style="dim"), Text(str(data.get("iterations", 0))))
    table.add_row(Text("cost", style="dim"), Text(money(data.get("cost_usd"))))
    table.add_row(Text("duration", style="dim"), Text(f"{int(data.get('duration_ms', 0)) / 1000:.1f} s"))
    parts: list[RenderableType] = [table]
    if projection is not None and projection.root() is not None and projection.root().children:  # type: ignore[union-attr]
        parts += [Text(""), Text("agents", style="bold"), tree_renderable(projection)]
    return Panel(
        Group(*parts), title="keen report", border_style=STATUS_STYLE.get(status, "white"), expand=False
    )
