"""The agent tree with the scripted model and real git: summoning, isolation, merges, limits."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from helpers import assert_gap_free, call, complete, git, run_session, summon, turn, write_script
from keen.config import reset_settings_cache


async def test_root_child_and_grandchild_each_work_and_merge_in_order(repo: Path, tmp_path: Path) -> None:
    script = write_script(
        tmp_path / "s.json",
        {
            "main": [
                turn(call("report_phase", phase="SUMMON", summary="delegating the API")),
                turn(summon("build the api module with its tests", "backend")),
                complete("api built by the tree"),
            ],
            "summon-A": [
                turn(call("write_files", path="api.py", content="def ping():\n    return 'pong'\n")),
                turn(summon("write tests for api.ping", "testing")),
                complete("api.py written, tests delegated"),
            ],
            "summon-A-A": [
                turn(
                    call(
                        "write_files",
                        path="test_api.py",
                        content="from api import ping\n\n\ndef test_ping():\n    assert ping() == 'pong'\n",
                    )
                ),
                complete("test_api.py written"),
            ],
        },
    )
    run = await run_session(repo, script)
    assert run.result.status == "completed", run.result.summary
    assert (repo / "api.py").is_file() and (repo / "test_api.py").is_file()
    assert run.result.files.created == ["api.py", "test_api.py"]

    short = run.sessions[0].short_id
    branches = git(repo, "branch", "--format=%(refname:short)").split()
    assert f"keen/{short}/summon-A" in branches and f"keen/{short}/summon-A-A" in branches
    assert "test_api.py" in git(repo, "show", "--name-only", "--format=", f"keen/{short}/summon-A-A")
    # Two --no-ff merge commits on the root branch's history, grandchild first.
    merges = git(repo, "log", "--merges", "--format=%s", "main").splitlines()
    assert len(merges) == 2
    assert merges[1].startswith("keen: merge summon-A-A (testing)")
    assert merges[0].startswith("keen: merge summon-A (backend)")
    assert git(repo, "rev-list", "--parents", "-n", "1", "main").count(" ") == 2  # HEAD~ is a merge
    # No worktree left behind.
    assert git(repo, "worktree", "list").count("\n") == 1

    nodes = {s.branch_name: s for s in run.sessions}
    assert set(nodes) == {"main", "summon-A", "summon-A-A"}
    assert [
        (nodes[b].depth, nodes[b].specialization, nodes[b].status) for b in ("main", "summon-A", "summon-A-A")
    ] == [
        (0, None, "completed"),
        (1, "backend", "completed"),
        (2, "testing", "completed"),
    ]
    assert nodes["summon-A"].git_branch == f"keen/{short}/summon-A"
    assert nodes["summon-A-A"].parent_id == nodes["summon-A"].id
    # One stream: gap-free seq across the tree, children's events tagged with their ids.
    assert_gap_free(run.events)
    child_events = [e for e in run.events if e.session_id == nodes["summon-A-A"].id]
    assert {e.parent_session_id for e in child_events} == {nodes["summon-A"].id}
    assert any(e.type == "tool.started" and e.data["name"] == "write_files" for e in child_events)
    finished = [e for e in run.of_type("child.finished")]
    assert [e.data["merge"]["result"] for e in finished] == ["merged", "merged"]
    summon_result = next(
        e
        for e in run.of_type("tool.finished")
        if e.session_id == nodes["main"].id and e.data["name"] == "summon_agent"
    ).data["output"]
    assert summon_result["branch"] == "summon-A" and summon_result["status"] == "completed"
    assert summon_result["merge"]["result"] == "merged"
    assert summon_result["files_changed"]["files_created"] == ["api.py", "test_api.py"]
    assert len(summon_result["commits"]) >= 2
    # The whole tree's iterations and cost are in the root's report.
    assert run.events[-1].data["iterations"] == 3 + 3 + 2


async def test_parent_working_tree_is_untouched_while_the_child_runs(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The child's command probes the parent's work tree, which keen's sandbox hides from it.
    monkeypatch.setenv("KEEN_SANDBOX", "none")
    reset_settings_cache()
    (repo / "notes.txt").write_text("parent's pending work\n")  # uncommitted: checkpointed before summoning
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "notes")
    probe = f"git -C {repo} status --porcelain | wc -l; test ! -e {repo}/child.txt && echo PARENT-CLEAN"
    script = write_script(
        tmp_path / "s.json",
        {
            "main": [
                turn(call("write_files", path="pending.txt", content="not committed yet\n")),
                turn(summon("write child.txt and check isolation", "general")),
                complete(),
            ],
            "summon-A": [
                turn(call("write_files", path="child.txt", content="from the child\n")),
                turn(call("run_command", command=probe), call("run_command", command="pwd; cat pending.txt")),
                complete("child.txt written"),
            ],
        },
    )
    run = await run_session(repo, script)
    assert run.result.status == "completed"
    probes = [
        e.data["output"]["stdout"] for e in run.of_type("tool.finished") if e.data["name"] == "run_command"
    ]
    assert probes[0].split() == ["0", "PARENT-CLEAN"]
    # The child worked elsewhere, from the parent's checkpoint (which holds pending.txt).
    assert str(repo) not in probes[1].splitlines()[0]
    assert "not committed yet" in probes[1]
    checkpoint = git(repo, "log", "--format=%s", "--grep", "checkpoint before summoning")
    assert checkpoint.strip()


async def test_conflicting_children_abort_the_merge_and_the_parent_resolves_it(
    repo: Path, tmp_path: Path
) -> None:
    (repo / "config.txt").write_text("mode = base\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "config")
    script = write_script(
        tmp_path / "s.json",
        {
            "main": [
                turn(summon("set the mode to fast in config.txt", "backend")),
                turn(summon("set the mode to safe in config.txt", "security")),
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
            # B starts from the parent's HEAD (which has A's merge); going back to the base makes
            # both children change the same line from the same ancestor.
            "summon-B": [
                turn(call("git", action="reset", args=["--hard", "HEAD~1"])),
                turn(call("edit_file", path="config.txt", old_text="mode = base", new_text="mode = safe")),
                complete("safe"),
            ],
        },
    )
    run = await run_session(repo, script)
    assert run.result.status == "completed", run.result.summary
    outputs = [e.data for e in run.of_type("tool.finished") if e.data["name"] == "summon_agent"]
    assert outputs[0]["output"]["merge"]["result"] == "merged"
    second = outputs[1]["output"]["merge"]
    assert second["result"] == "conflicts" and second["conflicts"] == ["config.txt"]
    merged_events = run.of_type("git.merged")
    assert merged_events[1].data["conflicts"] == ["config.txt"] and merged_events[1].data["commit"] is None
    # The aborted merge left a clean repository; the parent's own merge then conflicted and was resolved.
    root_id = run.sessions[0].id
    manual = [
        e.data for e in run.of_type("tool.finished") if e.data["name"] == "git" and e.session_id == root_id
    ]
    assert manual[0]["ok"] is False and "CONFLICT" in manual[0]["output"]["stdout"]
    assert (repo / "config.txt").read_text() == "mode = safe-and-fast\n"
    assert git(repo, "status", "--porcelain") == ""
    head_parents = git(repo, "rev-list", "--parents", "-n", "1", "HEAD").split()
    assert len(head_parents) == 3  # the resolution is a real merge commit of summon-B


async def test_max_depth_refuses_a_grandchild_with_a_clear_error(repo: Path, tmp_path: Path) -> None:
    script = write_script(
        tmp_path / "s.json",
        {
            "main": [turn(summon("do part of the work", "general")), complete()],
            "summon-A": [turn(summon("go one level deeper", "testing")), complete("did it myself")],
        },
    )
    run = await run_session(repo, script, max_depth=1)
    assert run.result.status == "completed"
    refused = next(
        e for e in run.of_type("tool.finished") if e.data["name"] == "summon_agent" and not e.data["ok"]
    )
    assert "maximum depth is 1" in refused.data["error"]
    assert len(run.sessions) == 2


async def test_child_budget_is_bounded_by_what_the_parent_has_left(repo: Path, tmp_path: Path) -> None:
    costly = {"input_tokens": 100_000, "output_tokens": 0}  # $0.20 per call
    script = write_script(
        tmp_path / "s.json",
        {
            "main": [turn(summon("spend a lot", "general", budget="5"), usage=costly), complete()],
            "summon-A": [turn(call("get_project_tree", max_depth=i), usage=costly) for i in range(1, 10)],
        },
    )
    run = await run_session(repo, script, budget="1.0")
    child = next(s for s in run.sessions if s.branch_name == "summon-A")
    root = next(s for s in run.sessions if s.branch_name == "main")
    assert child.status == "budget_exhausted"
    assert child.cost_usd <= Decimal("0.8")  # what the root had left after its own first call
    assert root.cost_usd + child.cost_usd <= Decimal("1.0")
    assert run.result.status == "budget_exhausted"
    assert run.result.cost_usd <= Decimal("1.0")
    spawned = run.of_type("child.spawned")[0].data
    assert Decimal(spawned["budget_usd"]) == Decimal("0.8")
    summon_out = next(e for e in run.of_type("tool.finished") if e.data["name"] == "summon_agent").data[
        "output"
    ]
    assert summon_out["status"] == "budget_exhausted" and summon_out["merge"]["result"] == "not_merged"


async def test_coordination_reflects_the_real_tree(repo: Path, tmp_path: Path) -> None:
    script = write_script(
        tmp_path / "s.json",
        {
            "main": [
                turn(summon("finish properly", "backend")),
                turn(summon("give up early", "frontend")),
                turn(
                    call(
                        "coordinate_agents",
                        action="check_dependencies",
                        dependencies=["summon-A", "summon-B", "summon-Z"],
                    )
                ),
                turn(
                    call("get_agent_status"),
                    call("coordinate_agents", action="sync_phase", target_phase="COMPLETE"),
                ),
                complete(),
            ],
            "summon-A": [
                turn(call("coordinate_agents", action="validate_sequential")),
                turn(call("write_files", path="a.txt", content="a\n")),
                complete("a"),
            ],
            "summon-B": [turn(call("report_complete", summary="cannot", success=False))],
        },
    )
    run = await run_session(repo, script)
    outputs = {(e.session_id, e.data["name"]): e.data for e in run.of_type("tool.finished")}
    nodes = {s.branch_name: s.id for s in run.sessions}
    sequential = outputs[(nodes["summon-A"], "coordinate_agents")]["output"]
    assert sequential["valid"] is True and sequential["running_children"] == {"main": ["summon-A"]}
    deps = [e.data for e in run.of_type("tool.finished") if e.data["name"] == "coordinate_agents"][1][
        "output"
    ]
    by_ref = {d["ref"]: d for d in deps["dependencies"]}
    assert by_ref["summon-A"]["finished"] and by_ref["summon-A"]["merged"]
    assert by_ref["summon-B"]["finished"] and not by_ref["summon-B"]["merged"]
    assert by_ref["summon-B"]["status"] == "failed"
    assert by_ref["summon-Z"]["found"] is False
    assert deps["satisfied"] is False
    status = outputs[(nodes["main"], "get_agent_status")]["output"]
    assert {n["branch"] for n in status["nodes"]} == {"main", "summon-A", "summon-B"}
    assert status["metrics"]["agents"] == 3
    assert "summon-A [backend]" in status["drawing"] and "└── summon-B [frontend]" in status["drawing"]
    a_node = next(n for n in status["nodes"] if n["branch"] == "summon-A")
    assert a_node["status"] == "completed" and a_node["depth"] == 1 and a_node["duration_ms"] is not None
    assert run.of_type("phase.changed")[-1].data["to"] == "COMPLETE"
    assert json.loads(json.dumps(status))  # plain JSON
