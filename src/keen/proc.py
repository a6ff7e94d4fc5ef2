"""Running external processes: own process group, no stdin, timeout, whole-group kill.

Every subprocess keen starts for the agent or for validation goes through `run_process`, so a
timeout or a cancellation (Ctrl-C, API cancel) always kills the command and everything it
spawned, never leaving a `sleep 60` behind. The process group alone does not hold a daemon that
calls `setsid`: agent commands therefore run under `keen.tools.sandbox`, whose PID namespace (or
subreaper) ends everything when the command ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

OUTPUT_CAP_BYTES = 8 * 1024 * 1024  # per stream; beyond this output is dropped (the tail is kept)


@dataclass
class ProcessResult:
    exit_code: int | None  # None when killed for the timeout
    stdout: str
    stderr: str
    duration_ms: int
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


async def run_process(
    argv: Sequence[str],
    *,
    cwd: Path | str,
    timeout: float,
    env: Mapping[str, str] | None = None,
    grace: float = 0.0,
) -> ProcessResult:
    """Run `argv` (no shell) in its own session; kill the group on timeout or cancellation.

    With `grace`, the leader is first sent SIGTERM and given that many seconds to end what it
    supervises (the sandbox's subreaper kills every descendant on SIGTERM) before the SIGKILL.
    Raises `FileNotFoundError` when the program does not exist.
    """
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=str(cwd),
        env=dict(env) if env is not None else None,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    stdout_task = asyncio.ensure_future(_read_capped(proc.stdout))
    stderr_task = asyncio.ensure_future(_read_capped(proc.stderr))
    timed_out = False
    try:
        try:
            await asyncio.wait_for(proc.wait(), timeout=timeout)
        except TimeoutError:
            timed_out = True
            await _stop(proc, grace)
    except BaseException:
        # Cancelled (Ctrl-C, API cancel) or anything else: nothing may outlive the call.
        if grace <= 0:
            kill_group(proc.pid)  # at once, not in a task: the event loop may be closing
        with contextlib.suppress(Exception):
            await asyncio.shield(_stop(proc, grace))
        stdout_task.cancel()
        stderr_task.cancel()
        raise
    # The group may hold the pipes open after the leader exits (a background child).
    kill_group(proc.pid)
    _, pending = await asyncio.wait({stdout_task, stderr_task}, timeout=5)
    for task in pending:  # a daemon that left the group still holds the pipe: stop reading
        task.cancel()
    stdout, stderr = await asyncio.gather(stdout_task, stderr_task)
    return ProcessResult(
        exit_code=None if timed_out else proc.returncode,
        stdout=stdout,
        stderr=stderr,
        duration_ms=int((time.perf_counter() - started) * 1000),
        timed_out=timed_out,
    )


async def _stop(proc: asyncio.subprocess.Process, grace: float) -> None:
    if grace > 0 and proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(proc.wait()), timeout=grace)
    kill_group(proc.pid)
    await proc.wait()


def kill_group(pid: int) -> None:
    """SIGKILL the process group led by `pid` (ignored when it is already gone)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


async def _read_capped(stream: asyncio.StreamReader | None) -> str:
    if stream is None:
        return ""
    chunks: list[bytes] = []
    size = 0
    dropped = 0
    while True:
        try:
            chunk = await stream.read(65536)
        except (asyncio.CancelledError, ConnectionError):
            break
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        while size > OUTPUT_CAP_BYTES and len(chunks) > 1:
            dropped += len(chunks[0])
            size -= len(chunks.pop(0))
    text = b"".join(chunks).decode("utf-8", errors="replace")
    if dropped:
        text = f"[... {dropped} bytes of earlier output dropped ...]\n{text}"
    return text
