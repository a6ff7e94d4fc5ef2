"""Reading a long session back: `keen sessions logs`, `show --json`, `replay`, and `resume` up to
its first new model call, on a session of 5,000 steps.

A `keen breathe` subprocess runs a scripted session of N cheap steps whose last model call sleeps;
once every earlier step is stored it is killed with SIGKILL (an interrupted session, as after a
crash). Each read command then runs as a subprocess (what a person types), its output read
through a pipe; the figures are its wall time and its CPU time (steadier on a shared machine),
medians of `--repeat` runs. Resume is timed from its start to the start of its first new model
call (the script no longer sleeps), read from the stored events; each resume starts from a copy
of the interrupted session's home and workspace. keen keeps what a second process need not work
out again under `$KEEN_HOME/cache/` (resolved prices): the session's own `keen breathe` fills it,
as it does for a person, and `--cold` empties it before each resume (a first-ever resume).

`--baseline SRC` measures an earlier keen checkout (its `src/`) the same way, each command run
alternately with the two, so that both see the same machine; the speedups are then against it,
else against the figures measured before the session service.

    python bench/session_reads.py [--steps 5000] [--repeat 3] [--baseline ../old/src] [--cold] [--record]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _common import add_record_flag, make_repo, write_results

KEEN = [sys.executable, "-m", "keen"]
# The figures measured before the session service and its hot-path work (seconds).
BEFORE = {"logs": 3.2, "show_json": 1.6, "replay": 2.4, "resume_to_first_call": 1.5}


def write_script(path: Path, steps: int, *, sleep_last: bool) -> None:
    turns: list[dict[str, Any]] = [
        {"tool_calls": [{"name": "continue_work", "input": {"next_action": f"step {i + 1}"}}]}
        for i in range(steps - 1)
    ]
    last: dict[str, Any] = {"tool_calls": [{"name": "report_complete", "input": {"summary": "done"}}]}
    if sleep_last:
        last["delay_ms"] = 600_000
    turns.append(last)
    path.write_text(json.dumps({"agents": {"main": turns}, "context_window": 10_000_000}))


def stored_responses(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            row = conn.execute(
                "SELECT count(*) FROM session_events WHERE type = 'model.responded'"
            ).fetchone()
    except sqlite3.OperationalError:
        return 0
    return int(row[0])


def interrupted_session(work: Path, steps: int, env: dict[str, str]) -> str:
    """Run N-1 steps, kill the process inside step N's model call, and return the root id."""
    repo = work / "repo"
    make_repo(repo, 20)
    script = work / "script.json"
    write_script(script, steps, sleep_last=True)
    db = Path(env["KEEN_HOME"]) / "keen.db"
    command = [
        *KEEN,
        "breathe",
        "benchmark: a long session",
        "--dir",
        str(repo),
        "--model",
        f"scripted:{script}",
        "--max-iterations",
        str(steps + 10),
        "--gates",
        "off",
        "--json",
    ]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    started = time.monotonic()
    while stored_responses(db) < steps - 1:
        if process.poll() is not None:
            raise SystemExit(f"the session ended early (exit {process.returncode})")
        time.sleep(0.5)
    build_seconds = time.monotonic() - started
    time.sleep(0.5)  # the step's tool call and the next call's start are stored
    process.kill()
    process.wait()
    write_script(script, steps, sleep_last=False)
    with sqlite3.connect(db) as conn:
        (root,) = conn.execute("SELECT id FROM sessions WHERE parent_id IS NULL").fetchone()
    print(f"built a session of {steps - 1} stored steps in {build_seconds:.1f} s")
    return str(root)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds of one command."""
    cpu, started = children_cpu(), time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    took = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command[2:])} failed ({result.returncode}): {result.stderr[-400:]}")
    return took, children_cpu() - cpu


def first_new_call_seconds(db: Path, root: str, launched_at: float) -> float:
    """From `launched_at` (epoch seconds) to the start of the first model call after the resume."""
    with sqlite3.connect(db) as conn:
        (resumed_seq,) = conn.execute(
            "SELECT max(seq) FROM session_events WHERE root_id = ? AND type = 'session.resumed'", (root,)
        ).fetchone()
        ts, data = conn.execute(
            "SELECT ts, data FROM session_events WHERE root_id = ? AND seq > ? AND type = 'model.responded'"
            " ORDER BY seq LIMIT 1",
            (root, resumed_seq),
        ).fetchone()
    stamp = datetime.fromisoformat(ts)
    ended = (stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)).timestamp()
    return ended - json.loads(data)["duration_ms"] / 1000 - launched_at


class Subject:
    """One keen (this checkout, or `--baseline`'s source) with its own interrupted session."""

    def __init__(self, name: str, work: Path, steps: int, src: Path | None) -> None:
        self.name = name
        self.env = {**os.environ, "KEEN_HOME": str(work / "home"), "COLUMNS": "120"}
        # As an installed keen runs: from bytecode caches (the session's own run writes them),
        # not compiling its modules again in every command as PYTHONDONTWRITEBYTECODE would.
        self.env.pop("PYTHONDONTWRITEBYTECODE", None)
        if src is not None:
            self.env["PYTHONPATH"] = str(src)
        work.mkdir()
        self.root = interrupted_session(work, steps, self.env)
        self.samples: dict[str, list[tuple[float, float]]] = {}
        self.resumes: list[float] = []
        # A resume finishes the session: each one starts from a copy of the interrupted state.
        self.kept = {work / name: work / "interrupted" / name for name in ("home", "repo")}
        for live, kept in self.kept.items():
            shutil.copytree(live, kept, symlinks=True)

    def read(self, name: str, command: str, *flags: str) -> None:
        took = timed([*KEEN, "sessions", command, self.root, *flags], self.env)
        self.samples.setdefault(name, []).append(took)

    def resume(self, *, cold: bool) -> None:
        """Resume the interrupted session and time it to its first new model call."""
        for live, kept in self.kept.items():
            shutil.rmtree(live)
            shutil.copytree(kept, live, symlinks=True)
        if cold:
            shutil.rmtree(Path(self.env["KEEN_HOME"]) / "cache", ignore_errors=True)
        launched_at = time.time()
        timed([*KEEN, "sessions", "resume", self.root, "--json"], self.env)
        db = Path(self.env["KEEN_HOME"]) / "keen.db"
        self.resumes.append(first_new_call_seconds(db, self.root, launched_at))

    def figures(self) -> dict[str, Any]:
        out = {
            name: {
                "wall_s": round(statistics.median(w for w, _ in samples), 3),
                "cpu_s": round(statistics.median(c for _, c in samples), 3),
            }
            for name, samples in self.samples.items()
        }
        out["resume_to_first_call"] = {"wall_s": round(statistics.median(self.resumes), 3)}
        return out


READS = {"logs": ("logs",), "show_json": ("show", "--json"), "replay": ("replay", "--speed", "0")}


def measure(steps: int, repeat: int, work: Path, baseline: Path | None, *, cold: bool) -> dict[str, Any]:
    subjects = [Subject("keen", work / "keen", steps, None)]
    if baseline is not None:
        subjects.append(Subject("baseline", work / "baseline", steps, baseline))
    for _ in range(repeat):
        for name, args in READS.items():
            for subject in subjects:
                subject.read(name, *args)
        for subject in subjects:
            subject.resume(cold=cold)
    results = {subject.name: subject.figures() for subject in subjects}
    reference = results.get("baseline") or {name: {"wall_s": s} for name, s in BEFORE.items()}
    speedup = {
        name: round(reference[name]["wall_s"] / took["wall_s"], 2)
        for name, took in results["keen"].items()
        if took["wall_s"] > 0
    }
    return {
        "steps": steps,
        "repeat": repeat,
        "cold_cache": cold,
        "against": "baseline" if baseline is not None else "figures before the session service",
        "results": results,
        "before_seconds": BEFORE,
        "speedup_wall": speedup,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--baseline", type=Path, help="an earlier keen checkout's src/ to compare with")
    parser.add_argument("--cold", action="store_true", help="resume with an empty $KEEN_HOME/cache/")
    add_record_flag(parser)
    args = parser.parse_args()
    if args.steps < 2 or args.repeat < 1:
        parser.error("--steps must be at least 2 and --repeat at least 1")
    with tempfile.TemporaryDirectory() as tmp:
        figures = measure(args.steps, args.repeat, Path(tmp), args.baseline, cold=args.cold)
    path = write_results("session_reads_cold" if args.cold else "session_reads", figures, record=args.record)
    for name, took in figures["results"]["keen"].items():
        other = figures["results"].get("baseline", {}).get(name, {"wall_s": BEFORE[name]})
        print(
            f"{name}: {took['wall_s']:.3f} s wall"
            + (f", {took['cpu_s']:.3f} s CPU" if "cpu_s" in took else "")
            + f"; {figures['against']}: {other['wall_s']:.3f} s"
            + (f", {other['cpu_s']:.3f} s CPU" if "cpu_s" in other else "")
            + f" ({figures['speedup_wall'][name]}x)"
        )
    print(f"written to {path}")


if __name__ == "__main__":
    main()
