"""What the census tests share: a source's adapter without a web app, the event loop's
worst lag while a census runs, and waiting for a census to end."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from jobbridge.census.model import CensusResult, CensusState
from jobbridge.census.store import CensusStore
from jobbridge.settings import SourceConfig
from jobbridge.sources import build_adapters


@asynccontextmanager
async def adapter_of(config: SourceConfig) -> AsyncIterator[Any]:
    """The adapter of one source, closed afterwards."""
    adapters = build_adapters((config,))
    adapter = adapters[config.name]
    try:
        yield adapter
    finally:
        await adapter.close()


class LagProbe:
    """The longest the event loop went without running a 1 ms ticker while it runs: in wall
    time (``worst``) and in the loop thread's own CPU time (``worst_cpu``, which other
    processes taking the CPU do not inflate)."""

    def __init__(self) -> None:
        self.worst = 0.0
        self.worst_cpu = 0.0
        self.ticks = 0
        #: the longest garbage collection meanwhile, in any thread (it holds every thread)
        self.worst_gc = 0.0
        self._gc_started = 0.0
        self._task: asyncio.Task[None] | None = None

    def _gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            self.worst_gc = max(self.worst_gc, time.perf_counter() - self._gc_started)

    async def _tick(self) -> None:
        while True:
            before, cpu = time.perf_counter(), time.thread_time()
            await asyncio.sleep(0.001)
            self.worst = max(self.worst, time.perf_counter() - before - 0.001)
            self.worst_cpu = max(self.worst_cpu, time.thread_time() - cpu)
            self.ticks += 1

    def __enter__(self) -> LagProbe:
        gc.callbacks.append(self._gc)
        self._task = asyncio.create_task(self._tick())
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._gc)
        assert self._task is not None
        self._task.cancel()


async def wait_done(
    store: CensusStore, timeout: float, seen: list[tuple[str, int, int]] | None = None
) -> CensusResult:
    """Poll the stored census until it is no longer running; every (state, read, total)
    polled goes into ``seen``."""
    deadline = time.monotonic() + timeout
    while True:
        result = await store.read()
        if result is not None and seen is not None:
            seen.append((result.state.value, result.read, result.total_at_start))
        if result is not None and result.state is not CensusState.RUNNING:
            return result
        assert time.monotonic() < deadline, f"the census did not end in {timeout} s: {result}"
        await asyncio.sleep(0.05)


def counts(result: CensusResult) -> dict[str, int]:
    return {c.name: c.count for c in result.names}
