"""Parallel specialists against one at a time: a scripted root summons three children in one
reply, and each child's tool takes 2 s (a `run_command` sleep). The same run is made with
`--max-parallel 3` and with `--max-parallel 1`; prints both wall times, their ratio (the goal is
≤ 0.45) and keen's own overhead per child (the child's wall time minus its model and tool time),
and writes bench/results/parallel_children.json.

    python bench/parallel_children.py [--children 3] [--sleep 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
from pathlib import Path
from typing import Any

from _common import add_record_flag, make_repo, run_session, write_results


def script(children: int, sleep: float) -> dict[str, Any]:
    letters = [chr(ord("A") + i) for i in range(children)]
    main = [
        {
            "tool_calls": [
                {
                    "name": "summon_agent",
                    "input": {"vision": f"do part {letter} of the benchmark", "specialization": "general"},
                }
                for letter in letters
            ]
        },
        {"tool_calls": [{"name": "report_complete", "input": {"summary": "all parts merged"}}]},
    ]
    agents: dict[str, Any] = {"main": main}
    for letter in letters:
        agents[f"summon-{letter}"] = [
            {
                "tool_calls": [
                    {
                        "name": "run_command",
                        "input": {"command": f"sleep {sleep} && echo {letter} > part-{letter}.txt"},
                    }
                ]
            },
            {"tool_calls": [{"name": "report_complete", "input": {"summary": f"part {letter} done"}}]},
        ]
    return {"agents": agents, "context_window": 10_000_000}


async def run_once(work: Path, max_parallel: int, children: int, sleep: float) -> dict[str, Any]:
    repo = work / f"repo-{max_parallel}"
    make_repo(repo, 1)
    path = repo.parent / f"script-{max_parallel}.json"
    path.write_text(json.dumps(script(children, sleep)))
    run = await run_session(
        "benchmark: three parallel specialists",
        repo,
        f"scripted:{path}",
        max_iterations=100,
        phase="SUMMON",
        max_parallel=max_parallel,
    )
    first, last, inside = {}, {}, {}
    for e in run.events:
        if e.session_id == run.session_id:
            continue
        if e.type == "session.started":
            first[e.session_id] = e.ts
        last[e.session_id] = e.ts
        if e.type in ("model.responded", "tool.finished"):
            inside[e.session_id] = inside.get(e.session_id, 0) + e.data["duration_ms"]
    overhead = [(last[s] - first[s]).total_seconds() * 1000 - inside.get(s, 0) for s in first]
    return {
        "wall_s": round(run.wall_seconds, 3),
        "child_overhead_ms_median": round(statistics.median(overhead), 1),
    }


async def measure(children: int, sleep: float, work: Path) -> dict[str, Any]:
    os.environ["KEEN_HOME"] = str(work / "home")
    await run_once(work / "warm-up", 2, 2, 0)  # imports and first connections are not what is measured
    parallel = await run_once(work, children, children, sleep)
    sequential = await run_once(work, 1, children, sleep)
    return {
        "children": children,
        "tool_seconds_per_child": sleep,
        "parallel": parallel,
        "sequential": sequential,
        "ratio": round(parallel["wall_s"] / sequential["wall_s"], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--children", type=int, default=3)
    parser.add_argument("--sleep", type=float, default=2.0)
    add_record_flag(parser)
    args = parser.parse_args()
    if not 2 <= args.children <= 26:
        parser.error("--children must be between 2 and 26")
    with tempfile.TemporaryDirectory() as tmp:
        figures = asyncio.run(measure(args.children, args.sleep, Path(tmp)))
    path = write_results("parallel_children", figures, record=args.record)
    p, s = figures["parallel"], figures["sequential"]
    print(f"{figures['children']} children, {figures['tool_seconds_per_child']} s of tool time each")
    print(
        f"--max-parallel {figures['children']}: {p['wall_s']} s; --max-parallel 1: {s['wall_s']} s; ratio {figures['ratio']}"
    )
    print(
        f"keen's own overhead per child, median: {p['child_overhead_ms_median']} ms (parallel), {s['child_overhead_ms_median']} ms (sequential)"
    )
    print(f"written to {path}")


if __name__ == "__main__":
    main()
