"""Opening files relative to a directory descriptor without following a symlink.

What a path names can change between a check and its use (another process may swap a directory
for a symlink at any moment); a name opened with `O_NOFOLLOW` relative to a directory already
open cannot be redirected. The workspace and the project walker build on these.
"""

from __future__ import annotations

import errno
import os
import stat

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused as not a regular file.
READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def open_dir(name: str, dir_fd: int) -> int:
    """The directory `name` inside `dir_fd`; a symlink raises `OSError(ELOOP)` or `ENOTDIR`."""
    return os.open(name, DIR_FLAGS, dir_fd=dir_fd)


def open_regular(name: str, dir_fd: int) -> int:
    """The regular file `name` inside `dir_fd`, opened for reading.

    A directory raises `IsADirectoryError`, a symlink `OSError(ELOOP)`, anything else that is
    not a regular file (FIFO, device, socket) `OSError(EINVAL)`.
    """
    fd = os.open(name, READ_FLAGS, dir_fd=dir_fd)
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, "is a directory", name)
        if not stat.S_ISREG(mode):
            raise OSError(errno.EINVAL, "not a regular file", name)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_at(dir_fd: int, name: str, limit: int) -> bytes | None:
    """Up to `limit` bytes of the regular file `name` in `dir_fd`; None when it cannot be read."""
    try:
        fd = open_regular(name, dir_fd)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        try:
            return handle.read(limit)
        except OSError:
            return None


def is_symlink_error(exc: OSError) -> bool:
    """Whether opening with O_NOFOLLOW failed because the name is (now) a symlink."""
    return exc.errno in (errno.ELOOP, errno.EMLINK)
