"""Path confinement: the one place that decides whether a tool may touch a path, and touches it.

A check on a path string followed by a use of the same string is a race: another process (a
command the agent started in the background, say) can swap a directory for a symlink in
between. So the file operations here never hand a path to the kernel to resolve. They open the
workspace root and walk the path one component at a time, each opened relative to the directory
before it with `O_NOFOLLOW`; a symlink met on the way is read and followed by hand, and only while
it stays beneath the root. The operation then acts on the final name relative to the last
directory opened. Writes go to a temporary file renamed over the target, so a hard link to a
file outside is replaced, never written through. Any path that resolves into `.git` (a symlink
`g -> .git` included) counts as `.git`.

This is what `openat2(RESOLVE_BENEATH)` does in the kernel, done in user space so that one code
path serves every POSIX system keen runs on.
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
import stat
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from keen.errors import PathEscapeError
from keen.fsat import is_symlink_error, open_dir, open_regular

MAX_SYMLINKS = 40  # as the kernel's own limit
RETRIES = 50  # a component that keeps changing between two system calls is given up on


@dataclass
class _Location:
    """Where a path leads: the final `name` inside the open directory `fds[-1]`.

    `dirs` are the real names of the directories from the root down to that one. `missing` are
    the path's components from the first one that does not exist (then `name` is empty).
    """

    fds: list[int]
    dirs: list[str]
    name: str
    missing: list[str] = field(default_factory=list)

    @property
    def dir_fd(self) -> int:
        return self.fds[-1]

    def rel(self) -> str:
        return "/".join(p for p in [*self.dirs, self.name, *self.missing] if p) or "."


class Workspace:
    """A directory the agent may work in. Every tool path goes through it."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).resolve()

    # -- checks ---------------------------------------------------------------------------------

    def resolve(self, path: str, *, write: bool = False) -> Path:
        """The absolute path for a workspace path, refusing anything outside the workspace.

        Refused: empty paths, paths that leave the workspace through `..` or an absolute path,
        symlinks (of the file or any parent) that point outside, and writes into `.git`. The
        answer is only a name: to touch the file, use the operations below.
        """
        candidate = self.root.joinpath(*self._parts(path))
        with self._at(path, write=write):
            return candidate

    def real(self, path: str) -> str:
        """The workspace-relative location of `path` with every symlink resolved."""
        with self._at(path) as loc:
            return loc.rel()

    def relative(self, path: Path) -> str:
        """The workspace-relative form of an absolute path inside the workspace."""
        rel = path.relative_to(self.root).as_posix()
        return rel or "."

    def stat(self, path: str) -> os.stat_result | None:
        """What `path` leads to (symlinks inside the workspace followed); None when nothing."""
        with self._at(path) as loc:
            return self._stat(loc)

    def lstat(self, path: str) -> os.stat_result | None:
        """What the final name of `path` is itself (a symlink is not followed); None when nothing."""
        with self._at(path, follow_last=False) as loc:
            return self._stat(loc)

    # -- operations -----------------------------------------------------------------------------

    def open(self, path: str) -> BinaryIO:
        """The regular file `path`, open for reading (the caller closes it)."""
        for _ in range(RETRIES):
            with self._at(path) as loc:
                self._require_name(loc)
                try:
                    return os.fdopen(open_regular(loc.name, loc.dir_fd), "rb")
                except OSError as exc:
                    if not is_symlink_error(exc):
                        raise
                    # It became a symlink after it was resolved: resolve it again.
        raise PathEscapeError(f"path {path!r} keeps changing; try again")

    def read(self, path: str, limit: int = -1) -> tuple[int, bytes]:
        """The size of the regular file `path` and its first `limit` bytes (all when -1)."""
        with self.open(path) as handle:
            return os.fstat(handle.fileno()).st_size, handle.read(limit)

    def write(self, path: str, data: bytes) -> None:
        """Replace (or create) the file `path` by renaming a new file over it.

        The parent directory must exist. An existing file keeps its permission bits.
        """
        with self._at(path, write=True) as loc:
            self._require_name(loc)
            current = self._stat(loc)
            if current is not None and stat.S_ISDIR(current.st_mode):
                raise IsADirectoryError(errno.EISDIR, "is a directory", path)
            mode = stat.S_IMODE(current.st_mode) if current is not None else 0o666
            temp = f".keen-{secrets.token_hex(6)}.tmp"
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            fd = os.open(temp, flags, mode, dir_fd=loc.dir_fd)
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                    if current is not None:
                        os.fchmod(handle.fileno(), mode)  # as it was, not as the umask says
                os.replace(temp, loc.name, src_dir_fd=loc.dir_fd, dst_dir_fd=loc.dir_fd)
            except BaseException:
                with suppress(OSError):
                    os.unlink(temp, dir_fd=loc.dir_fd)
                raise

    def make_parents(self, path: str) -> list[str]:
        """Create the missing parent directories of `path`; returns them, outermost first."""
        created: list[str] = []
        with self._at(path, write=True, create=created):
            return created

    def remove(self, path: str, *, recursive: bool = False) -> str:
        """Delete `path` (a symlink itself, not what it points to); returns what it was."""
        with self._at(path, write=True, follow_last=False) as loc:
            self._require_name(loc)
            current = self._stat(loc)
            if current is None:
                raise FileNotFoundError(errno.ENOENT, "does not exist", path)
            if not stat.S_ISDIR(current.st_mode):
                os.unlink(loc.name, dir_fd=loc.dir_fd)
                return "file"
            if not recursive:
                raise IsADirectoryError(errno.EISDIR, "is a directory", path)
            shutil.rmtree(loc.name, dir_fd=loc.dir_fd)  # descriptor-based: follows no symlink
            return "directory"

    def remove_empty_dir(self, path: str) -> None:
        with self._at(path, write=True, follow_last=False) as loc:
            self._require_name(loc)
            os.rmdir(loc.name, dir_fd=loc.dir_fd)

    # -- resolution -----------------------------------------------------------------------------

    def _parts(self, path: str) -> list[str]:
        """The components of `path` relative to the root, `..` applied as written."""
        if not isinstance(path, str) or not path.strip():
            raise PathEscapeError("path is empty")
        if "\x00" in path:
            raise PathEscapeError(f"path {path!r} contains a NUL byte")
        candidate = os.path.normpath(self.root / path)  # an absolute `path` replaces the root
        rel = os.path.relpath(candidate, self.root)
        if rel == os.pardir or rel.startswith(os.pardir + os.sep):
            raise PathEscapeError(f"path {path!r} is outside the workspace {self.root}")
        return [] if rel == os.curdir else rel.split(os.sep)

    @contextmanager
    def _at(
        self, path: str, *, write: bool = False, follow_last: bool = True, create: list[str] | None = None
    ) -> Iterator[_Location]:
        parts = self._parts(path)
        loc = _Location([os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)], [], "")
        try:
            self._walk(loc, path, parts, write, follow_last, create)
            if write:
                _refuse_git([*loc.dirs, loc.name, *loc.missing], path, parts)
            yield loc
        finally:
            for fd in loc.fds:
                os.close(fd)

    def _walk(
        self,
        loc: _Location,
        path: str,
        parts: list[str],
        write: bool,
        follow_last: bool,
        create: list[str] | None,
    ) -> None:
        todo = deque(parts)
        links = changes = 0
        while todo:
            part = todo.popleft()
            if part in ("", "."):
                continue
            if part == "..":  # only symlink targets still hold `..` here
                if not loc.dirs:
                    raise PathEscapeError(f"path {path!r} leads outside the workspace through a symlink")
                os.close(loc.fds.pop())
                loc.dirs.pop()
                continue
            last = not todo
            if last and not follow_last:
                loc.name = part
                return
            target = _readlink(part, loc.dir_fd)
            if target is _MISSING and last:
                loc.name = part
                return
            if target is _MISSING and create is None:
                loc.missing = [part, *todo]
                return
            if isinstance(target, str):
                links += 1
                if links > MAX_SYMLINKS:
                    raise PathEscapeError(f"path {path!r} has too many levels of symlinks")
                todo.extendleft(reversed(self._link_parts(loc, path, target)))
                continue
            if last:
                loc.name = part
                return
            try:
                if target is _MISSING and create is not None:
                    if write:  # before anything is made: a symlink may have led into .git
                        _refuse_git([*loc.dirs, part], path, parts)
                    os.mkdir(part, dir_fd=loc.dir_fd)
                    create.append("/".join([*loc.dirs, part]))
                loc.fds.append(open_dir(part, loc.dir_fd))
                loc.dirs.append(part)
            except (FileExistsError, FileNotFoundError) as exc:
                changes = _changed(changes, path, exc)
                todo.appendleft(part)
            except NotADirectoryError as exc:  # a file, or swapped for a symlink since readlink
                if _readlink(part, loc.dir_fd) is _NOT_LINK:
                    if create is None:  # nothing can be below a file
                        loc.missing = [part, *todo]
                        return
                    raise NotADirectoryError(
                        errno.ENOTDIR, f"{'/'.join([*loc.dirs, part])!r} is not a directory", path
                    ) from exc
                changes = _changed(changes, path, exc)
                todo.appendleft(part)

    def _link_parts(self, loc: _Location, path: str, target: str) -> list[str]:
        """The components a symlink's target stands for, starting over at the root if absolute."""
        if not os.path.isabs(target):
            return target.split("/")
        rel = os.path.relpath(os.path.normpath(target), self.root)
        if rel == os.pardir or rel.startswith(os.pardir + os.sep):
            raise PathEscapeError(f"path {path!r} leads outside the workspace through a symlink")
        while len(loc.fds) > 1:
            os.close(loc.fds.pop())
        loc.dirs.clear()
        return [] if rel == os.curdir else rel.split(os.sep)

    @staticmethod
    def _require_name(loc: _Location) -> None:
        if loc.missing:
            raise FileNotFoundError(errno.ENOENT, "does not exist", loc.rel())
        if not loc.name:
            raise IsADirectoryError(errno.EISDIR, "is the workspace root", ".")

    @staticmethod
    def _stat(loc: _Location) -> os.stat_result | None:
        """The final name itself: resolution has already followed what was to be followed."""
        if loc.missing:
            return None
        try:
            if not loc.name:
                return os.fstat(loc.dir_fd)
            return os.stat(loc.name, dir_fd=loc.dir_fd, follow_symlinks=False)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENAMETOOLONG):
                return None
            raise


_MISSING = object()
_NOT_LINK = object()


def _readlink(name: str, dir_fd: int) -> str | object:
    """A symlink's target, `_NOT_LINK` for anything else, `_MISSING` when nothing is there."""
    try:
        return os.readlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        return _MISSING
    except OSError as exc:
        if exc.errno == errno.EINVAL:
            return _NOT_LINK
        if exc.errno == errno.ENAMETOOLONG:  # cannot exist; creating it will fail clearly
            return _MISSING
        raise


def _refuse_git(resolved: list[str], path: str, parts: list[str]) -> None:
    if not any(p.casefold() == ".git" for p in resolved):
        return
    how = "is inside" if any(p.casefold() == ".git" for p in parts) else "leads through a symlink into"
    raise PathEscapeError(f"path {path!r} {how} .git; git internals are not writable")


def _changed(changes: int, path: str, exc: OSError) -> int:
    if changes >= RETRIES:
        raise PathEscapeError(f"path {path!r} keeps changing; try again") from exc
    return changes + 1
