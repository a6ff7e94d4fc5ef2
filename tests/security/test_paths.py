"""Path tricks against the file tools: symlinks made by commands, hard links, and a symlink
swapped by a background process while the tools run. Nothing may be read, written or deleted
outside the workspace, and nothing written into `.git`."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import StubAgent
from keen.tools import files, search, shell
from keen.tools.context import ToolContext
from keen.tools.registry import ToolRegistry, ToolResult
from keen.tools.workspace import Workspace

REGISTRY = ToolRegistry([*files.TOOLS, *search.TOOLS, *shell.TOOLS])
RACE_ROUNDS = 500  # four file operations each


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True)
    return root


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    return folder


async def _call(root: Path, name: str, tool_input: dict[str, Any]) -> ToolResult:
    ctx = ToolContext(workspace=Workspace(root), agent=StubAgent(), call_id="c1")
    return await REGISTRY.execute(name, tool_input, ctx)


async def test_a_symlink_to_git_made_by_a_command_does_not_open_git_to_file_tools(workspace: Path) -> None:
    made = await _call(workspace, "run_command", {"command": "ln -s .git g && ln -s .git/hooks h"})
    assert made.ok and made.output["exit_code"] == 0, made

    hook = "#!/bin/sh\ntouch /tmp/pwned\n"
    writes = [
        await _call(workspace, "write_files", {"path": "g/hooks/post-commit", "content": hook}),
        await _call(workspace, "write_files", {"path": "h/pre-push", "content": hook}),
        await _call(workspace, "write_files", {"path": "g/config", "content": "[core]\n"}),
    ]
    edit = await _call(workspace, "edit_file", {"path": "g/HEAD", "old_text": "ref", "new_text": "x"})
    delete = await _call(workspace, "delete_files", {"paths": ["g/HEAD"]})

    for result in [*writes, edit, delete]:
        assert not result.ok and ".git" in (result.error or ""), result
    assert not (workspace / ".git" / "hooks" / "post-commit").exists()
    assert not (workspace / ".git" / "hooks" / "pre-push").exists()
    assert (workspace / ".git" / "HEAD").read_text().startswith("ref: ")
    assert (await _call(workspace, "read_files", {"paths": ["g/HEAD"]})).output["files"][0]["content"]


async def test_edits_and_writes_through_a_hard_link_leave_the_outside_file_alone(
    workspace: Path, outside: Path
) -> None:
    victim = outside / "victim.txt"
    victim.write_text("OUTSIDE original\n")
    os.link(victim, workspace / "edit.txt")
    os.link(victim, workspace / "write.txt")

    edit = await _call(workspace, "edit_file", {"path": "edit.txt", "old_text": "original", "new_text": "x"})
    write = await _call(workspace, "write_files", {"path": "write.txt", "content": "replaced\n"})

    assert edit.ok and write.ok, (edit, write)
    assert victim.read_text() == "OUTSIDE original\n"
    assert (workspace / "edit.txt").read_text() == "OUTSIDE x\n"
    assert (workspace / "write.txt").read_text() == "replaced\n"


FLIPPER = textwrap.dedent(
    """
    import os, sys
    link, inside, outside = sys.argv[1:4]
    tmp = link + ".flip"
    targets = (inside, outside)
    i = 0
    while True:
        i += 1
        try:
            os.symlink(targets[i % 2], tmp)
            os.replace(tmp, link)
        except OSError:
            pass
    """
)


@pytest.fixture
def flipping_link(workspace: Path, outside: Path) -> Iterator[Path]:
    """`workspace/d` swapped between `inside/` and the outside folder by another process."""
    inside = workspace / "inside"
    inside.mkdir()
    link = workspace / "d"
    os.symlink("inside", link)
    flipper = subprocess.Popen([sys.executable, "-c", FLIPPER, str(link), "inside", str(outside)])
    try:
        time.sleep(0.2)
        yield inside
    finally:
        flipper.kill()
        flipper.wait()


async def test_a_symlink_swapped_during_file_operations_lands_nothing_outside(
    workspace: Path, outside: Path, flipping_link: Path
) -> None:
    inside = flipping_link
    for folder, word in ((inside, "INSIDE"), (outside, "OUTSIDE")):
        (folder / "secret.txt").write_text(f"{word} secret\n")
        (folder / "edit.txt").write_text(f"{word} END\n")
        for i in range(RACE_ROUNDS):
            (folder / f"del{i}.txt").write_text(word)

    outside_reads = 0
    for i in range(RACE_ROUNDS):
        await _call(workspace, "write_files", {"path": f"d/w{i}.txt", "content": "written"})
        read = await _call(workspace, "read_files", {"paths": ["d/secret.txt"]})
        if "OUTSIDE" in str(read.output):
            outside_reads += 1
        await _call(workspace, "delete_files", {"paths": [f"d/del{i}.txt"]})
        await _call(
            workspace, "edit_file", {"path": "d/edit.txt", "old_text": "END", "new_text": f"{i}. END"}
        )

    outside_writes = sum(1 for i in range(RACE_ROUNDS) if (outside / f"w{i}.txt").exists())
    outside_deletes = sum(1 for i in range(RACE_ROUNDS) if not (outside / f"del{i}.txt").exists())
    outside_edits = (outside / "edit.txt").read_text().count(". ")
    landed = outside_reads + outside_writes + outside_deletes + outside_edits
    inside_work = sum(1 for i in range(RACE_ROUNDS) if (inside / f"w{i}.txt").exists())
    print(
        f"\nrace: {landed} of {4 * RACE_ROUNDS} operations landed outside "
        f"(reads {outside_reads}, writes {outside_writes}, deletes {outside_deletes}, edits {outside_edits}); "
        f"{inside_work} of {RACE_ROUNDS} writes landed inside"
    )
    assert landed == 0
    assert inside_work > 0  # the link really pointed inside part of the time: the test can fail
