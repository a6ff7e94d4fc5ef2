"""asyncio helpers that keen's recording depends on."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


async def uncancellable(work: Awaitable[T]) -> T:
    """Finish `work` even if the caller is cancelled meanwhile, then re-raise the cancellation.

    Recording an event must not stop halfway: a write that commits while its caller is
    cancelled would otherwise leave the in-memory `seq` counter, or a conversation rebuilt from
    the events, behind what is stored.
    """
    task = asyncio.ensure_future(work)
    cancelled = False
    while True:
        try:
            result = await asyncio.shield(task)
            break
        except asyncio.CancelledError:
            if task.done() and not task.cancelled():
                result = task.result()  # raises the task's own error, if any
                break
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError
    return result
