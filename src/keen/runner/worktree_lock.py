"""One session per work tree, held by an OS file lock: the kernel drops it when the process
holding it exits, so a crashed or killed session never leaves the work tree locked."""

from __future__ import annotations

import fcntl
import hashlib
import os
from pathlib import Path

from keen.errors import WorkspaceError


class WorktreeLock:
    def __init__(self, locks_dir: Path, workspace: Path) -> None:
        digest = hashlib.sha256(str(workspace.resolve()).encode()).hexdigest()[:32]
        self.path = locks_dir / f"{digest}.lock"
        self.workspace = workspace
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise `WorkspaceError` naming the session that holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 200).decode(errors="replace").strip() or "another keen process"
            os.close(fd)
            raise WorkspaceError(
                f"{holder} is already running on {self.workspace}; wait for it to end, cancel it, "
                "or use another --dir"
            ) from None
        self._fd = fd

    def describe(self, holder: str) -> None:
        """Say who holds the lock (shown to a second session that is refused)."""
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, holder.encode(), 0)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
