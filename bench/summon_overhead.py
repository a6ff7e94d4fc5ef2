"""What summoning a child agent costs keen itself, on a repository of 1,000 files.

A scripted root agent summons 20 children one after another (before each, it leaves a pending
change so the checkpoint commit is real); each child writes one file and completes. For every
summon, keen's own cost is the `summon_agent` call's duration minus the time the child spent in
its model calls and tools: checkpoint commit, worktree creation, the child's bookkeeping and
final commit, the --no-ff merge and the worktree's removal. Git operations are also timed one
by one. Prints medians and writes bench/results/summon_overhead.json.

    python bench/summon_overhead.py [--children 20] [--files 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from _common import add_record_flag, make_repo, percentile, run_session, write_results


def script(children: int) -> dict[str, Any]:
    main: list[dict[str, Any]] = []
    agents: dict[str, Any] = {"main": main}
    for i in range(children):
        main.append(
            {
                "tool_calls": [
                    {"name": "write_files", "input": {"path": f"root/pending{i}.txt", "content": f"{i}\n"}},
                    {
                        "name": "summon_agent",
                        "input": {"vision": f"write child file number {i}", "specialization": "general"},
                    },
                ]
            }
        )
        letter = chr(ord("A") + i)
        agents[f"summon-{letter}"] = [
            {
                "tool_calls": [
                    {"name": "write_files", "input": {"path": f"child/{letter}.txt", "content": letter}}
                ]
            },
            {"tool_calls": [{"name": "report_complete", "input": {"summary": f"wrote {letter}"}}]},
        ]
    main.append({"tool_calls": [{"name": "report_complete", "input": {"summary": "all children merged"}}]})
    return {"agents": agents, "context_window": 10_000_000}


async def measure(children: int, files: int, work: Path) -> dict[str, Any]:
    os.environ["KEEN_HOME"] = str(work / "home")
    from keen.gitrepo import GitRepo

    git_times: dict[str, list[float]] = defaultdict(list)
    original = GitRepo.run

    async def timed_run(self: GitRepo, *args: str, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return await original(self, *args, **kwargs)
        finally:
            key = " ".join(args[:2]) if args and args[0] == "worktree" else (args[0] if args else "?")
            git_times[key].append((time.perf_counter() - started) * 1000)

    GitRepo.run = timed_run  # type: ignore[method-assign]
    repo = work / "repo"
    make_repo(repo, files)
    path = work / "script.json"
    path.write_text(json.dumps(script(children)))
    run = await run_session(
        "benchmark: summon children in a big repository",
        repo,
        f"scripted:{path}",
        max_iterations=10_000,
        phase="SUMMON",
    )
    GitRepo.run = original  # type: ignore[method-assign]

    inside_child: dict[str, float] = defaultdict(float)
    for e in run.events:
        if e.session_id != run.session_id and e.type in ("model.responded", "tool.finished"):
            inside_child[e.session_id] += e.data["duration_ms"]
    spawned = {e.data["call_id"]: e.data["child_session_id"] for e in run.events if e.type == "child.spawned"}
    overheads, totals = [], []
    for e in run.events:
        if e.type == "tool.finished" and e.data["name"] == "summon_agent":
            child = spawned[e.data["call_id"]]
            totals.append(e.data["duration_ms"])
            overheads.append(e.data["duration_ms"] - inside_child[child])
    merges = [e for e in run.events if e.type == "git.merged" and not e.data["conflicts"]]
    return {
        "repo_files": files,
        "children": children,
        "merged": len(merges),
        "summon_overhead_ms": {
            "median": statistics.median(overheads),
            "p95": percentile(overheads, 0.95),
        },
        "summon_total_ms_median": statistics.median(totals),
        "git_ms_median": {k: round(statistics.median(v), 2) for k, v in sorted(git_times.items())},
        "git_calls": {k: len(v) for k, v in sorted(git_times.items())},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--children", type=int, default=20)
    parser.add_argument("--files", type=int, default=1000)
    add_record_flag(parser)
    args = parser.parse_args()
    if not 1 <= args.children <= 26:
        parser.error("--children must be between 1 and 26 (children per parent)")
    with tempfile.TemporaryDirectory() as tmp:
        figures = asyncio.run(measure(args.children, args.files, Path(tmp)))
    path = write_results("summon_overhead", figures, record=args.record)
    o = figures["summon_overhead_ms"]
    print(
        f"{figures['children']} summons on a repo of {figures['repo_files']} files, {figures['merged']} merged"
    )
    print(
        f"keen's cost per summon: median {o['median']} ms, p95 {o['p95']} ms (child's model and tool time excluded)"
    )
    print("git operations, median ms:", ", ".join(f"{k} {v}" for k, v in figures["git_ms_median"].items()))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
