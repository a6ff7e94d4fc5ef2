"""A session's workspace as its owner reads it over the API: its files, one file, its diff
against the start commit and a tarball of it.

The agent's commands may still be running in the workspace, swapping a directory for a symlink
to somewhere else at any moment, so nothing here hands a workspace path to the kernel to
resolve: listing goes through `keen.walk` (directory descriptors, symlinks never entered) and
every file is opened through `keen.tools.workspace.Workspace`, the one confinement keen has.
"""

from __future__ import annotations

import asyncio
import errno
import io
import os
import queue
import stat
import tarfile
import tempfile
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from keen.errors import InputError, NotFoundError, PathEscapeError
from keen.gitrepo import GitRepo, git_env
from keen.tools.workspace import Workspace
from keen.walk import walk

MAX_LISTED = 5000
MAX_FILE_BYTES = 5 * 1024 * 1024
CHUNK = 64 * 1024
_END = b""


@dataclass(frozen=True)
class FileEntry:
    path: str
    type: str  # "file", "dir" or "symlink"
    size: int | None = None
    target: str | None = None  # a symlink's target as written


def workspace_of(path: str) -> Workspace:
    root = Path(path)
    if not root.is_dir():
        raise NotFoundError("the session's workspace is gone")
    return Workspace(root)


def list_files(workspace: Workspace, limit: int = MAX_LISTED) -> tuple[list[FileEntry], bool]:
    """The workspace's entries as git would show them (ignored and dependency folders left out);
    True when there were more than `limit`."""
    entries: list[FileEntry] = []
    for entry in walk(workspace.root):
        if len(entries) >= limit:
            return entries, True
        if entry.link is not None:
            entries.append(FileEntry(entry.rel, "symlink", target=entry.link))
        elif entry.is_dir:
            entries.append(FileEntry(entry.rel, "dir"))
        else:
            found = _lstat(workspace, entry.rel)
            entries.append(FileEntry(entry.rel, "file", found.st_size if found else None))
    return entries, False


def _lstat(workspace: Workspace, rel: str) -> os.stat_result | None:
    try:
        return workspace.lstat(rel)
    except (OSError, PathEscapeError):
        return None


def read_file(workspace: Workspace, path: str, limit: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of the regular file `path` (symlinks inside the workspace followed)."""
    try:
        size, data = workspace.read(path, limit + 1)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            raise NotFoundError(f"no file {path!r} in the workspace") from None
        raise InputError(f"{path!r} is not a regular file of the workspace") from None
    if size > limit or len(data) > limit:
        raise InputError(
            f"{path!r} is {size} bytes, over the {limit} bytes this route reads; download the archive",
            details={"size": size, "limit": limit},
        )
    return data


async def diff(workspace: Workspace, start_commit: str) -> str:
    """Everything changed since `start_commit`: commits, the work tree and new files, as a
    patch (read through a temporary index, so the agent's own index is left alone)."""
    repo = GitRepo(workspace.root)
    with tempfile.TemporaryDirectory(prefix="keen-diff-") as tmp:
        env = {**git_env(), "GIT_INDEX_FILE": str(Path(tmp) / "index")}
        await repo.run("read-tree", "HEAD", env=env)
        await repo.run("add", "--all", env=env)
        result = await repo.run(
            "diff", "--cached", "--no-ext-diff", "--no-textconv", "--binary", start_commit, "--", env=env
        )
    return result.stdout


async def archive(workspace: Workspace) -> AsyncIterator[bytes]:
    """The workspace as a gzipped tarball, made while it is sent (at most a few chunks ahead)."""
    chunks: queue.Queue[bytes | BaseException] = queue.Queue(maxsize=8)
    stop = threading.Event()
    worker = threading.Thread(target=_write_archive, args=(workspace, chunks, stop), daemon=True)
    worker.start()
    try:
        while True:
            item = await asyncio.to_thread(chunks.get)
            if isinstance(item, BaseException):
                raise item
            if item is _END:
                return
            yield item
    finally:
        stop.set()
        while not chunks.empty():  # let a blocked writer see the stop
            chunks.get_nowait()


class _Sink(io.RawIOBase):
    def __init__(self, chunks: queue.Queue[bytes | BaseException], stop: threading.Event) -> None:
        self.chunks = chunks
        self.stop = stop
        self.buffer = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        if self.stop.is_set():
            raise BrokenPipeError("the archive's reader went away")
        self.buffer += data
        while len(self.buffer) >= CHUNK:
            self._put(bytes(self.buffer[:CHUNK]))
            del self.buffer[:CHUNK]
        return len(data)

    def flush_all(self) -> None:
        if self.buffer:
            self._put(bytes(self.buffer))
            self.buffer.clear()

    def _put(self, item: bytes | BaseException) -> None:
        while not self.stop.is_set():
            try:
                self.chunks.put(item, timeout=0.5)
                return
            except queue.Full:
                continue
        raise BrokenPipeError("the archive's reader went away")


def _write_archive(
    workspace: Workspace, chunks: queue.Queue[bytes | BaseException], stop: threading.Event
) -> None:
    sink = _Sink(chunks, stop)
    try:
        with tarfile.open(fileobj=sink, mode="w|gz") as tar:
            for entry in walk(workspace.root):
                info = tarfile.TarInfo(entry.rel)
                if entry.link is not None:
                    info.type, info.linkname = tarfile.SYMTYPE, entry.link
                    tar.addfile(info)
                elif entry.is_dir:
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    tar.addfile(info)
                else:
                    _add_file(tar, workspace, entry.rel, info)
        sink.flush_all()
        sink._put(_END)
    except BrokenPipeError:
        return
    except BaseException as exc:  # handed to the reader, which raises it
        try:
            sink._put(exc)
        except BrokenPipeError:
            return


def _add_file(tar: tarfile.TarFile, workspace: Workspace, rel: str, info: tarfile.TarInfo) -> None:
    try:
        handle = workspace.open(rel)
    except (OSError, PathEscapeError):
        return  # gone, or swapped for something that leads outside: left out
    with handle:
        found = os.fstat(handle.fileno())
        if not stat.S_ISREG(found.st_mode):
            return
        info.size, info.mtime = found.st_size, int(found.st_mtime)
        info.mode = 0o755 if found.st_mode & 0o100 else 0o644
        tar.addfile(info, _Exactly(handle, found.st_size))


class _Exactly(io.RawIOBase):
    """`size` bytes of `handle`, padded with zeros if it shrank meanwhile (tar needs the size
    it was told)."""

    def __init__(self, handle: BinaryIO, size: int) -> None:
        self.handle = handle
        self.left = size

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if self.left <= 0:
            return b""
        want = self.left if n < 0 else min(n, self.left)
        data = self.handle.read(want) or b""
        if len(data) < want:
            data += b"\0" * (want - len(data))
        self.left -= len(data)
        return data
