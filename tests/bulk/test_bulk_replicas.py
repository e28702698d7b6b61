"""A bulk run's state lives in Redis: another replica (another app on the same Redis) shows
it, confirms it and cancels it; a run whose process stopped reads as interrupted."""

from __future__ import annotations

import pytest
from rq import Queue

from jobbridge.bulk.store import INTERRUPTED
from tests.bulk.support import BulkClient
from tests.rq import tasks as rq_tasks
from tests.rq.rq_support import PREFIX, SOURCE, rq_api

pytestmark = pytest.mark.redis


async def test_another_replica_shows_confirms_and_reads_the_run(sync_redis, redis_url) -> None:
    queue = Queue("default", connection=sync_redis)
    queue.enqueue_many([Queue.prepare_data(rq_tasks.record) for _ in range(40)])
    async with rq_api(redis_url) as first, rq_api(redis_url) as second:
        one = BulkClient(first.client, PREFIX, SOURCE, first.headers)
        two = BulkClient(second.client, PREFIX, SOURCE, second.headers)
        status, run = await one.post("", {"action": "cancel", "filter": {"queue": "default"}})
        assert status == 202, run
        matched = await two.until(run["id"], "matched")
        assert matched["matched"] == 40 and matched["actor"] == run["actor"]
        await two.confirm(matched)
        # Confirming twice (from either replica) starts one run.
        status, body = await one.post(f"/{run['id']}/confirm", {"count": 40})
        assert (status, body["error"]) == (409, "wrong_state"), body
        done = await one.until(run["id"], "done")
    assert done["outcomes"] == {"done": 40}
    assert queue.count == 0


async def test_a_run_whose_process_stopped_reads_as_interrupted(sync_redis, redis_url) -> None:
    queue = Queue("default", connection=sync_redis)
    queue.enqueue_many([Queue.prepare_data(rq_tasks.record) for _ in range(5)])
    async with rq_api(redis_url) as api:
        bulk = BulkClient(api.client, PREFIX, SOURCE, api.headers)
        run = await bulk.dry_run({"action": "cancel"})
        key = f"jobbridge:bulk:{SOURCE}:{run['id']}"
        assert sync_redis.hget(key, "state") == b"matched"
        # As a process that stopped midway leaves it: running, and its lease expired.
        sync_redis.hset(key, "state", "running")
        assert not sync_redis.exists(f"{key}:lease")
        body = await bulk.read(run["id"])
        assert (body["state"], body["error"]) == ("failed", INTERRUPTED), body
        status, body = await bulk.post(f"/{run['id']}/confirm", {"count": 5})
        assert (status, body["error"]) == (409, "wrong_state"), body
    assert queue.count == 5
