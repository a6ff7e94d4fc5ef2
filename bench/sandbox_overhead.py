"""Cost of keen's sandbox: one `run_command "true"` sandboxed against the same command unsandboxed.

"unsandboxed" is what run_command did before the sandbox: `bash -c true` through `run_process`.
"bwrap" and "fallback" are the tool call as the agent makes it (through the registry, secrets
redacted), in bubblewrap and in the subreaper fallback used where bwrap cannot run. Runs are
interleaved so that load on the machine falls on every variant alike. Prints the figures and
writes them to bench/results/sandbox_overhead.json.

    python bench/sandbox_overhead.py [--runs 200]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from _common import add_record_flag, percentile, write_results


async def measure(runs: int, work: Path) -> dict[str, Any]:
    os.environ["KEEN_HOME"] = str(work / "home")
    from keen.proc import run_process
    from keen.secrets import scrubbed_env
    from keen.tools import shell
    from keen.tools.context import ToolContext
    from keen.tools.registry import ToolRegistry
    from keen.tools.sandbox import bwrap_problem, policy_from_settings, session_sandbox
    from keen.tools.workspace import Workspace

    class Agent:
        session_id = root_session_id = "bench"
        branch_name = "main"
        depth = 0

    workspace = work / "ws"
    workspace.mkdir()
    registry = ToolRegistry(shell.TOOLS)
    policy = policy_from_settings()

    def tool_call(kind: str) -> Callable[[], Awaitable[None]]:
        sandbox = session_sandbox(replace(policy, kind=kind, reason="benchmark"), f"bench-{kind}")

        async def run() -> None:
            ctx = ToolContext(Workspace(workspace), Agent(), sandbox=sandbox)  # type: ignore[arg-type]
            result = await registry.execute("run_command", {"command": "true"}, ctx)
            assert result.ok and result.output["exit_code"] == 0, result

        return run

    async def unsandboxed() -> None:
        result = await run_process(["bash", "-c", "true"], cwd=workspace, timeout=60, env=scrubbed_env())
        assert result.ok

    variants: dict[str, Callable[[], Awaitable[None]]] = {"unsandboxed": unsandboxed}
    problem = bwrap_problem(policy.bwrap)
    if problem is None:
        variants["bwrap"] = tool_call("bwrap")
    variants["fallback"] = tool_call("fallback")

    times: dict[str, list[float]] = {name: [] for name in variants}
    for run in variants.values():  # warm up: imports, the bwrap probe, page cache
        await run()
    for _ in range(runs):
        for name, run in variants.items():
            started = time.perf_counter()
            await run()
            times[name].append((time.perf_counter() - started) * 1000)

    def summary(values: list[float]) -> dict[str, float]:
        return {
            "median": round(statistics.median(values), 3),
            "p90": round(percentile(values, 0.90), 3),
            "mean": round(statistics.fmean(values), 3),
        }

    figures: dict[str, Any] = {
        "runs": runs,
        "command": "true",
        "ms": {n: summary(v) for n, v in times.items()},
    }
    base = figures["ms"]["unsandboxed"]["median"]
    figures["overhead_ms_median"] = {
        n: round(figures["ms"][n]["median"] - base, 3) for n in variants if n != "unsandboxed"
    }
    if problem is not None:
        figures["bwrap_unavailable"] = problem
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    add_record_flag(parser)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        figures = asyncio.run(measure(args.runs, Path(tmp)))
    path = write_results("sandbox_overhead", figures, record=args.record)
    print(f"run_command {figures['command']!r}, {figures['runs']} runs each (ms):")
    for name, ms in figures["ms"].items():
        extra = figures["overhead_ms_median"].get(name)
        more = f"  (+{extra} ms median over unsandboxed)" if extra is not None else ""
        print(f"  {name:<12} median {ms['median']:>8}  p90 {ms['p90']:>8}  mean {ms['mean']:>8}{more}")
    if "bwrap_unavailable" in figures:
        print(f"bwrap not measured: {figures['bwrap_unavailable']}")
    print(f"load average (1 min) at the end: {figures['load_average_1min']}")
    print(f"written to {path}")


if __name__ == "__main__":
    main()
