"""documentation: a substantive README (install and usage sections) and docstring coverage.

Score: the README gives up to 40 (present, more than a stub, an install section, a usage
section, 10 each) and docstring coverage of public Python functions, classes and methods up to
60. A project with no public Python definitions is judged on its README alone (scaled to 100).
The category fails below 60.
"""

from __future__ import annotations

import ast
import asyncio
import re
from dataclasses import dataclass
from pathlib import Path

from keen.validation.context import CheckContext
from keen.validation.detect import is_test_file
from keen.validation.report import CategoryResult, Finding, graded

NAME = "documentation"
PASS_SCORE = 60
STUB_WORDS = 50
README_POINTS = 40
DOCSTRING_POINTS = 60

_INSTALL_HEADING = re.compile(r"(?i)install|set ?up|getting started|requirements")
_INSTALL_COMMAND = re.compile(
    r"(?i)\b(?:pip|pipx|uv|npm|yarn|pnpm|poetry|cargo|go)\s+(?:install|add|i|sync)\b"
)
_USAGE_HEADING = re.compile(
    r"(?i)usage|example|quick ?start|getting started|how to|\brun|commands|\bcli\b|\bapi\b"
)
_RST_UNDERLINE = re.compile(r"^([=\-~^\"'`#*+])\1{2,}\s*$")


@dataclass
class ReadmeFacts:
    path: str | None
    words: int = 0
    has_install: bool = False
    has_usage: bool = False

    @property
    def points(self) -> int:
        if self.path is None:
            return 0
        return 10 + 10 * (self.words >= STUB_WORDS) + 10 * self.has_install + 10 * self.has_usage


async def check(ctx: CheckContext) -> CategoryResult:
    readme = read_readme(ctx.root)
    sources = [f for f in ctx.project.python if not is_test_file(f)]
    documented, undocumented = await asyncio.to_thread(docstring_coverage, ctx.root, sources)
    public = documented + len(undocumented)

    findings = _readme_findings(readme)
    findings += [
        Finding(
            f"public {kind} {name} has no docstring",
            file=rel,
            line=line,
            rule="missing-docstring",
            severity="info",
            tool="ast",
        )
        for rel, line, kind, name in undocumented
    ]
    if public:
        coverage = documented / public
        score = round(readme.points + DOCSTRING_POINTS * coverage)
    else:
        coverage = None
        score = round(readme.points * 100 / README_POINTS)
    status = graded(bool(findings), score, PASS_SCORE)
    details = {
        "readme": readme.path,
        "readme_words": readme.words,
        "readme_has_install": readme.has_install,
        "readme_has_usage": readme.has_usage,
        "public_definitions": public,
        "documented": documented,
        "docstring_coverage": round(coverage, 3) if coverage is not None else None,
    }
    coverage_part = f"docstrings on {documented}/{public} public definitions" if public else "no Python API"
    return CategoryResult(NAME, status, score, f"{_describe(readme)}; {coverage_part}", findings, details)


def _describe(readme: ReadmeFacts) -> str:
    if readme.path is None:
        return "no README"
    missing = [part for part, ok in (("install", readme.has_install), ("usage", readme.has_usage)) if not ok]
    lacking = f", missing {' and '.join(missing)}" if missing else ""
    return f"{readme.path} ({readme.words} words{lacking})"


def read_readme(root: Path) -> ReadmeFacts:
    candidates = sorted(
        (p for p in root.iterdir() if p.is_file() and p.name.lower().startswith("readme")),
        key=lambda p: (p.suffix.lower() not in (".md", ".rst"), p.name),
    )
    if not candidates:
        return ReadmeFacts(path=None)
    path = candidates[0]
    text = path.read_text(errors="replace")
    headings = _headings(text)
    return ReadmeFacts(
        path=path.name,
        words=len(text.split()),
        has_install=any(_INSTALL_HEADING.search(h) for h in headings) or bool(_INSTALL_COMMAND.search(text)),
        has_usage=any(_USAGE_HEADING.search(h) for h in headings),
    )


def _headings(text: str) -> list[str]:
    lines = text.splitlines()
    out = [line.lstrip("#").strip() for line in lines if line.startswith("#")]
    # reStructuredText and setext Markdown: a title line underlined with === or ---
    out += [
        lines[i - 1].strip()
        for i in range(1, len(lines))
        if _RST_UNDERLINE.match(lines[i]) and lines[i - 1].strip()
    ]
    return out


def _readme_findings(readme: ReadmeFacts) -> list[Finding]:
    if readme.path is None:
        return [
            Finding(
                "no README: add one that says what the project is, how to install and use it",
                rule="readme-missing",
                severity="medium",
                tool="keen",
            )
        ]
    out = []
    if readme.words < STUB_WORDS:
        out.append(
            Finding(
                f"README is a stub ({readme.words} words)",
                file=readme.path,
                rule="readme-stub",
                severity="low",
                tool="keen",
            )
        )
    if not readme.has_install:
        out.append(
            Finding(
                "README has no installation section",
                file=readme.path,
                rule="readme-install",
                severity="low",
                tool="keen",
            )
        )
    if not readme.has_usage:
        out.append(
            Finding(
                "README has no usage section",
                file=readme.path,
                rule="readme-usage",
                severity="low",
                tool="keen",
            )
        )
    return out


def docstring_coverage(root: Path, files: list[str]) -> tuple[int, list[tuple[str, int, str, str]]]:
    """(documented count, undocumented [(file, line, kind, name)]) over public definitions."""
    documented = 0
    missing: list[tuple[str, int, str, str]] = []
    for rel in files:
        try:
            tree = ast.parse((root / rel).read_bytes(), filename=rel)
        except (OSError, SyntaxError, ValueError):
            continue  # unreadable or broken files are the syntax category's business
        for node, qualname in _public_definitions(tree):
            if ast.get_docstring(node):
                documented += 1
            else:
                kind = "class" if isinstance(node, ast.ClassDef) else "function"
                missing.append((rel, node.lineno, kind, qualname))
    return documented, missing


_Function = ast.FunctionDef | ast.AsyncFunctionDef
_Definition = _Function | ast.ClassDef


def _public_definitions(tree: ast.Module) -> list[tuple[_Definition, str]]:
    out: list[tuple[_Definition, str]] = []
    for node in tree.body:
        if not isinstance(node, _Definition) or node.name.startswith("_"):
            continue
        out.append((node, node.name))
        if isinstance(node, ast.ClassDef):
            out += [
                (child, f"{node.name}.{child.name}")
                for child in node.body
                if isinstance(child, _Function) and not child.name.startswith("_")
            ]
    return out
