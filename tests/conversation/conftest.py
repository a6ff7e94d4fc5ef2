"""Fixtures for the conversation commands: a project to talk about and a real pseudo-terminal."""

from __future__ import annotations

import errno
import fcntl
import os
import pty
import re
import select
import signal
import struct
import termios
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from helpers import KEEN_BIN, git

ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()][0-9A-B]|\x1b[=>78]")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A git repository with a file whose content the conversation agent has to read to know."""
    path = tmp_path / "project"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    (path / "notes.txt").write_text("The secret word is marmalade.\n")
    (path / "README.md").write_text("# project\n")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "initial")
    return path


class Terminal:
    """`keen` running on a real pseudo-terminal (its controlling terminal), driven like a person
    would: type a line, wait for text to appear, press Ctrl-C or Ctrl-D."""

    def __init__(
        self, args: list[str], cwd: Path, env: dict[str, str], rows: int = 50, cols: int = 200
    ) -> None:
        pid, fd = pty.fork()
        if pid == 0:  # the child: its stdin/stdout/stderr are the terminal
            try:
                # Signals as a fresh terminal session has them, even when pytest itself was
                # started in the background (where the shell ignores SIGINT for it).
                for number in (signal.SIGINT, signal.SIGQUIT, signal.SIGTERM):
                    signal.signal(number, signal.SIG_DFL)
                signal.pthread_sigmask(signal.SIG_SETMASK, set())
                fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
                os.chdir(cwd)
                os.execve(str(KEEN_BIN), [str(KEEN_BIN), *args], env)
            finally:
                os._exit(127)
        self.pid = pid
        self.fd = fd
        self.raw = ""
        self.position = 0  # how much of the cleaned output `expect` has consumed
        self.exit_code: int | None = None

    @property
    def text(self) -> str:
        return ANSI.sub("", self.raw).replace("\r", "")

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return True
        try:
            data = os.read(self.fd, 65536)
        except OSError as exc:
            if exc.errno == errno.EIO:  # the child closed the terminal
                return False
            raise
        if not data:
            return False
        self.raw += data.decode("utf-8", errors="replace")
        return True

    def expect(self, pattern: str, timeout: float = 60) -> re.Match[str]:
        """Wait for `pattern` (a regex) in the output after what earlier calls consumed."""
        compiled = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            match = compiled.search(self.text, self.position)
            if match:
                self.position = match.end()
                return match
            if time.monotonic() > deadline or not self._read(min(0.2, max(deadline - time.monotonic(), 0))):
                match = compiled.search(self.text, self.position)
                if match:
                    self.position = match.end()
                    return match
                raise AssertionError(f"{pattern!r} did not appear; output so far:\n{self.text}")

    def wait_until_blocked(self, waiting_in: str, timeout: float = 30) -> None:
        """Wait until keen's main thread sleeps in the kernel where `waiting_in` says: "prompt"
        (readline's select) or "loop" (the event loop's epoll). A signal sent a moment before
        that can land between the prompt being drawn and the select starting, where neither
        CPython's readline nor asyncio.Runner sees it until the next input or timer; a person
        cannot hit that window, a test can."""
        names = {
            "prompt": ("poll_schedule_timeout", "do_select", "do_sys_poll"),
            "loop": ("epoll_wait", "ep_poll"),
        }
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            wchan = Path(f"/proc/{self.pid}/wchan").read_text()
            if any(name in wchan for name in names[waiting_in]):
                return
            time.sleep(0.01)
        raise AssertionError(f"keen never waited in {waiting_in}; output so far:\n{self.text}")

    def send(self, text: str) -> None:
        os.write(self.fd, text.encode())

    def line(self, text: str) -> None:
        self.send(text + "\r")  # Enter, as a keyboard sends it

    def wait(self, timeout: float = 60) -> int:
        """Read to the end and return the exit code."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                while self._read(0.05):
                    if not select.select([self.fd], [], [], 0)[0]:
                        break
                self.exit_code = os.waitstatus_to_exitcode(status)
                return self.exit_code
            self._read(0.1)
        raise AssertionError(f"keen did not exit; output:\n{self.text}")

    def close(self) -> None:
        if self.exit_code is None:
            try:
                os.kill(self.pid, 9)
                os.waitpid(self.pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        os.close(self.fd)


@pytest.fixture
def terminal() -> Iterator[Callable[..., Terminal]]:
    started: list[Terminal] = []

    def start(*args: str, cwd: Path, env: dict[str, str] | None = None) -> Terminal:
        full_env = {
            **os.environ,
            "NO_COLOR": "1",
            "COLUMNS": "200",
            "LINES": "50",
            "TERM": "xterm",
            **(env or {}),
        }
        term = Terminal(list(args), cwd, full_env)
        started.append(term)
        return term

    yield start
    for term in started:
        term.close()
