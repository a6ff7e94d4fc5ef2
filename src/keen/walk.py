"""The project walker: what a project is made of, the way git would see it.

One walk and one skip list for the tools (tree, search) and for validation. It honours the
`.gitignore` of every directory on the way (a deeper one taking precedence, as in git) and
`.git/info/exclude`, and always leaves out dependency, cache and build folders. It walks through
directory descriptors and never follows a symlink, so a directory swapped for a symlink during
the walk cannot lead it out of the project.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from keen.fsat import open_dir, read_at

if TYPE_CHECKING:
    import pathspec

# Dependency, cache and build folders: never worth showing, searching or checking, ignored or not.
SKIP_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        ".venv",
        "venv",
        "node_modules",
        "__pycache__",
        "build",
        "dist",
        "target",
        ".tox",
        ".nox",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".eggs",
        "site-packages",
        ".next",
        ".nuxt",
        "coverage",
        "htmlcov",
        ".cache",
        ".idea",
        ".vscode",
    }
)
MAX_DEPTH = 100  # deeper directories are not entered: a hostile tree must not exhaust the stack
MAX_IGNORE_FILE_BYTES = 1024 * 1024


def skipped_dir(name: str) -> bool:
    return name in SKIP_DIRS or name.endswith(".egg-info")


@dataclass(frozen=True)
class Entry:
    rel: str  # POSIX path relative to the walk's root
    depth: int  # 1 for the children of the walk's start
    is_dir: bool
    link: str | None = None  # a symlink's target as written; None for anything else

    @property
    def name(self) -> str:
        return PurePosixPath(self.rel).name


@dataclass
class WalkStats:
    ignored: int = 0  # entries left out by .gitignore or the skip list
    hidden: int = 0  # dot-entries left out because hidden ones were not asked for


class IgnoreRules:
    """What git would ignore: every `.gitignore` on the way, then `.git/info/exclude`."""

    def __init__(self, root_fd: int) -> None:
        self._specs: dict[str, pathspec.GitIgnoreSpec | None] = {}
        self._exclude = _spec(_read_exclude(root_fd))

    def load(self, rel_dir: str, dir_fd: int) -> None:
        """Read the `.gitignore` of a directory about to be walked."""
        if rel_dir not in self._specs:
            self._specs[rel_dir] = _spec(read_at(dir_fd, ".gitignore", MAX_IGNORE_FILE_BYTES))

    def ignored(self, rel: str, *, is_dir: bool) -> bool:
        path = PurePosixPath(rel)
        if path.name == ".git" or (is_dir and skipped_dir(path.name)):  # .git is a file in worktrees
            return True
        suffix = "/" if is_dir else ""
        for base in path.parents:  # the nearest .gitignore with a matching pattern decides
            spec = self._specs.get(base.as_posix())
            if spec is not None:
                decision = spec.check_file(path.relative_to(base).as_posix() + suffix).include
                if decision is not None:
                    return decision
        if self._exclude is not None:
            return bool(self._exclude.check_file(rel + suffix).include)
        return False


def walk(
    root: Path,
    start: str = ".",
    *,
    max_depth: int | None = None,
    include_hidden: bool = True,
    stats: WalkStats | None = None,
) -> Iterator[Entry]:
    """Entries under `start` (relative to `root`, without symlinks) depth-first, directories
    before files, each by name.

    Symlinks are listed, never entered; unreadable directories are passed over. Nothing is
    yielded when `start` is not a directory reached without a symlink.
    """
    stats = stats if stats is not None else WalkStats()
    limit = MAX_DEPTH if max_depth is None else min(max_depth, MAX_DEPTH)
    try:
        root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    fds = [root_fd]
    try:
        rules = IgnoreRules(root_fd)
        rel = PurePosixPath(".")
        rules.load(".", root_fd)
        for part in PurePosixPath(start).parts:
            fds.append(open_dir(part, fds[-1]))
            rel = rel / part
            rules.load(rel.as_posix(), fds[-1])
        yield from _walk_dir(fds[-1], rel, 1, limit, include_hidden, rules, stats)
    except OSError:
        return
    finally:
        for fd in fds:
            os.close(fd)


def project_files(root: Path) -> list[str]:
    """Every file of the project (not ignored, not skipped), relative to `root`."""
    return [entry.rel for entry in walk(root) if not entry.is_dir]


def _walk_dir(
    fd: int,
    rel: PurePosixPath,
    depth: int,
    max_depth: int,
    include_hidden: bool,
    rules: IgnoreRules,
    stats: WalkStats,
) -> Iterator[Entry]:
    try:
        with os.scandir(fd) as it:
            children = [(c.name, c.is_dir(follow_symlinks=False), c.is_symlink()) for c in it]
    except OSError:
        return
    entries: list[Entry] = []
    for name, is_dir, is_link in children:
        child = (rel / name).as_posix()
        if not include_hidden and name.startswith("."):
            stats.hidden += 1
        elif rules.ignored(child, is_dir=is_dir):
            stats.ignored += 1
        else:
            entries.append(Entry(child, depth, is_dir, _link(fd, name) if is_link else None))
    entries.sort(key=lambda e: (not e.is_dir, e.name))
    for entry in entries:
        yield entry
        if entry.is_dir and depth < max_depth:
            try:
                child_fd = open_dir(entry.name, fd)
            except OSError:  # gone, or swapped for a symlink since it was listed
                continue
            try:
                rules.load(entry.rel, child_fd)
                yield from _walk_dir(
                    child_fd, PurePosixPath(entry.rel), depth + 1, max_depth, include_hidden, rules, stats
                )
            finally:
                os.close(child_fd)


def _link(dir_fd: int, name: str) -> str:
    try:
        return os.readlink(name, dir_fd=dir_fd)
    except OSError:
        return "?"


def _read_exclude(root_fd: int) -> bytes | None:
    fds: list[int] = []
    try:
        for part in (".git", "info"):
            fds.append(open_dir(part, fds[-1] if fds else root_fd))
        return read_at(fds[-1], "exclude", MAX_IGNORE_FILE_BYTES)
    except OSError:
        return None
    finally:
        for fd in fds:
            os.close(fd)


def _spec(data: bytes | None) -> pathspec.GitIgnoreSpec | None:
    if data is None:
        return None
    import pathspec  # loaded by the first walk that meets a .gitignore, not with every tool

    return pathspec.GitIgnoreSpec.from_lines(data.decode("utf-8", errors="replace").splitlines())
