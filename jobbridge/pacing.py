"""Long runs of synchronous work broken up, so the event loop serves other requests between.

A page of a hundred rows with long errors, or a history of a thousand small records to decode,
is many small steps that add up to far more than the 20 ms any one step may keep the loop.
"""

from __future__ import annotations

import asyncio
import time

#: how long a run of synchronous steps may keep the event loop before yielding, seconds:
#: several sources' reads take turns, so the loop waits for a few of these in a row
YIELD_EVERY_S = 0.001


class Pacer:
    """Yield to the event loop whenever a run of synchronous work has taken a few ms."""

    def __init__(self) -> None:
        self._since = time.perf_counter()

    async def tick(self) -> None:
        if time.perf_counter() - self._since > YIELD_EVERY_S:
            await asyncio.sleep(0)
            self._since = time.perf_counter()
