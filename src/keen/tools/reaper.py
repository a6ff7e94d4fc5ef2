"""The fallback containment for agent commands where bubblewrap cannot run.

Run as a script, stdlib only and without `site` (`python -I -S reaper.py KEEN_PID -- ARGV...`), it
becomes a child subreaper (`PR_SET_CHILD_SUBREAPER`), so every process the command starts —
daemons that `setsid` or double-fork included — stays its descendant. When the command's own
process exits, or keen asks (SIGTERM) or dies (`PR_SET_PDEATHSIG`), it kills every descendant
before it exits itself: nothing the command started outlives it, and the pipes close at once.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
from types import FrameType

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
MAX_KILL_ROUNDS = 200  # each round kills what the previous one's victims forked meanwhile


def _prctl(option: int, value: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(option, value, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), f"prctl({option}) failed")


def _descendants(root: int) -> list[int]:
    """Every live process below `root`, from one scan of /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    found: list[int] = []
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _reap() -> None:
    """Collect every child that has exited (orphans reparented to us included)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def kill_descendants() -> None:
    me = os.getpid()
    for _ in range(MAX_KILL_ROUNDS):
        victims = _descendants(me)
        if not victims:
            break
        for pid in victims:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        _reap()
    _reap()


def _on_signal(signum: int, frame: FrameType | None) -> None:
    kill_descendants()
    os._exit(128 + signum)


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        sys.stderr.write("usage: reaper.py PARENT_PID -- COMMAND [ARG...]\n")
        return 2
    parent, command = int(argv[0]), argv[2:]
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, _on_signal)
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # keen died before the death signal was armed
        return 128 + signal.SIGTERM
    pid = os.fork()
    if pid == 0:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, signal.SIG_DFL)
        try:
            os.execvp(command[0], command)
        except OSError as exc:
            sys.stderr.write(f"{command[0]}: {exc.strerror}\n")
            os._exit(127)
    while True:
        done, status = os.waitpid(-1, 0)
        if done == pid:
            break
    kill_descendants()
    code = os.waitstatus_to_exitcode(status)
    return code if code >= 0 else 128 - code  # killed by a signal: the shell's 128 + N


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
