"""Identical reads share one call."""

from __future__ import annotations

import asyncio

import pytest

from jobbridge.service import Coalescer


async def test_concurrent_callers_share_one_load() -> None:
    cache = Coalescer(ttl_s=10)
    calls = 0

    async def load() -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        return 7

    results = await asyncio.gather(*(cache.get("k", load) for _ in range(50)))
    assert results == [7] * 50
    assert calls == 1
    assert await cache.get("k", load) == 7
    assert calls == 1


async def test_expired_results_reload_and_invalidate_forgets() -> None:
    cache = Coalescer(ttl_s=0)
    calls = 0

    async def load() -> int:
        nonlocal calls
        calls += 1
        return calls

    assert await cache.get(("s", "x"), load) == 1
    assert await cache.get(("s", "x"), load) == 2
    cache.ttl_s = 100
    assert await cache.get(("s", "y"), load) == 3
    cache.invalidate("s")
    assert await cache.get(("s", "y"), load) == 4


async def test_errors_reach_every_waiter_and_are_not_kept() -> None:
    cache = Coalescer(ttl_s=10)
    calls = 0

    async def load() -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        raise RuntimeError("down")

    results = await asyncio.gather(
        *(cache.get("k", load) for _ in range(3)), return_exceptions=True
    )
    assert all(isinstance(r, RuntimeError) for r in results)
    assert calls == 1
    with pytest.raises(RuntimeError):
        await cache.get("k", load)
    assert calls == 2
