"""A whole scripted session in a real git repository, and the loop's limits."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

from helpers import assert_gap_free, call, complete, git, run_session, turn, write_script
from keen.agent.history import History
from keen.llm.base import TextPart, ToolResultPart

MODULE = 'def slug(text: str) -> str:\n    return "-".join(text.lower().split())\n'
TEST = "from slug import slug\n\n\ndef test_slug():\n    assert slug('Hello World') == 'hello-world'\n"


async def test_scripted_session_explores_writes_tests_and_completes(repo: Path, tmp_path: Path) -> None:
    (repo / "old.txt").write_text("to be removed\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "old file")
    script = write_script(
        tmp_path / "s.json",
        {
            "main": [
                turn(call("get_project_tree"), call("read_files", paths=["README.md"])),
                turn(call("report_phase", phase="PLAN", summary="small repo")),
                turn(
                    call(
                        "write_files",
                        files=[
                            {"path": "slug.py", "content": MODULE},
                            {"path": "test_slug.py", "content": TEST},
                        ],
                    ),
                    call("edit_file", path="README.md", old_text="# demo", new_text="# demo\n\nSlugs."),
                    call("delete_files", paths=["old.txt"]),
                ),
                turn(call("run_command", command="python3 -m pytest -q -p no:cacheprovider test_slug.py")),
                # The summary claims a file that was never written: the report must not believe it.
                complete("wrote slug.py, test_slug.py and imaginary.py"),
            ]
        },
    )
    run = await run_session(repo, script)

    assert run.result.status == "completed"
    assert (repo / "slug.py").read_text() == MODULE
    assert not (repo / "old.txt").exists()
    # The file lists come from git, not from the agent's words.
    assert run.result.files.created == ["slug.py", "test_slug.py"]
    assert run.result.files.modified == ["README.md"]
    assert run.result.files.deleted == ["old.txt"]
    # The final commit holds the work and the tree is clean.
    log = git(repo, "log", "--format=%s", "-n", "1")
    assert log.startswith("keen: wrote slug.py")
    assert git(repo, "status", "--porcelain") == ""
    assert "slug.py" in git(repo, "show", "--name-only", "--format=", "HEAD")
    # The tests really ran and passed.
    finished = next(e for e in run.of_type("tool.finished") if e.data["name"] == "run_command")
    assert finished.data["output"]["exit_code"] == 0, finished.data
    assert "1 passed" in finished.data["output"]["stdout"]
    # Events: ordered, gap-free, every tool call started then finished, the session finished last.
    assert_gap_free(run.events)
    types = run.types()
    assert types[:3] == ["session.created", "session.started", "model.responded"]
    assert types[-2:] == ["git.committed", "session.finished"]
    assert types.count("tool.started") == types.count("tool.finished") == 8
    finished_data = run.events[-1].data
    assert finished_data["files_created"] == ["slug.py", "test_slug.py"]
    assert finished_data["iterations"] == 5
    assert Decimal(finished_data["cost_usd"]) > 0
    assert run.sessions[0].status == "completed"
    assert run.sessions[0].iterations == 5


async def test_phase_changes_are_events_and_notes_in_the_conversation(repo: Path, tmp_path: Path) -> None:
    script = write_script(
        tmp_path / "s.json",
        [turn(call("report_phase", phase="plan", summary="understood")), complete()],
    )
    run = await run_session(repo, script, phase="EXPLORE")
    changed = run.of_type("phase.changed")
    assert [(e.data["from"], e.data["to"], e.data["summary"]) for e in changed] == [
        ("EXPLORE", "PLAN", "understood")
    ]
    history = History()
    for event in run.events:
        history.apply(event)
    user_turn = history.messages[2]
    assert isinstance(user_turn.parts[0], ToolResultPart)
    assert any(isinstance(p, TextPart) and "Phase is now PLAN" in p.text for p in user_turn.parts)


async def test_gates_off_accepts_completion_without_validation(repo: Path, tmp_path: Path) -> None:
    script = write_script(tmp_path / "s.json", [complete("nothing to do")])
    run = await run_session(repo, script, gates="off")
    assert run.result.status == "completed"
    assert "completion.blocked" not in run.types()
    assert "validation.finished" not in run.types()


async def test_budget_stops_before_the_unaffordable_call(repo: Path, tmp_path: Path) -> None:
    # Each turn costs 100k input × $2/MTok + 100 output × $10/MTok = $0.201; the budget is $0.50.
    big = {"input_tokens": 100_000, "output_tokens": 100}
    script = write_script(
        tmp_path / "s.json",
        [
            turn(call("get_project_tree"), usage=big),
            turn(call("get_project_tree", max_depth=1), usage=big),
            turn(call("write_files", path="never.txt", content="x"), usage=big),
            complete(),
        ],
    )
    run = await run_session(repo, script, budget="0.5")
    assert run.result.status == "budget_exhausted"
    assert len(run.of_type("model.responded")) == 2
    assert not (repo / "never.txt").exists()
    assert run.result.cost_usd <= Decimal("0.5")
    assert "only $0.0980 of the budget is left" in run.result.summary


async def test_budget_warning_at_eighty_percent(repo: Path, tmp_path: Path) -> None:
    usage = {"input_tokens": 100_000, "output_tokens": 0}  # $0.20 per call
    script = write_script(
        tmp_path / "s.json", [turn(call("get_project_tree"), usage=usage)] * 4 + [complete()]
    )
    run = await run_session(repo, script, budget="1.0")
    warnings = run.of_type("budget.warning")
    assert len(warnings) == 1
    assert run.result.status == "completed"


async def test_iteration_limit_ends_with_max_iterations(repo: Path, tmp_path: Path) -> None:
    script = write_script(
        tmp_path / "s.json", [turn(call("get_project_tree", max_depth=i)) for i in range(1, 9)]
    )
    run = await run_session(repo, script, max_iterations=3)
    assert run.result.status == "max_iterations"
    assert len(run.of_type("model.responded")) == 3


async def test_three_replies_without_tool_calls_end_as_stuck(repo: Path, tmp_path: Path) -> None:
    script = write_script(tmp_path / "s.json", [{"text": "thinking about it"}] * 3 + [complete()])
    run = await run_session(repo, script)
    assert run.result.status == "stuck"
    nudges = run.of_type("agent.nudged")
    assert [n.data["reason"] for n in nudges] == ["no_tool_call", "no_tool_call"]
    assert "3 replies in a row without a tool call" in run.result.summary


async def test_one_reply_without_tool_call_is_nudged_and_the_session_goes_on(
    repo: Path, tmp_path: Path
) -> None:
    script = write_script(tmp_path / "s.json", [{"text": "hmm"}, complete()])
    run = await run_session(repo, script)
    assert run.result.status == "completed"
    assert len(run.of_type("agent.nudged")) == 1


async def test_repeating_the_same_call_is_nudged_then_stuck(repo: Path, tmp_path: Path) -> None:
    same = turn(call("read_files", paths=["README.md"]))
    script = write_script(tmp_path / "s.json", [same] * 6 + [complete()])
    run = await run_session(repo, script)
    assert run.result.status == "stuck"
    assert [n.data["reason"] for n in run.of_type("agent.nudged")] == ["repeated_call"]
    assert len(run.of_type("model.responded")) == 5


async def test_repeating_a_failing_call_ends_stuck_sooner(repo: Path, tmp_path: Path) -> None:
    failing = turn(call("read_files", paths=[]))  # schema allows it? a missing file fails per file
    bad = turn(call("edit_file", path="README.md", old_text="not there", new_text="x"))
    script = write_script(tmp_path / "s.json", [failing, bad, bad, bad, bad, complete()])
    run = await run_session(repo, script)
    assert run.result.status == "stuck"
    assert len([e for e in run.of_type("model.responded")]) == 5


async def test_error_turns_are_retried_and_recorded(repo: Path, tmp_path: Path) -> None:
    script = write_script(
        tmp_path / "s.json",
        [
            {"error": "rate_limit"},
            {"error": "overloaded"},
            {"error": "server_error"},
            turn(call("get_project_tree")),
            complete(),
        ],
    )
    run = await run_session(repo, script)
    assert run.result.status == "completed"
    first = run.of_type("model.responded")[0]
    assert [r["kind"] for r in first.data["retries"]] == ["rate_limit", "overloaded", "server_error"]
    assert len(run.of_type("model.responded")) == 2


async def test_exhausted_script_fails_with_a_clear_error(repo: Path, tmp_path: Path) -> None:
    script = write_script(tmp_path / "s.json", [turn(call("get_project_tree"))])
    run = await run_session(repo, script)
    assert run.result.status == "failed"
    assert "script exhausted" in run.result.summary


async def test_bad_tool_input_is_an_error_result_and_the_session_goes_on(repo: Path, tmp_path: Path) -> None:
    script = write_script(
        tmp_path / "s.json",
        [turn(call("write_files", files=[{"path": "a.txt"}]), call("no_such_tool")), complete()],
    )
    run = await run_session(repo, script)
    assert run.result.status == "completed"
    errors = [e.data["error"] for e in run.of_type("tool.finished")]
    assert "content" in errors[0] and "invalid input for write_files" in errors[0]
    assert "unknown tool 'no_such_tool'" in errors[1]


async def test_agent_reporting_failure_ends_failed_without_a_gate(repo: Path, tmp_path: Path) -> None:
    script = write_script(
        tmp_path / "s.json", [turn(call("report_complete", summary="cannot be done here", success=False))]
    )
    run = await run_session(repo, script, gates="standard")
    assert run.result.status == "failed"
    assert run.result.summary == "cannot be done here"


async def test_conversation_rebuilt_from_events_equals_what_the_model_saw(repo: Path, tmp_path: Path) -> None:
    script = write_script(
        tmp_path / "s.json",
        [
            turn(call("get_project_tree"), thinking="look first", text="exploring"),
            {"text": "no tool"},
            turn(
                call("report_phase", phase="FOUND", summary="s"),
                call("write_files", path="a.py", content="x = 1\n"),
            ),
            complete(),
        ],
    )
    run = await run_session(repo, script)
    history = History()
    for event in run.events:
        history.apply(event)
    roles = [m.role for m in history.messages]
    assert roles == ["user", "assistant", "user", "assistant", "user", "assistant", "user", "assistant"]
    # Thinking is kept with its signature so it can be sent back unchanged.
    first_reply = history.messages[1]
    assert first_reply.parts[0].type == "thinking" and first_reply.parts[0].signature == "scripted"
    # Tool results lead the user turn; notes follow them.
    results_turn = history.messages[6]
    assert [p.type for p in results_turn.parts] == ["tool_result", "tool_result", "text"]
    payload = json.loads(results_turn.parts[1].content)
    assert payload["ok"] is True
