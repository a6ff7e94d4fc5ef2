"""Path confinement: the one place that decides whether a tool may touch a path."""

from __future__ import annotations

import os
from pathlib import Path

from keen.errors import PathEscapeError


class Workspace:
    """A directory the agent may work in. Every tool path goes through `resolve`."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).resolve()

    def resolve(self, path: str, *, write: bool = False) -> Path:
        """The absolute path for a workspace path, refusing anything outside the workspace.

        Refused: empty paths, paths that leave the workspace through `..` or an absolute path,
        symlinks (of the file or any parent) that point outside, and writes into `.git`.
        """
        if not isinstance(path, str) or not path.strip():
            raise PathEscapeError("path is empty")
        if "\x00" in path:
            raise PathEscapeError(f"path {path!r} contains a NUL byte")
        candidate = Path(os.path.normpath(self.root / path))  # absolute `path` replaces root
        if not _is_within(candidate, self.root):
            raise PathEscapeError(f"path {path!r} is outside the workspace {self.root}")
        real = Path(os.path.realpath(candidate))
        if not _is_within(real, self.root):
            raise PathEscapeError(f"path {path!r} leads outside the workspace through a symlink")
        if write and ".git" in candidate.relative_to(self.root).parts:
            raise PathEscapeError(f"path {path!r} is inside .git; git internals are not writable")
        return candidate

    def relative(self, path: Path) -> str:
        """The workspace-relative form of an absolute path inside the workspace."""
        rel = path.relative_to(self.root).as_posix()
        return rel or "."


def _is_within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents
