"""The model layer's modules import each other in one direction only (no cycle, none at call time)."""

from __future__ import annotations

import ast
from pathlib import Path

LLM = Path(__file__).resolve().parents[2] / "src" / "keen" / "llm"


def _imports(path: Path) -> set[str]:
    """The keen.llm modules a module imports, at the top or inside functions."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "keen.llm":
                found.update(f"keen.llm.{alias.name}" for alias in node.names)
            elif node.module.startswith("keen.llm."):
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("keen.llm."))
    return found


def _graph() -> dict[str, set[str]]:
    return {f"keen.llm.{path.stem}": _imports(path) for path in LLM.glob("*.py") if path.stem != "__init__"}


def test_the_llm_modules_import_each_other_without_a_cycle():
    graph = _graph()
    done: set[str] = set()

    def visit(module: str, trail: tuple[str, ...]) -> None:
        assert module not in trail, " -> ".join((*trail, module))
        if module in done:
            return
        for imported in graph.get(module, set()):
            visit(imported, (*trail, module))
        done.add(module)

    for module in graph:
        visit(module, ())


def test_the_conversation_types_depend_on_no_price_and_no_provider():
    assert _graph()["keen.llm.base"] <= {"keen.llm.memo"}
    assert _graph()["keen.llm.memo"] == set()
    assert "keen.llm.provider" not in _graph()["keen.llm.pricing"]
