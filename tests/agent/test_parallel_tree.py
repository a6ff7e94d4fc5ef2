"""Parallel specialists (SPEC 3.6): several `summon_agent` calls in one reply run at once, each
in its own worktree from one checkpoint, and are merged in call order."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

from helpers import assert_gap_free, call, complete, git, run_session, summon, turn, write_script


def _writer(path: str, content: str, delay_ms: int = 300) -> list[dict[str, Any]]:
    return [
        turn(call("write_files", path=path, content=content), delay_ms=delay_ms),
        complete(f"wrote {path}"),
    ]


def _three_writers(tmp_path: Path) -> Path:
    return write_script(
        tmp_path / "s.json",
        {
            "main": [
                turn(
                    summon("write the backend file a.txt", "backend"),
                    summon("write the frontend file b.txt", "frontend"),
                    summon("write the testing file c.txt", "testing"),
                ),
                complete("three specialists merged"),
            ],
            "summon-A": _writer("a.txt", "a\n"),
            "summon-B": _writer("b.txt", "b\n"),
            "summon-C": _writer("c.txt", "c\n"),
        },
    )


def _children(run: Any) -> dict[str, str]:
    return {s.id: s.branch_name for s in run.sessions if s.parent_id is not None}


async def test_three_summons_in_one_reply_run_at_once_and_merge_in_call_order(
    repo: Path, tmp_path: Path
) -> None:
    run = await run_session(repo, _three_writers(tmp_path))
    assert run.result.status == "completed", run.result.summary
    children = _children(run)
    started = [e.seq for e in run.of_type("session.started") if e.session_id in children]
    finished = [e.seq for e in run.of_type("session.finished") if e.session_id in children]
    assert len(started) == 3 and max(started) < min(finished)  # all three ran at the same time
    assert all((repo / name).read_text() == name[0] + "\n" for name in ("a.txt", "b.txt", "c.txt"))
    merges = [e.data["from"].rsplit("/", 1)[1] for e in run.of_type("git.merged")]
    assert merges == ["summon-A", "summon-B", "summon-C"]
    subjects = git(repo, "log", "--merges", "--reverse", "--format=%s").splitlines()
    assert [s.split()[2] for s in subjects] == ["summon-A", "summon-B", "summon-C"]
    spawned = run.of_type("child.spawned")
    assert len({e.data["start_commit"] for e in spawned}) == 1  # one checkpoint for all three
    assert len({e.data["worktree"] for e in spawned}) == 3
    results = [e for e in run.of_type("tool.finished") if e.data["name"] == "summon_agent"]
    assert [r.data["output"]["branch"] for r in results] == ["summon-A", "summon-B", "summon-C"]
    assert all(e.session_id for e in run.events)
    assert_gap_free(run.events)


async def test_max_parallel_1_runs_the_children_one_after_another(repo: Path, tmp_path: Path) -> None:
    run = await run_session(repo, _three_writers(tmp_path), max_parallel=1)
    assert run.result.status == "completed", run.result.summary
    children = _children(run)
    order = [
        (e.type, children[e.session_id])
        for e in run.events
        if e.session_id in children and e.type in ("session.started", "session.finished")
    ]
    assert order == [
        ("session.started", "summon-A"),
        ("session.finished", "summon-A"),
        ("session.started", "summon-B"),
        ("session.finished", "summon-B"),
        ("session.started", "summon-C"),
        ("session.finished", "summon-C"),
    ]


async def test_a_conflict_between_parallel_children_is_handed_back_and_merged_by_hand(
    repo: Path, tmp_path: Path
) -> None:
    (repo / "config.txt").write_text("mode = base\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "config")
    script = write_script(
        tmp_path / "s.json",
        {
            "main": [
                turn(
                    summon("set the mode to fast in config.txt", "backend"),
                    summon("set the mode to safe in config.txt", "security"),
                ),
                turn(call("git", action="merge", branch="summon-B")),
                turn(call("write_files", path="config.txt", content="mode = safe-and-fast\n")),
                turn(
                    call("git", action="add", args=["config.txt"]),
                    call("git", action="commit", message="resolve the mode"),
                ),
                complete("modes reconciled"),
            ],
            "summon-A": [
                turn(call("edit_file", path="config.txt", old_text="mode = base", new_text="mode = fast")),
                complete("fast"),
            ],
            "summon-B": [
                turn(call("edit_file", path="config.txt", old_text="mode = base", new_text="mode = safe")),
                complete("safe"),
            ],
        },
    )
    run = await run_session(repo, script)
    assert run.result.status == "completed", run.result.summary
    outputs = [e.data["output"] for e in run.of_type("tool.finished") if e.data["name"] == "summon_agent"]
    assert outputs[0]["merge"]["result"] == "merged"
    second = outputs[1]["merge"]
    assert second["result"] == "conflicts" and second["conflicts"] == ["config.txt"]
    assert second["branch"].endswith("/summon-B") and "summon-B" in second["hint"]
    finished = {e.data["child_session_id"]: e.data for e in run.of_type("child.finished")}
    assert [d["merge"]["result"] for d in finished.values()] == ["merged", "conflicts"]
    assert (repo / "config.txt").read_text() == "mode = safe-and-fast\n"
    assert not (repo / ".git" / "MERGE_HEAD").exists()
    assert git(repo, "status", "--porcelain") == ""


async def test_parallel_children_never_spend_past_the_trees_budget(repo: Path, tmp_path: Path) -> None:
    costly = {"input_tokens": 100_000, "output_tokens": 0}  # $0.20 per call
    spender = [turn(call("get_project_tree", max_depth=i), usage=costly, delay_ms=50) for i in range(1, 8)]
    script = write_script(
        tmp_path / "s.json",
        {
            "main": [
                turn(
                    summon("read the tree many times", "general"),
                    summon("read the tree many times", "backend"),
                    summon("read the tree many times", "testing"),
                ),
                complete("done"),
            ],
            "summon-A": spender,
            "summon-B": spender,
            "summon-C": spender,
        },
    )
    run = await run_session(repo, script, budget="2.0")
    spent = sum((s.cost_usd for s in run.sessions), Decimal(0))
    assert spent <= Decimal("2.0"), spent
    children = [s for s in run.sessions if s.parent_id is not None]
    assert len(children) == 3 and any(s.status == "budget_exhausted" for s in children)
