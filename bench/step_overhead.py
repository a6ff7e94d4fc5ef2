"""Orchestration overhead per agent step: a long session of cheap steps, scripted or over HTTP.

A step is one model call plus its tool calls. keen's own overhead is the step's wall time minus
the time inside the model and inside the tool: building the request (and condensing), the budget
hold, pricing, storing every event durably in SQLite, the bus, stuck detection.

- `--provider scripted` (default): the scripted model; its whole call is the model's time.
- `--provider anthropic`: the real `anthropic` SDK talking to a local server (a separate
  process, tests/fakes/provider_server.py) that streams a tool call for every request without
  parsing it. The model's time is the time spent inside the SDK (its copy and JSON encoding of
  the request, the HTTP exchange, parsing the stream, freeing its response); keen's adapter
  (building the request parameters, reading the events, pricing the reply) counts as keen's own.

The figures are given for the whole run and for two windows of 50 steps, around step 50 and
ending at the last step, so growth with the session's length shows; each in wall time, in CPU
time of the whole process, and in wall time less the main thread's waits for a CPU (the steadier
figures on a machine shared with other work). Runs
write bench/results/runs/ (not tracked); `--record` replaces the committed reference figures.

    python bench/step_overhead.py [--provider scripted|anthropic] [--steps 500] [--record]
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from _common import add_record_flag, percentile, run_session, write_results

WINDOW = 50
SERVER = Path(__file__).resolve().parents[1] / "tests" / "fakes" / "provider_server.py"


class Clock:
    """Time spent inside the provider during the current model call, on each of `now()`'s clocks."""

    def __init__(self) -> None:
        self.spent: Stamp = (0.0, 0.0, 0.0)

    def add(self, took: Stamp) -> None:
        self.spent = add(self.spent, took)


class Timed:
    """A proxy of an SDK object that adds the time spent in its calls (and in the awaitables and
    stream objects they return) to a clock."""

    def __init__(self, inner: Any, clock: Clock) -> None:
        self._inner = inner
        self._clock = clock

    def __getattr__(self, name: str) -> Any:
        if name == "_inner":
            raise AttributeError(name)  # after __aexit__
        value = getattr(self._inner, name)
        if not callable(value):
            return value
        if inspect.iscoroutinefunction(value):

            async def timed_async(*args: Any, **kwargs: Any) -> Any:
                with self._timing():
                    return self._wrap(await value(*args, **kwargs))

            return timed_async

        def timed(*args: Any, **kwargs: Any) -> Any:
            with self._timing():
                return self._wrap(value(*args, **kwargs))

        return timed

    @contextmanager
    def _timing(self) -> Iterator[None]:
        started = now()
        try:
            yield
        finally:
            self._clock.add(since(started))

    def _wrap(self, value: Any) -> Any:
        if hasattr(value, "__anext__") or hasattr(value, "__aenter__") or inspect.isawaitable(value):
            return Timed(value, self._clock)
        return value

    def __await__(self) -> Any:
        with self._timing():
            result = yield from self._inner.__await__()
        return self._wrap(result)

    async def __aenter__(self) -> Any:
        with self._timing():
            entered = await self._inner.__aenter__()
        return self if entered is self._inner else self._wrap(entered)

    async def __aexit__(self, *exc: Any) -> Any:
        with self._timing():
            try:
                return await self._inner.__aexit__(*exc)
            finally:
                # Freeing the SDK's response (which holds its own deep copy of the request) is
                # the SDK's work too: let it happen here rather than when keen drops the proxy.
                del self._inner

    def __aiter__(self) -> Timed:
        return self

    async def __anext__(self) -> Any:
        with self._timing():
            return await self._inner.__anext__()


@contextmanager
def provider_server(steps: int) -> Iterator[str]:
    """The local Anthropic stand-in, in its own process so that it takes no time from keen's."""
    server = subprocess.Popen(
        [sys.executable, str(SERVER), "--steps", str(steps)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        yield server.stdout.readline().strip()
    finally:
        server.terminate()
        server.wait(timeout=10)


def script_model(work: Path, steps: int) -> str:
    turns = [
        {"tool_calls": [{"name": "continue_work", "input": {"next_action": f"step {i + 1}"}}]}
        for i in range(steps - 1)
    ]
    turns.append({"tool_calls": [{"name": "report_complete", "input": {"summary": "benchmark done"}}]})
    script = work / "script.json"
    script.write_text(json.dumps({"agents": {"main": turns}, "context_window": 10_000_000}))
    return f"scripted:{script}"


async def measure(provider: str, steps: int, work: Path, url: str | None) -> dict[str, Any]:
    os.environ["KEEN_HOME"] = str(work / "home")
    if url is not None:
        os.environ["ANTHROPIC_BASE_URL"] = url
        os.environ["ANTHROPIC_API_KEY"] = "sk-bench"
    from keen.config import DEFAULT_MODEL
    from keen.llm.base import DeltaCallback, Request, Turn
    from keen.runner import local
    from keen.tools.context import ToolContext
    from keen.tools.registry import ToolRegistry, ToolResult

    calls: list[tuple[Stamp, Stamp]] = []  # per model call: its start, and the time inside the provider
    tool_time: list[Stamp] = []
    clock = Clock()

    class TimedModel:
        """Times each call; the provider's share is the whole call (scripted) or the SDK's."""

        def __init__(self, inner: Any) -> None:
            self.inner = inner
            if provider != "scripted":
                inner._client.messages = Timed(inner._client.messages, clock)

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

        def for_agent(self, key: str) -> Any:
            inner = self.inner.for_agent(key)
            return self if inner is self.inner else TimedModel(inner)

        async def complete(self, request: Request, on_delta: DeltaCallback | None = None) -> Turn:
            started = now()
            clock.spent = (0.0, 0.0, 0.0)
            turn = await self.inner.complete(request, on_delta)
            calls.append((started, since(started) if provider == "scripted" else clock.spent))
            tool_time.append((0.0, 0.0, 0.0))
            return turn

    class TimedTools(ToolRegistry):
        async def execute(self, name: str, raw_input: Any, ctx: ToolContext) -> ToolResult:
            started = now()
            result = await super().execute(name, raw_input, ctx)
            tool_time[-1] = add(tool_time[-1], since(started))
            return result

    untimed_deps = local.LocalRunner._deps

    def timed_deps(self: Any, options: Any, model: Any, short_id: str) -> Any:
        deps = untimed_deps(self, options, TimedModel(model), short_id)
        deps.tools = TimedTools(deps.tools.get(n) for n in deps.tools.names)
        return deps

    local.LocalRunner._deps = timed_deps  # type: ignore[method-assign]

    run = await run_session(
        "benchmark: many cheap steps",
        work / "ws",
        script_model(work, steps) if provider == "scripted" else DEFAULT_MODEL,
        max_iterations=steps + 1,
        budget="100000",
        max_depth=1,
    )
    events, wall = run.events, run.wall_seconds

    figures: dict[str, Any] = {
        "provider": provider,
        "steps": steps,
        "events_stored": len(events),
        "wall_seconds": round(wall, 3),
    }
    for k, suffix in enumerate(CLOCKS):
        totals, overheads, inside = [], [], []
        for i in range(len(calls) - 1):
            span = calls[i + 1][0][k] - calls[i][0][k]
            totals.append(span * 1000)
            inside.append(calls[i][1][k] * 1000)
            overheads.append((span - calls[i][1][k] - tool_time[i][k]) * 1000)
        early = _window(overheads, max(0, min(WINDOW, len(overheads)) - WINDOW // 2))
        late = _window(overheads, max(0, len(overheads) - WINDOW))
        figures[f"overhead_ms{suffix}"] = _summary(overheads)
        figures[f"overhead_ms{suffix}_window_step_{WINDOW}"] = early
        figures[f"overhead_ms{suffix}_window_step_{steps}"] = late
        figures[f"growth{suffix}_late_over_early_median"] = round(late["median"] / early["median"], 2)
        figures[f"total_ms{suffix}_per_step"] = _summary(totals)
        figures[f"provider_ms{suffix}_per_step_median"] = round(statistics.median(inside), 3)
        figures[f"tool_ms{suffix}_per_step_median"] = round(
            statistics.median(t[k] for t in tool_time) * 1000, 3
        )
    figures["storage"] = "SQLite (WAL, synchronous=NORMAL), every event committed before the next model call"
    return figures


# Wall time is what a person waits. CPU time (all of keen's threads) is what keen itself does.
# On a machine shared with other work the wall time also holds the waits of keen's main thread
# for a CPU (from the kernel's schedstat); wall time less those waits is the third clock.
Stamp = tuple[float, float, float]
CLOCKS = {"": "wall", "_cpu": "CPU", "_net": "wall less waits for a CPU"}
_SCHEDSTAT = (
    os.open("/proc/thread-self/schedstat", os.O_RDONLY) if os.path.exists("/proc/thread-self") else None
)


def now() -> Stamp:
    wall = time.perf_counter()
    waited = int(os.pread(_SCHEDSTAT, 100, 0).split()[1]) / 1e9 if _SCHEDSTAT is not None else 0.0
    return wall, time.process_time(), wall - waited


def since(start: Stamp) -> Stamp:
    end = now()
    return end[0] - start[0], end[1] - start[1], end[2] - start[2]


def add(a: Stamp, b: Stamp) -> Stamp:
    return a[0] + b[0], a[1] + b[1], a[2] + b[2]


def _window(values: list[float], start: int) -> dict[str, Any]:
    part = values[start : start + WINDOW]
    return {"steps": f"{start + 1}-{start + len(part)}", **_summary(part)}


def _summary(values: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 3),
        "p95": round(percentile(values, 0.95), 3),
        "mean": round(statistics.fmean(values), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--provider", choices=("scripted", "anthropic"), default="scripted")
    parser.add_argument("--steps", type=int, default=500)
    add_record_flag(parser)
    args = parser.parse_args()
    if args.steps < 2:
        parser.error("--steps must be at least 2")
    with tempfile.TemporaryDirectory() as tmp:
        if args.provider == "scripted":
            figures = asyncio.run(measure(args.provider, args.steps, Path(tmp), None))
        else:
            with provider_server(args.steps) as url:
                figures = asyncio.run(measure(args.provider, args.steps, Path(tmp), url))
    name = "step_overhead" if args.provider == "scripted" else f"step_overhead_{args.provider}"
    path = write_results(name, figures, record=args.record)
    _print(figures)
    print(f"written to {path}")


def _print(figures: dict[str, Any]) -> None:
    show: Callable[[dict[str, Any]], str] = lambda o: f"median {o['median']} ms, p95 {o['p95']} ms"  # noqa: E731
    print(
        f"{figures['provider']}: {figures['steps']} steps, {figures['events_stored']} events stored,"
        f" wall {figures['wall_seconds']} s"
    )
    for suffix, label in CLOCKS.items():
        print(
            f"keen overhead per step ({label}): {show(figures[f'overhead_ms{suffix}'])} (model and tool excluded)"
        )
        for key, value in figures.items():
            if key.startswith(f"overhead_ms{suffix}_window_"):
                print(f"  steps {value['steps']:>11}: {show(value)}")
        growth = figures[f"growth{suffix}_late_over_early_median"]
        print(f"  growth (last window / step-{WINDOW} window, medians): {growth}")
        print(f"total per step ({label}): {show(figures[f'total_ms{suffix}_per_step'])}")


if __name__ == "__main__":
    main()
