"""Validation speed: each category of `keen validate` against running its tool directly.

Generates a Python project (a package and 300 pytest tests, in its own .venv) and a Node
project (300 `node --test` tests), then times, median of several runs taken in turns:
- each category alone, as the engine times it, against its tool run directly: pytest
  (`.venv/bin/python -m pytest -q`, as the project's developer runs it) for tests, `npm test`
  for the Node project's tests, `ruff check` (the project's rules, `--select S`, `--select
  C901`) for style, security and performance, `compileall` for syntax;
- the whole `keen validate --json` command (a fresh process, every category) against pytest alone.
Prints the figures and writes them to bench/results/validation_speed.json (not committed).

    python bench/validation_speed.py [--runs 5] [--tests 300]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import add_record_flag, write_results

KEEN = Path(sys.executable).parent / "keen"
RUFF = Path(sys.executable).parent / "ruff"
MODULES = 10


def python_project(root: Path, tests: int) -> None:
    """A package of MODULES modules and `tests` tests, with a .venv that has pytest."""
    (root / "benchpkg").mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "pyproject.toml").write_text('[project]\nname = "benchpkg"\nversion = "1.0"\n')
    (root / "README.md").write_text(
        "# benchpkg\n\nA generated package for timing validation.\n\n## Install\n\n    pip install -e .\n\n"
        "## Usage\n\n    from benchpkg.mod0 import f0\n"
    )
    (root / "benchpkg" / "__init__.py").write_text('"""Generated."""\n')
    per_module = tests // MODULES
    for m in range(MODULES):
        funcs = "".join(
            f'\n\ndef f{i}(x: int) -> int:\n    """Add {i}."""\n    return x + {i}\n'
            for i in range(per_module)
        )
        (root / "benchpkg" / f"mod{m}.py").write_text(f'"""Module {m}."""{funcs}')
        cases = "".join(
            f"\n\ndef test_f{i}():\n    assert mod.f{i}(1) == {i + 1}\n" for i in range(per_module)
        )
        (root / "tests" / f"test_mod{m}.py").write_text(f"from benchpkg import mod{m} as mod{cases}")
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    _venv_with_pytest(root / ".venv")
    (root / ".gitignore").write_text(".venv/\n")


def node_project(root: Path, tests: int) -> None:
    root.mkdir(parents=True)
    (root / "package.json").write_text(
        '{"name": "bench", "version": "1.0.0", "scripts": {"test": "node --test"}}'
    )
    (root / "test").mkdir()
    per_file = tests // MODULES
    for m in range(MODULES):
        cases = "".join(
            f'test("case {i}", () => assert.strictEqual({i} + 1, {i + 1}));\n' for i in range(per_file)
        )
        header = 'const test = require("node:test");\nconst assert = require("node:assert");\n'
        (root / "test" / f"t{m}.test.js").write_text(header + cases)


def _venv_with_pytest(venv: Path) -> None:
    uv = shutil.which("uv") or (Path(sys.executable).parent / "uv")
    if Path(uv).is_file():
        subprocess.run([str(uv), "venv", "-q", str(venv)], check=True)
        subprocess.run(
            [str(uv), "pip", "install", "-q", "--python", str(venv / "bin" / "python"), "pytest"], check=True
        )
    else:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "pytest"], check=True)


def timed(argv: list[str], cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run(argv, cwd=cwd, capture_output=True, check=False)
    return (time.perf_counter() - started) * 1000


def category(root: Path, name: str) -> Callable[[], float]:
    """One category alone, as the engine times it."""
    from keen.validation import validate_project

    def run() -> float:
        report = asyncio.run(validate_project(root, categories=[name]))
        return float(report.categories[name].duration_ms)

    return run


def paired(runs: int, keen: Callable[[], float], direct: Callable[[], float]) -> dict[str, float]:
    """Medians of keen and of the tool run directly, taken in turns (a busy machine drifts)."""
    keen(), direct()  # warm-up: file caches, pytest's first assertion rewrite
    keen_ms, direct_ms = [], []
    for _ in range(runs):
        keen_ms.append(keen())
        direct_ms.append(direct())
    k, d = statistics.median(keen_ms), statistics.median(direct_ms)
    return {"keen_ms": round(k, 1), "direct_ms": round(d, 1), "ratio": round(k / d, 2)}


def measure(work: Path, runs: int, tests: int) -> dict[str, Any]:
    py, js = work / "py", work / "js"
    python_project(py, tests)
    node_project(js, tests)
    python = str(py / ".venv" / "bin" / "python")

    def ruff(*select: str) -> Callable[[], float]:
        return lambda: timed([str(RUFF), "check", *select, "--output-format", "json", "."], py)

    comparisons = {
        "tests vs pytest": paired(
            runs, category(py, "tests"), lambda: timed([python, "-m", "pytest", "-q"], py)
        ),
        "style vs ruff check": paired(runs, category(py, "style"), ruff()),
        "security vs ruff --select S": paired(runs, category(py, "security"), ruff("--select", "S")),
        "performance vs ruff --select C901": paired(
            runs, category(py, "performance"), ruff("--select", "C901")
        ),
        "syntax vs python -m compileall": paired(
            runs,
            category(py, "syntax"),
            lambda: timed([python, "-m", "compileall", "-q", "-f", "benchpkg"], py),
        ),
        "node tests vs npm test": paired(runs, category(js, "tests"), lambda: timed(["npm", "test"], js)),
        "keen validate (all categories) vs pytest": paired(
            runs,
            lambda: timed([str(KEEN), "validate", "--dir", str(py), "--json"], py),
            lambda: timed([python, "-m", "pytest", "-q"], py),
        ),
    }
    return {"tests_per_project": tests, "runs": runs, "comparisons": comparisons}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tests", type=int, default=300)
    add_record_flag(parser)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        figures = measure(Path(tmp), args.runs, args.tests)
    path = write_results("validation_speed", figures, record=args.record)
    print(
        textwrap.dedent(f"""\
        {figures["tests_per_project"]} tests per project, median of {figures["runs"]} runs (ms):""")
    )
    for name, c in figures["comparisons"].items():
        print(
            f"  {name:<42} keen {c['keen_ms']:>8.1f}   direct {c['direct_ms']:>8.1f}   ratio {c['ratio']:4.2f}"
        )
    print(f"written to {path}")


if __name__ == "__main__":
    main()
