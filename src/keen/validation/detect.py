"""What a project is made of: its source files (minus ignored and vendored ones) and languages.

In a git work tree the file list comes from `git ls-files` (tracked plus untracked, not
ignored), which honours every .gitignore exactly; elsewhere the project walker of `keen.walk`
lists it. Dependency and build folders are always left out.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keen.errors import InputError
from keen.gitrepo import GitRepo
from keen.walk import SKIP_DIRS, project_files

PYTHON_SUFFIXES = frozenset({".py"})
JAVASCRIPT_SUFFIXES = frozenset({".js", ".mjs", ".cjs", ".jsx"})
TYPESCRIPT_SUFFIXES = frozenset({".ts", ".tsx", ".mts", ".cts"})

ESLINT_CONFIGS = (
    "eslint.config.js",
    "eslint.config.mjs",
    "eslint.config.cjs",
    "eslint.config.ts",
    ".eslintrc",
    ".eslintrc.js",
    ".eslintrc.cjs",
    ".eslintrc.json",
    ".eslintrc.yml",
    ".eslintrc.yaml",
)


@dataclass
class ProjectFiles:
    """The project's files as POSIX paths relative to `root`; `scope` narrows what is checked.

    `files` is the whole project (tests and language detection need it); the per-language
    lists and `checked` honour the scope.
    """

    root: Path
    files: list[str]
    is_git: bool
    scope: list[str] | None = None
    package_json: dict[str, Any] | None = None
    _lines: dict[str, int] = field(default_factory=dict, repr=False)

    @property
    def scoped(self) -> bool:
        return self.scope is not None

    @property
    def checked(self) -> list[str]:
        return [f for f in self.files if in_scope(f, self.scope)]

    def with_suffix(self, suffixes: frozenset[str], *, scoped: bool = True) -> list[str]:
        return [f for f in (self.checked if scoped else self.files) if Path(f).suffix in suffixes]

    @property
    def python(self) -> list[str]:
        return self.with_suffix(PYTHON_SUFFIXES)

    @property
    def javascript(self) -> list[str]:
        return self.with_suffix(JAVASCRIPT_SUFFIXES)

    @property
    def typescript(self) -> list[str]:
        return self.with_suffix(TYPESCRIPT_SUFFIXES)

    @property
    def has_tsconfig(self) -> bool:
        return (self.root / "tsconfig.json").is_file()

    @property
    def eslint_configured(self) -> bool:
        if any((self.root / name).is_file() for name in ESLINT_CONFIGS):
            return True
        return bool(self.package_json and "eslintConfig" in self.package_json)

    @property
    def languages(self) -> list[str]:
        langs = []
        has = {
            name: bool(self.with_suffix(suffixes, scoped=False))
            for name, suffixes in (
                ("python", PYTHON_SUFFIXES),
                ("javascript", JAVASCRIPT_SUFFIXES),
                ("typescript", TYPESCRIPT_SUFFIXES),
            )
        }
        if has["python"] or (self.root / "pyproject.toml").is_file() or (self.root / "setup.py").is_file():
            langs.append("python")
        if has["javascript"] or self.package_json is not None:
            langs.append("javascript")
        if has["typescript"] or self.has_tsconfig:
            langs.append("typescript")
        return langs

    def lines(self, rel: str) -> int:
        """Line count of a file (cached; 0 when unreadable)."""
        if rel not in self._lines:
            try:
                with open(self.root / rel, "rb") as handle:
                    self._lines[rel] = sum(1 for _ in handle)
            except OSError:
                self._lines[rel] = 0
        return self._lines[rel]


def is_test_file(rel: str) -> bool:
    """Test code by the usual conventions of pytest and the JavaScript runners."""
    path = Path(rel)
    name = path.name
    python_test = name.startswith("test_") and name.endswith(".py")
    if python_test or name.endswith("_test.py") or name == "conftest.py":
        return True
    if ".test." in name or ".spec." in name:
        return True
    return any(part in ("tests", "test", "__tests__", "testing") for part in path.parts[:-1])


def normalize_scope(root: Path, scope: list[str] | tuple[str, ...] | None) -> list[str] | None:
    """Scope entries as POSIX paths relative to `root`; refuses paths outside it or missing."""
    if not scope:
        return None
    out = []
    for entry in scope:
        candidate = Path(os.path.normpath(root / entry))
        if candidate != root and root not in candidate.parents:
            raise InputError(f"scope path {entry!r} is outside the project {root}")
        if not candidate.exists():
            raise InputError(f"scope path {entry!r} does not exist in {root}")
        rel = candidate.relative_to(root).as_posix()
        if rel == ".":
            return None  # the whole project
        out.append(rel)
    return out


def in_scope(rel: str, scope: list[str] | None) -> bool:
    return scope is None or any(rel == s or rel.startswith(s + "/") for s in scope)


async def scan_project(root: Path, scope: list[str] | None = None) -> ProjectFiles:
    """List the project's files (ignored and vendored ones left out), restricted to `scope`."""
    repo = GitRepo(root)
    is_git = await repo.is_repo()
    listed = await _git_files(repo) if is_git else None
    if listed is None:
        listed = project_files(root)
    files = sorted(f for f in listed if _usable(root, f))
    return ProjectFiles(
        root=root, files=files, is_git=is_git, scope=scope, package_json=_read_package_json(root)
    )


async def _git_files(repo: GitRepo) -> list[str] | None:
    # `-x` keeps git from descending into an un-ignored virtualenv or node_modules at all.
    skip = [arg for name in sorted(SKIP_DIRS) for arg in ("-x", name)]
    result = await repo.run(
        "ls-files", "-z", "--cached", "--others", "--exclude-standard", *skip, check=False
    )
    if not result.ok:
        return None
    return [p for p in result.stdout.split("\0") if p]


def _usable(root: Path, rel: str) -> bool:
    parts = Path(rel).parts
    if any(part in SKIP_DIRS or part.endswith(".egg-info") for part in parts[:-1]):
        return False
    path = root / rel
    if not path.is_file():  # deleted but still tracked, or a submodule
        return False
    # A symlink leading out of the project is not the project's code.
    real = Path(os.path.realpath(path))
    return root in real.parents


def _read_package_json(root: Path) -> dict[str, Any] | None:
    path = root / "package.json"
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
