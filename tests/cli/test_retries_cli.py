"""An unreachable provider is not silent: each retry is an event shown as it happens, and the
final error names the endpoint, the variable that set it and the number of attempts."""

from __future__ import annotations

import json
import socket
import sqlite3
from pathlib import Path

from helpers import run_keen


def _closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_each_retry_is_an_event_and_the_failure_names_endpoint_variable_and_attempts(
    tmp_path: Path, keen_home: Path
) -> None:
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    result = run_keen(
        "breathe",
        "add a fizzbuzz module with tests",
        "--dir",
        "w",
        cwd=tmp_path,
        env={"ANTHROPIC_API_KEY": "sk-test", "ANTHROPIC_BASE_URL": endpoint, "KEEN_RETRY_BASE_DELAY": "0.01"},
    )
    assert result.returncode == 1, result.stderr
    shown = [line for line in result.stdout.splitlines() if "model.retrying" in line]
    assert len(shown) == 5
    assert f"model unreachable at {endpoint}, retrying in" in shown[0] and "attempt 2/6" in shown[0]
    assert "attempt 6/6" in shown[-1]
    rows = (
        sqlite3.connect(keen_home / "keen.db")
        .execute("select type, data from session_events order by seq")
        .fetchall()
    )
    retries = [json.loads(data) for type_, data in rows if type_ == "model.retrying"]
    assert [r["attempt"] for r in retries] == [1, 2, 3, 4, 5]
    assert {(r["kind"], r["endpoint"], r["endpoint_variable"], r["max_attempts"]) for r in retries} == {
        ("connection", endpoint, "ANTHROPIC_BASE_URL", 6)
    }
    finished = json.loads(rows[-1][1])
    assert rows[-1][0] == "session.finished" and finished["status"] == "failed"
    assert f"model unreachable at {endpoint} (from ANTHROPIC_BASE_URL) after 6 attempts" in finished["error"]
