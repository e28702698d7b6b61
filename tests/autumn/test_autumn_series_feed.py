"""Autumn's finished-job feed (adapters/autumn/finished_feed.py): new entries of completed
and dead only, oldest first in bounded batches, and a list trimmed past the cursor's entry
read again from what is left, counted once by the series writer's seen set."""

from __future__ import annotations

import json
import time

import pytest
import redis
import redis.asyncio

from jobbridge.adapters.autumn.adapter import AutumnAdapter
from jobbridge.adapters.autumn.history import HISTORY_LIMIT
from jobbridge.series.model import Window
from jobbridge.series.store import SeriesStore

pytestmark = pytest.mark.redis

P = "autumn:jobs"


def record(n: int, finished_ms: int, queue: str = "default") -> bytes:
    """A settled record as Autumn pushes it (spec/autumn-redis.md §2.1, §3.3)."""
    return json.dumps(
        {
            "id": f"job-{n:05d}",
            "name": "send_email",
            "queue": queue,
            "payload": {"n": n},
            "attempt": 1,
            "max_attempts": 5,
            "initial_backoff_ms": 250,
            "enqueued_at_ms": finished_ms - 20,
            "started_at_ms": finished_ms - 10,
            "finished_at_ms": finished_ms,
            "claimed_by": None,
            "claimed_at_ms": None,
            "last_error": None,
        },
        separators=(",", ":"),
    ).encode()


def settle(conn: redis.Redis, key: str, numbers: range, at_ms: int) -> None:
    """LPUSH then LTRIM to 1,000, as Autumn's settle script does for each job."""
    for n in numbers:
        conn.lpush(key, record(n, at_ms + n))
        conn.ltrim(key, 0, HISTORY_LIMIT - 1)


async def drain(adapter: AutumnAdapter, store: SeriesStore, cursor: str | None) -> tuple[int, str]:
    """Step the feed into the series until it has nothing new; jobs counted, last cursor."""
    counted = 0
    for _ in range(100):
        batch = await adapter.finished_since(cursor, limit=150)
        got = await store.write(
            token="t",
            read_from=await store.cursor(),
            cursor=batch.cursor,
            now_s=int(time.time()),
            enqueued=None,
            queue_depths=[],
            jobs=batch.jobs,
        )
        assert got >= 0
        counted += got
        if not batch.jobs and not batch.more:
            return counted, batch.cursor
        cursor = batch.cursor
    raise AssertionError("the feed never caught up")


async def test_new_entries_only_and_a_trimmed_cursor_counts_once(
    sync_redis: redis.Redis, redis_client: redis.asyncio.Redis
) -> None:
    now_ms = int(time.time() * 1000) - 60_000
    settle(sync_redis, f"{P}:completed", range(300), now_ms)
    settle(sync_redis, f"{P}:dead", range(10_000, 10_005), now_ms)
    adapter = AutumnAdapter(redis_client, source="s")
    store = SeriesStore(redis_client, "jobbridge:", "s")
    await store.hold_lease("t", 60_000)
    counted, cursor = await drain(adapter, store, None)
    assert counted == 305
    # Nothing new: nothing read.
    assert (await adapter.finished_since(cursor, limit=150)).jobs == ()
    # A burst bigger than Autumn keeps: the cursor's entry is trimmed away before a step.
    # The 1,000 entries left are all read; the 300 trimmed first are lost to every reader.
    settle(sync_redis, f"{P}:completed", range(300, 1_600), now_ms)
    counted, cursor = await drain(adapter, store, cursor)
    assert counted == 1_000
    # The cursor's dead entry discarded (LREM, as an operator's discard): the list is read
    # again from what is left, and only the two new entries count.
    newest_dead = sync_redis.lindex(f"{P}:dead", 0)
    sync_redis.lrem(f"{P}:dead", 1, newest_dead)
    settle(sync_redis, f"{P}:dead", range(20_000, 20_002), now_ms)
    counted, cursor = await drain(adapter, store, cursor)
    assert counted == 2
    hour = await store.read(Window.HOUR, None, time.time())
    assert sum(p.completed for p in hour.points) == 1_300
    assert sum(p.failed for p in hour.points) == 7


async def test_a_history_key_of_another_type_is_skipped(
    sync_redis: redis.Redis, redis_client: redis.asyncio.Redis
) -> None:
    now_ms = int(time.time() * 1000)
    sync_redis.set(f"{P}:completed", "not a list")
    settle(sync_redis, f"{P}:dead", range(3), now_ms)
    adapter = AutumnAdapter(redis_client, source="s")
    batch = await adapter.finished_since(None, limit=100)
    assert sorted(j.job_id for j in batch.jobs) == ["job-00000", "job-00001", "job-00002"]
    assert all(j.failed for j in batch.jobs)
