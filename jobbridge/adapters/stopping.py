"""Stopping background tasks for good.

Python 3.11's ``asyncio.wait_for`` (inside redis-py) can swallow a cancel that races with a
reply (CPython gh-86296): a task cancelled once may carry on looping, and the event loop's
own shutdown then waits on it for ever. So a task is cancelled again until it has ended.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable

log = logging.getLogger(__name__)

#: how often a task that is still running is cancelled again
RECANCEL_S = 0.1


async def cancel_until_done(tasks: Iterable[asyncio.Task[object]], timeout: float) -> bool:
    """Cancel every task, again each ``RECANCEL_S`` while it runs, for at most ``timeout``
    seconds; whether all of them ended."""
    pending = {task for task in tasks if not task.done()}
    deadline = time.monotonic() + timeout
    while pending:
        left = deadline - time.monotonic()
        if left <= 0:
            log.warning("%d background task(s) still running after %.1f s", len(pending), timeout)
            return False
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=min(RECANCEL_S, left))
    return True
