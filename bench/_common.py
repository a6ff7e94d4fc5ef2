"""What every benchmark shares: percentiles and writing figures with the machine they ran on.

A run writes bench/results/runs/<name>.json (ignored by git, so benchmarking never dirties the
checkout). The reference figures committed in bench/results/<name>.json are replaced only when
a benchmark is run with `--record`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"
RUNS = RESULTS / "runs"


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(len(ordered) * fraction), len(ordered) - 1)]


def add_record_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--record",
        action="store_true",
        help="replace the committed reference figures in bench/results/ (default: bench/results/runs/)",
    )


def write_results(name: str, figures: dict[str, Any], *, record: bool = False) -> Path:
    """Write `figures` (plus the machine) to bench/results/runs/<name>.json, or with `record` to
    the committed bench/results/<name>.json, and return the path."""
    figures["machine"] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }
    folder = RESULTS if record else RUNS
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    path.write_text(json.dumps(figures, indent=2) + "\n")
    return path


@dataclass
class SessionRun:
    """A benchmarked session: its root id, its stored events and its wall time."""

    session_id: str
    events: list[Any]
    wall_seconds: float


async def run_session(vision: str, directory: Path, model: str, **limits: Any) -> SessionRun:
    """Create and run one session through the session service, as `keen breathe` does, and
    check that it completed. `limits` override the benchmark defaults (no gates, no web search)."""
    from keen.config import get_settings
    from keen.runner.options import make_options
    from keen.runner.sessions import SessionService

    settings = get_settings()
    options = make_options(
        settings,
        vision=vision,
        directory=directory,
        model=model,
        **{
            "max_iterations": 1000,
            "budget": "1000",
            "phase": "EXPLORE",
            "max_depth": 2,
            "gates": "off",
            "web_search": False,
            "allow_dirty": False,
            **limits,
        },
    )
    async with SessionService(settings) as service:
        spec = await service.create(options)
        started = time.perf_counter()
        result = await service.run(spec.session_id)
        wall = time.perf_counter() - started
        events = await service.events(spec.session_id)
    assert result.status == "completed", result.summary
    return SessionRun(spec.session_id, events, wall)


def make_repo(path: Path, files: int) -> None:
    """A git repository of `files` small Python modules on branch main, with one commit."""
    path.mkdir(parents=True)
    for i in range(files):
        target = path / f"pkg{i % 20}" / f"mod{i}.py"
        target.parent.mkdir(exist_ok=True)
        target.write_text(f'"""Module {i}."""\n\nVALUE = {i}\n')
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "b",
        "GIT_AUTHOR_EMAIL": "b@b",
        "GIT_COMMITTER_NAME": "b",
        "GIT_COMMITTER_EMAIL": "b@b",
    }
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", f"{files} files"]):
        subprocess.run(["git", *args], cwd=path, env=env, check=True)
