"""The live view and `sessions show --tree` with children that run at the same time."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

from rich.console import Console

from helpers import call, complete, run_keen, run_session, summon, turn, write_script
from keen.cli.views import SessionView

BRANCHES = ("summon-A", "summon-B", "summon-C")


async def test_the_live_view_shows_every_running_child_with_its_phase_tool_and_cost(
    repo: Path, tmp_path: Path
) -> None:
    script = write_script(
        tmp_path / "s.json",
        {
            "main": [turn(*(summon(f"inspect part {b} of it", "general") for b in BRANCHES)), complete("ok")],
            **{b: [turn(call("get_project_tree")), complete(f"{b} done")] for b in BRANCHES},
        },
    )
    run = await run_session(repo, script)
    console = Console(record=True, width=200, color_system=None)
    view = SessionView(console, model="scripted:s.json", budget=Decimal(5), max_iterations=100, live=False)
    started = 0
    for event in run.events:
        view.handle(event)
        if event.type == "tool.started" and event.data["name"] == "get_project_tree":
            started += 1
        if started == 3:
            break
    console.print(view.render())
    screen = console.export_text()
    for branch in BRANCHES:
        line = next(row for row in screen.splitlines() if branch in row and "▶" in row)
        assert "running" in line and "EXPLORE" in line and "get_project_tree" in line and "$" in line
    assert screen.count("get_project_tree") >= 3


def test_sessions_show_tree_draws_siblings_that_ran_in_parallel(tmp_path: Path) -> None:
    script = write_script(
        tmp_path / "s.json",
        {
            "main": [turn(*(summon(f"write part {b} of it", "general") for b in BRANCHES)), complete("ok")],
            **{
                b: [turn(call("write_files", path=f"{b}.txt", content=b)), complete(f"{b} done")]
                for b in BRANCHES
            },
        },
    )
    done = run_keen(
        "breathe",
        "three parts at once",
        "--model",
        f"scripted:{script}",
        "--dir",
        "w",
        "--json",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    session = json.loads(done.stdout)["session_id"]
    shown = run_keen("sessions", "show", session, "--tree", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    lines = [row for row in shown.stdout.splitlines() if "summon-" in row and "merge: merged" in row]
    assert [next(b for b in BRANCHES if b in row) for row in lines[-3:]] == list(BRANCHES)
    assert all(("├──" in row or "└──" in row) for row in lines[-3:])
