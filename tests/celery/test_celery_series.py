"""Celery's chart series: results the index backfills (stored before jobbridge started, with
an old ``date_done``) count in the steps they finished, not when they were found; one the
index learns of after newer ones is found by the feed's sweep and counted once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import redis
import redis.asyncio

from jobbridge.adapters.celery.adapter import CeleryAdapter
from jobbridge.adapters.celery.finished_feed import SWEEP_EVERY_S
from jobbridge.series.model import Window
from jobbridge.series.store import SeriesStore
from tests.celery.celery_jobbridge import celery_api
from tests.celery.celery_support import realistic_meta
from tests.contract.test_contract import eventually

pytestmark = pytest.mark.redis


async def test_backfilled_old_results_count_at_their_finish_time(
    sync_redis: redis.Redis, redis_url: str
) -> None:
    done = datetime.now(UTC) - timedelta(hours=2)
    for n, state in enumerate(("SUCCESS", "SUCCESS", "FAILURE")):
        task_id = f"old-{n}"
        sync_redis.set(f"celery-task-meta-{task_id}", realistic_meta(task_id, state, done, n=n))
    async with celery_api(redis_url) as api:

        async def counted() -> dict:
            status, body = await api.get(f"/api/sources/{api.source}/series?window=24h")
            assert status == 200
            assert sum(p["completed"] for p in body["points"]) == 2
            assert sum(p["failed"] for p in body["points"]) == 1
            return body

        day = await eventually(counted, timeout=20)
        step = int(done.timestamp()) // 900 * 900
        (point,) = [p for p in day["points"] if p["completed"] or p["failed"]]
        assert point["at"] == datetime.fromtimestamp(step, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert (point["completed"], point["failed"]) == (2, 1)
        # Two hours ago is outside the last hour.
        _status, hour = await api.get(f"/api/sources/{api.source}/series?window=1h")
        assert sum(p["completed"] + p["failed"] for p in hour["points"]) == 0
        # The queue's own series has them too (the meta names its queue).
        _status, queue = await api.get(f"/api/sources/{api.source}/series?window=24h&queue=celery")
        assert sum(p["completed"] for p in queue["points"]) == 2


async def test_a_result_indexed_late_is_found_by_the_sweep_and_counted_once(
    redis_client: redis.asyncio.Redis,
) -> None:
    adapter = CeleryAdapter(redis_client, source="s", queues=["celery"])
    index = adapter.index
    store = SeriesStore(redis_client, "jobbridge:", "s")
    await store.hold_lease("t", 60_000)
    now = datetime.now(UTC)

    async def step(cursor: str | None) -> tuple[list[str], str]:
        batch = await adapter.finished_since(cursor, limit=100)
        got = await store.write(
            token="t",
            read_from=await store.cursor(),
            cursor=batch.cursor,
            now_s=int(index.clock()),
            enqueued=None,
            queue_depths=[("celery", 0)],
            jobs=batch.jobs,
        )
        assert got >= 0
        return [j.job_id for j in batch.jobs], batch.cursor

    await index.ingest(
        [
            (b"new", realistic_meta("new", "SUCCESS", now), 0),
            (b"new-bad", realistic_meta("new-bad", "FAILURE", now), 0),
        ]
    )
    ids, cursor = await step(None)
    assert sorted(ids) == ["new", "new-bad"]
    # The backfill finds a task that finished earlier: it sorts before the head's position.
    late = now - timedelta(minutes=30)
    await index.ingest([(b"late", realistic_meta("late", "FAILURE", late), 0)])
    ids, cursor = await step(cursor)
    assert ids == []  # the head has nothing new, and the sweep waits its interval
    real = index.clock
    index.clock = lambda: real() + SWEEP_EVERY_S + 1
    ids, cursor = await step(cursor)
    assert "late" in ids
    day = await store.read(Window.DAY, None, index.clock())
    assert sum(p.completed for p in day.points) == 1  # "new", swept again, counted once
    assert sum(p.failed for p in day.points) == 2
    step_of_late = int(late.timestamp()) // 900 * 900
    assert [p.failed for p in day.points if int(p.at.timestamp()) == step_of_late] == [1]
