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
import sys
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
