"""The layers of ARCHITECTURE.md hold: no module imports from a layer above its own."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "keen"
BASE = {"config", "errors", "proc", "aio", "gitrepo", "walk", "text", "fsat", "secrets"}
SDKS = {"anthropic", "openai"}

# What each part of keen must never import (a top-level package or module of keen, or an SDK).
FORBIDDEN: dict[str, set[str]] = {
    "agent": {"store", "cli", "server", "runner", *SDKS},
    "tools": {"agent", "store", "cli", "server", "runner", *SDKS},
    "validation": {"agent", "store", "cli", "server", "runner", *SDKS},
    "events": {"agent", "tools", "store", "cli", "server", "runner", "llm", "validation", *SDKS},
    "store": {"agent", "tools", "cli", "server", "runner", "llm", "validation", *SDKS},
    "llm": {"agent", "tools", "store", "cli", "server", "runner", "validation"},
    "runner": {"cli", "server"},
    "billing": {"agent", "tools", "cli", "server", "runner", "validation", *SDKS},
}
for base in BASE:
    FORBIDDEN[base] = {
        "agent",
        "tools",
        "store",
        "cli",
        "server",
        "runner",
        "llm",
        "validation",
        "events",
        *SDKS,
    }


def _imports(path: Path) -> set[str]:
    """Top-level names imported by a module: `keen.x.y` gives `x`, a third-party `a.b` gives `a`."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            found.add(parts[1] if parts[0] == "keen" and len(parts) > 1 else parts[0])
    return found


def _layer(root: Path, path: Path) -> str:
    relative = path.relative_to(root)
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def violations(root: Path) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        forbidden = FORBIDDEN.get(_layer(root, path), set())
        for name in sorted(_imports(path) & forbidden):
            found.append(f"{path.relative_to(root)} imports {name}")
    return found


def test_no_module_imports_across_the_boundaries() -> None:
    found = violations(PACKAGE)
    assert not found, "\n".join(found)


def test_the_check_finds_an_import_across_a_boundary_even_inside_a_function(tmp_path: Path) -> None:
    (tmp_path / "agent").mkdir()
    (tmp_path / "agent" / "loop.py").write_text("def f():\n    from keen.store.repo import SqlEventStore\n")
    (tmp_path / "tools").mkdir()
    (tmp_path / "tools" / "git.py").write_text("import keen.agent.tree\nfrom keen.events import types\n")
    (tmp_path / "gitrepo.py").write_text("from keen.tools.shell import scrubbed_env\n")
    assert violations(tmp_path) == [
        "agent/loop.py imports store",
        "gitrepo.py imports tools",
        "tools/git.py imports agent",
    ]
