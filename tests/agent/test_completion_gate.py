"""The completion blocker end to end: real validation of the workspace gates `report_complete`."""

from __future__ import annotations

import subprocess
from pathlib import Path

from helpers import call, complete, run_session, turn, write_script

BROKEN = "def add(a, b):\n    return a - b\n"
FIXED = "def add(a, b):\n    return a + b\n"
TEST = "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"


async def test_failing_tests_block_completion_until_fixed(repo: Path, tmp_path: Path) -> None:
    script = write_script(
        tmp_path / "s.json",
        [
            turn(
                call(
                    "write_files",
                    files=[{"path": "calc.py", "content": BROKEN}, {"path": "test_calc.py", "content": TEST}],
                )
            ),
            complete("calculator done"),
            turn(call("edit_file", path="calc.py", old_text="a - b", new_text="a + b")),
            complete("calculator fixed and tested"),
        ],
    )
    run = await run_session(repo, script, gates="standard")
    assert run.result.status == "completed", run.result.summary
    assert (repo / "calc.py").read_text() == FIXED

    blocked = run.of_type("completion.blocked")
    assert len(blocked) == 1
    assert any("tests fail" in r for r in blocked[0].data["reasons"])
    refusal = next(e for e in run.of_type("tool.finished") if e.data["name"] == "report_complete")
    assert refusal.data["ok"] is False
    assert "test_add" in refusal.data["error"] and "assert" in refusal.data["error"]
    assert "Call `report_complete` again" in refusal.data["error"]

    gates = [e.data for e in run.of_type("gate.evaluated") if e.data["phase"] == "COMPLETE"]
    assert [g["passed"] for g in gates] == [False, True]
    validations = run.of_type("validation.finished")
    assert [v.data["categories"]["tests"]["status"] for v in validations] == ["fail", "pass"]


async def test_three_refusals_end_the_session_failed_with_the_report(repo: Path, tmp_path: Path) -> None:
    script = write_script(
        tmp_path / "s.json",
        [
            turn(
                call(
                    "write_files",
                    files=[{"path": "calc.py", "content": BROKEN}, {"path": "test_calc.py", "content": TEST}],
                )
            ),
            complete("done?"),
            complete("done now?"),
            complete("surely done"),
            complete("never reached"),
        ],
    )
    run = await run_session(repo, script, gates="standard")
    assert run.result.status == "failed"
    assert "completion refused 3 times" in run.result.summary
    assert len(run.of_type("completion.blocked")) == 3
    finished = run.events[-1].data
    assert finished["status"] == "failed"
    assert finished["report"]["categories"]["tests"]["status"] == "fail"
    assert len(run.of_type("model.responded")) == 4  # the fourth completion was never asked for


async def test_syntax_error_blocks_completion_naming_file_and_line(repo: Path, tmp_path: Path) -> None:
    script = write_script(
        tmp_path / "s.json",
        [
            turn(call("write_files", path="broken.py", content="def f(:\n    pass\n")),
            complete(),
            turn(call("write_files", path="broken.py", content="def f():\n    pass\n")),
            complete(),
        ],
    )
    run = await run_session(repo, script, gates="standard")
    assert run.result.status == "completed"
    refusal = next(e for e in run.of_type("tool.finished") if e.data["name"] == "report_complete")
    assert "broken.py:1" in refusal.data["error"]


async def test_strict_gates_require_tests_to_exist(repo: Path, tmp_path: Path) -> None:
    script = write_script(
        tmp_path / "s.json",
        [
            turn(call("write_files", path="tool.py", content='"""A tool."""\n\nVALUE = 1\n')),
            complete(),
            complete(),
        ],
    )
    standard = await run_session(repo, script, gates="standard")
    assert standard.result.status == "completed"

    other = tmp_path / "other"
    other.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=other, check=True)
    strict = await run_session(other, script, gates="strict")
    blocked = strict.of_type("completion.blocked")
    assert blocked and any("no tests" in r for r in blocked[0].data["reasons"])


async def test_a_child_is_gated_on_its_own_worktree(repo: Path, tmp_path: Path) -> None:
    script = write_script(
        tmp_path / "s.json",
        {
            "main": [
                turn(
                    call("summon_agent", vision="write the calculator and its test", specialization="backend")
                ),
                complete("tree done"),
            ],
            "summon-A": [
                turn(
                    call(
                        "write_files",
                        files=[
                            {"path": "calc.py", "content": BROKEN},
                            {"path": "test_calc.py", "content": TEST},
                        ],
                    )
                ),
                complete("calc written"),
                turn(call("edit_file", path="calc.py", old_text="a - b", new_text="a + b")),
                complete("calc fixed"),
            ],
        },
    )
    run = await run_session(repo, script, gates="standard")
    assert run.result.status == "completed"
    child_id = next(s.id for s in run.sessions if s.branch_name == "summon-A")
    blocked = run.of_type("completion.blocked")
    assert [b.session_id for b in blocked] == [child_id]
    assert (repo / "calc.py").read_text() == FIXED


async def test_phase_gates_are_evaluated_from_session_facts(repo: Path, tmp_path: Path) -> None:
    script = write_script(
        tmp_path / "s.json",
        [
            turn(call("report_phase", phase="PLAN", summary="skipped exploring")),
            turn(call("get_project_tree"), call("report_phase", phase="FOUND", summary="plan")),
            turn(call("report_phase", phase="SUMMON", summary="nothing built")),
            complete(),
        ],
    )
    run = await run_session(repo, script, gates="standard")
    gates = {e.data["phase"]: e.data for e in run.of_type("gate.evaluated")}
    assert gates["EXPLORE"]["checks"][0]["passed"] is False  # report_phase came before any look
    assert gates["PLAN"]["checks"][0]["passed"] is True
    assert gates["FOUND"]["checks"][0]["passed"] is False  # no files changed
    assert all(g["passed"] for g in gates.values() if g["phase"] != "COMPLETE")  # advisory only
