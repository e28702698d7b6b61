"""RQ's finished-job feed (adapters/rq/finished_feed.py): registries scored by expiry are
followed by position, members sharing one score are each read once across batches, and a
member whose job hash is gone is not counted (it has no end time)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
import redis
import redis.asyncio
from rq.job import Job

from jobbridge.adapters.rq.adapter import RqAdapter
from tests.rq import tasks

pytestmark = pytest.mark.redis


def finished_job(conn: redis.Redis, n: int, ended: datetime) -> str:
    job = Job.create(tasks.add, args=(n, 1), connection=conn, id=f"job-{n:03d}", origin="default")
    job.ended_at = ended
    job.save()
    return job.id


async def read_all(adapter: RqAdapter, limit: int) -> tuple[list[str], int]:
    """Every job the feed gives from a first start, and the steps it took."""
    cursor, seen, steps = None, [], 0
    while True:
        batch = await adapter.finished_since(cursor, limit=limit)
        steps += 1
        seen += [j.job_id for j in batch.jobs]
        if not batch.jobs and cursor == batch.cursor:
            return seen, steps
        cursor = batch.cursor
        assert steps < 50


async def test_same_score_members_each_read_once(
    sync_redis: redis.Redis, redis_client: redis.asyncio.Redis
) -> None:
    ended = datetime.now(UTC) - timedelta(minutes=5)
    ids = [finished_job(sync_redis, n, ended) for n in range(45)]
    # One expiry for all: RQ gives every job of a burst the same score when they end together.
    score = time.time() + 500
    sync_redis.zadd("rq:finished:default", dict.fromkeys(ids, score))
    adapter = RqAdapter(redis_client, source="s", queues=["default"])
    seen, steps = await read_all(adapter, limit=40)  # 20 per registry and step
    assert sorted(seen) == sorted(ids)
    assert steps > 2  # read across several bounded steps
    # New members after the position are read, and only they.
    batch = await adapter.finished_since(None, limit=1000)
    later = finished_job(sync_redis, 99, datetime.now(UTC))
    sync_redis.zadd("rq:failed:default", {later: time.time() + 3600})
    more = await adapter.finished_since(batch.cursor, limit=1000)
    assert [(j.job_id, j.failed, j.queue) for j in more.jobs] == [(later, True, "default")]
    assert (await adapter.finished_since(more.cursor, limit=1000)).jobs == ()


async def test_a_member_whose_hash_is_gone_is_not_counted(
    sync_redis: redis.Redis, redis_client: redis.asyncio.Redis
) -> None:
    ended = datetime.now(UTC) - timedelta(minutes=1)
    kept = finished_job(sync_redis, 1, ended)
    gone = finished_job(sync_redis, 2, ended)
    sync_redis.delete(f"rq:job:{gone}")
    sync_redis.zadd("rq:finished:default", {kept: time.time() + 500, gone: time.time() + 501})
    adapter = RqAdapter(redis_client, source="s", queues=["default"])
    batch = await adapter.finished_since(None, limit=100)
    assert [j.job_id for j in batch.jobs] == [kept]
    assert abs(batch.jobs[0].finished_ms - ended.timestamp() * 1000) < 1000
    # The cursor moved past both: the gone one is not looked at again.
    assert (await adapter.finished_since(batch.cursor, limit=100)).jobs == ()
