"""Which process runs a session: a lease in the store (owner + heartbeat) that any process can
read, so liveness never depends on where the session runs."""

from __future__ import annotations

import os
import socket
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

from keen.events.types import utcnow

# A running session renews its lease every few seconds; one not renewed for this long has no
# live process any more (it was killed, or its machine died) and may be resumed.
LEASE = timedelta(seconds=15)


class Leased(Protocol):
    """A root's lease columns (a `models.SessionRow` or a `sqlite_reads.SessionRecord`)."""

    @property
    def lease_owner(self) -> str | None: ...
    @property
    def heartbeat_at(self) -> datetime | None: ...


def lease_owner() -> str:
    """Who holds a lease: this process on this machine, unique even when a pid is reused."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def lease_fresh(row: Leased, lease: timedelta) -> bool:
    """Whether a process holds this root's lease and renewed it recently."""
    return bool(row.lease_owner) and row.heartbeat_at is not None and row.heartbeat_at > utcnow() - lease


def lease_alive(row: Leased, lease: timedelta = LEASE) -> bool:
    """Whether a live process runs this root: its lease was renewed lately and, when the owner
    is on this machine, that process still exists (so a `kill -9` is seen at once, not only when
    the lease runs out)."""
    if not lease_fresh(row, lease):
        return False
    host, _, rest = (row.lease_owner or "").partition(":")
    pid = rest.partition(":")[0]
    if host == socket.gethostname() and pid.isdigit():
        return _process_alive(int(pid))
    return True


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed process not yet reaped by its parent is a zombie: dead for our purposes
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True
