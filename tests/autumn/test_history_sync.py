"""Histories followed incrementally must always equal a full read of the list."""

from __future__ import annotations

import random
from typing import NamedTuple

import pytest
import redis.asyncio

from jobbridge.adapters.autumn.adapter import AutumnAdapter
from jobbridge.adapters.autumn.list_history import ListHistory
from jobbridge.model import ListName
from jobbridge.offload import digest_now
from tests.autumn.autumn_fixtures import DAY_MS, history_record

pytestmark = pytest.mark.redis

KEY = "h:list"
LIMIT = 20


class Size(NamedTuple):
    bytes: int


async def summary(raw: bytes) -> Size:
    return Size(len(raw))


async def sync(client: redis.asyncio.Redis, history: ListHistory[Size]) -> None:
    pipe = client.pipeline(transaction=False)
    ListHistory.probe(pipe, KEY)
    length, head, tail = await pipe.execute()
    await history.update(client, int(length), head, tail)


async def full(client: redis.asyncio.Redis) -> list[bytes]:
    return [digest_now(raw) for raw in await client.lrange(KEY, 0, LIMIT - 1)]


@pytest.mark.slow
async def test_incremental_reads_match_a_full_read_after_every_step(redis_client) -> None:
    rng = random.Random(20261201)
    history: ListHistory[Size] = ListHistory(KEY, LIMIT, summary, Size._make)
    counter = 0
    kinds: dict[str, int] = {}

    async def push(count: int) -> None:
        nonlocal counter
        for _ in range(count):
            counter += 1
            # Now and then an entry identical to an older one, as a hostile writer could.
            value = f"e{rng.randrange(counter)}" if rng.random() < 0.05 else f"e{counter}"
            await redis_client.lpush(KEY, value)
        await redis_client.ltrim(KEY, 0, LIMIT - 1)

    for step in range(600):
        kind = rng.choices(
            ["push", "burst", "remove", "remove+push", "delete", "rewrite", "none", "overlong"],
            weights=[40, 6, 12, 8, 3, 3, 20, 2],
        )[0]
        kinds[kind] = kinds.get(kind, 0) + 1
        entries = await redis_client.lrange(KEY, 0, -1)
        if kind == "push":
            await push(rng.randrange(1, 4))
        elif kind == "burst":
            await push(rng.randrange(LIMIT, 2 * LIMIT))
        elif kind in ("remove", "remove+push") and entries:
            await redis_client.lrem(KEY, 1, rng.choice(entries))
            if kind == "remove+push":
                await push(1)
        elif kind == "delete":
            await redis_client.delete(KEY)
        elif kind == "rewrite":
            await redis_client.delete(KEY)
            await push(rng.randrange(1, LIMIT + 1))
        elif kind == "overlong":
            # Autumn's malformed path pushes without trimming: briefly over the limit.
            counter += 1
            await redis_client.lpush(KEY, f"m{counter}")
        await sync(redis_client, history)
        known = [entry.digest for entry in history.entries]
        assert known == await full(redis_client), (step, kind)
    assert history.full_reads < 600 * 0.5
    assert all(kinds.get(k) for k in ("push", "remove", "delete", "rewrite", "overlong"))


async def test_a_poll_that_finds_nothing_new_reads_no_entries(redis_client) -> None:
    history: ListHistory[Size] = ListHistory(KEY, LIMIT, summary, Size._make)
    await redis_client.lpush(KEY, *(f"e{n}" for n in range(LIMIT)))
    await sync(redis_client, history)
    before = history.transferred
    for _ in range(10):
        await sync(redis_client, history)
    assert history.transferred == before
    await redis_client.lpush(KEY, "new-1", "new-2")
    await redis_client.ltrim(KEY, 0, LIMIT - 1)
    await sync(redis_client, history)
    # The head window read at most FIRST_WINDOW entries, not the whole list.
    assert history.transferred - before <= 16
    assert [e.digest for e in history.entries] == await full(redis_client)


@pytest.mark.slow
async def test_counts_of_a_followed_source_equal_a_fresh_one(autumn_emulator, redis_url) -> None:
    rng = random.Random(5)
    now = autumn_emulator.now_ms()
    follower_client = redis.asyncio.Redis.from_url(redis_url)
    follower = AutumnAdapter(follower_client, source="s")
    try:
        for step in range(120):
            for _ in range(rng.randrange(0, 5)):
                age = rng.randrange(0, 10 * DAY_MS)
                body = history_record(autumn_emulator, finished_ms=now - age)
                key = (
                    autumn_emulator.completed_key
                    if rng.random() < 0.5
                    else autumn_emulator.dead_key
                )
                autumn_emulator.client.lpush(key, body)
                autumn_emulator.client.ltrim(key, 0, 999)
            if rng.random() < 0.2:
                entries = autumn_emulator.client.lrange(autumn_emulator.dead_key, 0, -1)
                if entries:
                    autumn_emulator.client.lrem(autumn_emulator.dead_key, 1, rng.choice(entries))
            followed = await follower.counters()
            fresh_client = redis.asyncio.Redis.from_url(redis_url)
            fresh = await AutumnAdapter(fresh_client, source="s").counters()
            await fresh_client.aclose()
            assert (followed.completed_24h, followed.failed_7d) == (
                fresh.completed_24h,
                fresh.failed_7d,
            ), step
        assert follower.histories.lists[ListName.COMPLETED].full_reads < 10
    finally:
        await follower_client.aclose()
