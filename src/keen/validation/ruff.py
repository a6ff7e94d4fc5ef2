"""ruff, the engine behind Python style, security (`S`), complexity (`C901`) and safe fixes.

The project's own ruff (in its virtualenv) is preferred: its configuration is written for that
version. Always run with `--output-format json` and read the JSON; `--no-fix` unless fixing, so a
project whose config says `fix = true` is not modified by a mere check; its cache in keen's
cache folder (`tool_cache`), so validation is as fast as a developer's cached run and leaves no
`.ruff_cache` behind in the workspace.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from keen.validation.external import ToolFailed, ToolUnavailable, find_ruff, run_tool, tail, tool_cache
from keen.validation.pyenv import project_venv
from keen.validation.report import FixSummary

SYNTAX_CODES = frozenset({None, "invalid-syntax", "E999"})


@dataclass(frozen=True)
class RuffDiagnostic:
    code: str | None
    message: str
    file: str  # relative to the project root when inside it
    line: int
    column: int
    safe_fix: bool

    @property
    def is_syntax_error(self) -> bool:
        return self.code in SYNTAX_CODES


async def ruff_check(
    root: Path,
    targets: Sequence[str],
    *,
    timeout: float,
    env: Mapping[str, str],
    select: Sequence[str] | None = None,
    fix: bool = False,
) -> list[RuffDiagnostic]:
    """Run `ruff check` on `targets` and return its diagnostics (after fixing, when `fix`)."""
    ruff = project_ruff(root, env) or find_ruff()
    if ruff is None:
        raise ToolUnavailable("ruff is not installed")
    cache = tool_cache("ruff")
    argv = [
        ruff,
        "check",
        *(["--cache-dir", str(cache)] if cache else ["--no-cache"]),
        "--output-format",
        "json",
    ]
    argv += ["--fix", "--no-unsafe-fixes"] if fix else ["--no-fix"]
    if select:
        argv += ["--select", ",".join(select)]
    if list(targets) != ["."]:
        argv.append("--force-exclude")  # explicit paths still honour the project's excludes
    argv += ["--", *targets]
    result = await run_tool(argv, cwd=root, timeout=timeout, env=env, writable=[cache] if cache else [])
    if result.timed_out:
        raise ToolFailed(f"ruff timed out after {timeout:g} s")
    if result.exit_code not in (0, 1):
        raise ToolFailed(f"ruff failed (exit {result.exit_code}): {tail(result.stderr or result.stdout)}")
    try:  # ruff always prints a JSON list; nothing at all means it did not run
        raw = json.loads(result.stdout)
    except ValueError as exc:
        raise ToolFailed(f"ruff printed no JSON: {tail(result.stderr or result.stdout)}") from exc
    return [_diagnostic(root, item) for item in raw]


def project_ruff(root: Path, env: Mapping[str, str]) -> str | None:
    """ruff from the project's own virtualenv, when it has one with ruff installed."""
    venv = project_venv(root, env)
    candidate = venv / "bin" / "ruff" if venv is not None else None
    return str(candidate) if candidate is not None and candidate.is_file() else None


async def apply_safe_fixes(
    root: Path, targets: Sequence[str], *, timeout: float, env: Mapping[str, str]
) -> FixSummary:
    """Apply ruff's safe fixes; count the diagnostics that went away and the files changed."""
    try:
        before = await ruff_check(root, targets, timeout=timeout, env=env)
    except (ToolUnavailable, ToolFailed) as exc:
        return FixSummary(reason=str(exc))
    fixable_files = sorted({d.file for d in before if d.safe_fix})
    if not fixable_files:
        return FixSummary()
    hashes = {f: _digest(root / f) for f in fixable_files}
    try:
        after = await ruff_check(root, targets, timeout=timeout, env=env, fix=True)
    except (ToolUnavailable, ToolFailed) as exc:
        return FixSummary(reason=str(exc))
    # Lines move when fixes apply, so compare per (file, rule) counts, not positions.
    gone = Counter((d.file, d.code) for d in before) - Counter((d.file, d.code) for d in after)
    changed = [f for f in fixable_files if _digest(root / f) != hashes[f]]
    return FixSummary(count=sum(gone.values()), files=changed)


def _diagnostic(root: Path, item: dict) -> RuffDiagnostic:
    rel = _relative(root, str(item.get("filename") or ""))
    location = item.get("location") or {}
    fix = item.get("fix") or {}
    return RuffDiagnostic(
        code=item.get("code"),
        message=str(item.get("message", "")),
        file=rel,
        line=int(location.get("row") or 0),
        column=int(location.get("column") or 0),
        safe_fix=fix.get("applicability") == "safe",
    )


@functools.lru_cache(maxsize=4096)
def _relative(root: Path, filename: str) -> str:
    """`filename` relative to the project; ruff prints absolute paths, one per diagnostic, and a
    suite's asserts alone can be hundreds of diagnostics in a few files."""
    path = Path(filename)
    for candidate in (path, path.resolve()):
        if candidate.is_relative_to(root):
            return candidate.relative_to(root).as_posix()
    return filename


def _digest(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return ""
