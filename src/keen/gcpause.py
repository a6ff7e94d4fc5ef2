"""Pausing the cyclic garbage collector over bulk work that builds only acyclic objects.

Reading and replaying a long session log makes tens of thousands of events, dicts and messages
that all stay alive. Each collection the allocations trigger walks every live object (the
imported modules and the log so far) and finds nothing to free: on a 5,000-step session that
was a quarter of `keen sessions resume`'s start. Reference counting still frees what is dropped.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic collection inside the block; the collector's state is restored after it."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@contextmanager
def paused_until_kept() -> Iterator[Callable[[], None]]:
    """Pause the collector until the `keep` this yields is called (or the block ends). `keep`
    freezes every object alive then (`gc.freeze`) and collects again: for a command whose
    modules, log and rebuilt conversation live until it exits, later collections walk only what
    is new. Cyclic garbage alive at that moment is never freed, so keep right after the build."""
    enabled = gc.isenabled()
    gc.disable()
    kept = False

    def keep() -> None:
        nonlocal kept
        if not kept:
            kept = True
            gc.freeze()
            if enabled:
                gc.enable()

    try:
        yield keep
    finally:
        if not kept and enabled:
            gc.enable()
