"""Orchestration overhead per agent step: a 500-step scripted session with a cheap tool.

A step is one model call plus its tool calls. keen's own overhead is the step's wall time minus
the time inside the model call and inside the tool: building the request (and condensing), the
budget hold, storing every event durably in SQLite, the bus, stuck detection. Prints the figures
and writes them to bench/results/step_overhead.json.

    python bench/step_overhead.py [--steps 500]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import percentile, write_results


async def measure(steps: int, work: Path) -> dict[str, Any]:
    os.environ["KEEN_HOME"] = str(work / "home")
    from keen.config import get_settings
    from keen.llm.base import DeltaCallback, Request, Turn
    from keen.runner.local import LocalRunner, make_options
    from keen.tools.context import ToolContext
    from keen.tools.registry import ToolRegistry, ToolResult

    model_spans: list[tuple[float, float]] = []
    tool_time: list[float] = []

    class TimedModel:
        """Times the scripted model's calls (the stand-in for the provider's latency)."""

        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

        def for_agent(self, key: str) -> TimedModel:
            return TimedModel(self.inner.for_agent(key))

        async def complete(self, request: Request, on_delta: DeltaCallback | None = None) -> Turn:
            started = time.perf_counter()
            turn = await self.inner.complete(request, on_delta)
            model_spans.append((started, time.perf_counter()))
            tool_time.append(0.0)
            return turn

    class TimedTools(ToolRegistry):
        async def execute(self, name: str, raw_input: Any, ctx: ToolContext) -> ToolResult:
            started = time.perf_counter()
            result = await super().execute(name, raw_input, ctx)
            tool_time[-1] += time.perf_counter() - started
            return result

    class BenchRunner(LocalRunner):
        def _deps(self, options: Any, model: Any, short_id: str) -> Any:
            deps = super()._deps(options, TimedModel(model), short_id)
            deps.tools = TimedTools(deps.tools.get(n) for n in deps.tools.names)  # type: ignore[misc]
            return deps

    script = work / "script.json"
    turns = [
        {"tool_calls": [{"name": "continue_work", "input": {"next_action": f"step {i}"}}]}
        for i in range(steps - 1)
    ]
    turns.append({"tool_calls": [{"name": "report_complete", "input": {"summary": "benchmark done"}}]})
    script.write_text(json.dumps({"agents": {"main": turns}, "context_window": 10_000_000}))
    settings = get_settings()
    options = make_options(
        settings,
        vision="benchmark: many cheap steps",
        directory=work / "ws",
        model=f"scripted:{script}",
        max_iterations=steps + 1,
        budget="1000",
        phase="EXPLORE",
        max_depth=1,
        gates="off",
        web_search=False,
        allow_dirty=False,
    )
    async with BenchRunner(settings) as runner:
        spec = await runner.create(options)
        started = time.perf_counter()
        result = await runner.run(spec, options)
        wall = time.perf_counter() - started
        events = await runner.store.events(spec.root_session_id)
    assert result.status == "completed", result.summary

    totals, overheads = [], []
    for i in range(len(model_spans) - 1):
        span = model_spans[i + 1][0] - model_spans[i][0]
        model = model_spans[i][1] - model_spans[i][0]
        totals.append(span * 1000)
        overheads.append((span - model - tool_time[i]) * 1000)
    return {
        "steps": steps,
        "events_stored": len(events),
        "wall_seconds": round(wall, 3),
        "overhead_ms": {
            "median": round(statistics.median(overheads), 3),
            "p95": round(percentile(overheads, 0.95), 3),
            "mean": round(statistics.fmean(overheads), 3),
        },
        "total_ms_per_step": {
            "median": round(statistics.median(totals), 3),
            "p95": round(percentile(totals, 0.95), 3),
        },
        "tool_ms_per_step_median": round(statistics.median(tool_time) * 1000, 3),
        "storage": "SQLite (WAL, synchronous=NORMAL), every event committed before the next model call",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        figures = asyncio.run(measure(args.steps, Path(tmp)))
    path = write_results("step_overhead", figures)
    o, t = figures["overhead_ms"], figures["total_ms_per_step"]
    print(
        f"steps: {figures['steps']}  events stored: {figures['events_stored']}  wall: {figures['wall_seconds']} s"
    )
    print(
        f"keen overhead per step: median {o['median']} ms, p95 {o['p95']} ms (model and tool time excluded)"
    )
    print(f"total per step:         median {t['median']} ms, p95 {t['p95']} ms")
    print(f"written to {path}")


if __name__ == "__main__":
    main()
