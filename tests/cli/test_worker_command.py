"""`keen worker` refuses, in one line and before it starts anything, a setup that cannot run
distributed runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import run_keen


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "error: keen worker runs distributed runs: set KEEN_RUN_MODE=distributed"),
        ({"KEEN_RUN_MODE": "distributed"}, "error: KEEN_RUN_MODE=distributed needs PostgreSQL"),
        ({"KEEN_RUN_MODE": "queue"}, "error: invalid configuration: KEEN_RUN_MODE: Input should be"),
    ],
)
def test_keen_worker_refuses_a_setup_that_cannot_run_distributed_runs(
    tmp_path: Path, env: dict[str, str], expected: str
) -> None:
    result = run_keen("worker", cwd=tmp_path, env={"KEEN_HOME": str(tmp_path / "home"), **env}, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(expected), result.stderr
    assert "Traceback" not in result.stderr
