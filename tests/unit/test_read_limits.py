"""Per-server read limits and the read deadline, without Redis (tests/integration/
test_slow_redis.py has the real servers)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from jobbridge.errors import SourceTimedOut, SourceUnavailable
from jobbridge.read_limits import READS_PER_SERVER, ReadLimits


class Client:
    def __init__(self, port: int) -> None:
        self.connection_pool = type("Pool", (), {"connection_kwargs": {"host": "h", "port": port}})


class Source:
    def __init__(self, name: str, port: int) -> None:
        self.source, self.client = name, Client(port)


@pytest.mark.slow
async def test_a_full_server_holds_up_no_other_and_its_queue_times_out() -> None:
    limits = ReadLimits(timeout_s=0.3)
    slow, other = Source("slow", 1), Source("other", 2)

    async def hold() -> None:
        # A read that keeps its slot past its deadline, as one whose cancel got lost does.
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            await asyncio.sleep(0.5)

    hung = [asyncio.ensure_future(limits.run(slow, hold)) for _ in range(READS_PER_SERVER)]
    await asyncio.sleep(0.01)
    start = time.monotonic()
    assert await limits.run(other, lambda: asyncio.sleep(0, "answer")) == "answer"
    assert time.monotonic() - start < 0.1
    # Waiting for a slot counts against the deadline.
    with pytest.raises(SourceTimedOut) as info:
        await limits.run(slow, lambda: asyncio.sleep(0))
    assert isinstance(info.value, SourceUnavailable)
    assert info.value.detail == "timed out after 0.3 s"
    results = await asyncio.gather(*hung, return_exceptions=True)
    assert all(isinstance(r, SourceTimedOut) for r in results)
    await asyncio.sleep(0.6)  # the abandoned reads end


async def test_a_read_that_swallows_its_cancel_is_given_up_at_the_deadline() -> None:
    # What redis-py's asyncio.wait_for can do on Python 3.11 (CPython gh-86296).
    ended = asyncio.Event()

    async def stubborn() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            await asyncio.sleep(0.3)
        ended.set()

    start = time.monotonic()
    with pytest.raises(SourceTimedOut):
        await ReadLimits(timeout_s=0.1).run(Source("s", 1), stubborn)
    assert time.monotonic() - start < 0.25
    await asyncio.wait_for(ended.wait(), 2)  # kept alive until it ended


async def test_a_caller_that_goes_away_cancels_its_read() -> None:
    cancelled = asyncio.Event()

    async def read() -> Any:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    caller = asyncio.ensure_future(ReadLimits(timeout_s=5).run(Source("s", 1), read))
    await asyncio.sleep(0.05)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    await asyncio.wait_for(cancelled.wait(), 1)
