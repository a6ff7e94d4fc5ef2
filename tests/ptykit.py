"""`keen` on a pseudo-terminal: started with the pty as its controlling terminal, read until a
prompt, and typed into once echo is off (what a person sees and types)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import select
import subprocess
import termios
import time
from collections.abc import Iterator
from pathlib import Path

from helpers import KEEN_BIN


def start_on_pty(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], int]:
    """The process and the pty's master end (the caller closes it)."""
    master, slave = pty.openpty()
    process = subprocess.Popen(
        [str(KEEN_BIN), *args],
        stdin=slave, stdout=slave, stderr=slave, cwd=cwd,
        env={**os.environ, "NO_COLOR": "1", **env}, start_new_session=True,
        preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),  # the pty is its terminal
    )  # fmt: skip
    os.close(slave)
    return process, master


@contextlib.contextmanager
def on_pty(args: list[str], cwd: Path, env: dict[str, str]) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """`start_on_pty`, and the process killed (if still running) and the pty closed after."""
    process, master = start_on_pty(args, cwd, env)
    try:
        yield process, master
    finally:
        if process.poll() is None:
            process.kill()
        os.close(master)


def wait_for_no_echo(fd: int, timeout: float = 30) -> None:
    """The prompt is written before echo is turned off: type only once it is."""
    deadline = time.monotonic() + timeout
    while termios.tcgetattr(fd)[3] & termios.ECHO:
        assert time.monotonic() < deadline, "echo was never turned off"
        time.sleep(0.01)


def read_until(fd: int, wanted: bytes, seen: bytes, timeout: float = 60) -> bytes:
    deadline = time.monotonic() + timeout
    while wanted not in seen:
        assert time.monotonic() < deadline, seen
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            try:
                seen += os.read(fd, 4096)
            except OSError:  # the other end closed
                break
    assert wanted in seen, seen
    return seen
