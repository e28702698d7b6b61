"""Bulk runs on RQ with real ``rq worker`` processes running: a bulk retry takes exactly the
jobs its filter matches, once each, and the workers run every new job; a bulk cancel racing
the workers cancels or leaves to run each job, never both, losing none."""

from __future__ import annotations

import asyncio

import pytest
from rq import Queue
from rq.registry import CanceledJobRegistry, FailedJobRegistry

from tests.bulk.support import BulkClient, retried_once
from tests.rq import tasks as rq_tasks
from tests.rq.rq_support import PREFIX, SOURCE, enqueue, ran_ids, rq_api, wait_for

pytestmark = pytest.mark.redis


async def test_bulk_retry_of_300_of_500_failures_while_workers_run(
    sync_redis, rq_workers, redis_url
) -> None:
    outage = [enqueue(sync_redis, rq_tasks.fail, "ConnectionError: refused").id for _ in range(300)]
    other = [enqueue(sync_redis, rq_tasks.fail, "ValueError: bad input").id for _ in range(200)]
    rq_workers.run_burst(timeout=120)
    registry = FailedJobRegistry("default", connection=sync_redis)
    assert set(registry.get_job_ids(cleanup=False)) == set(outage + other)
    async with rq_api(redis_url) as api:
        bulk = BulkClient(api.client, PREFIX, SOURCE, api.headers)
        run = await bulk.dry_run(
            {"action": "retry", "list": "failed", "filter": {"error_contains": "connectionerror"}}
        )
        assert (run["matched"], run["looked_at"]) == (300, 500), run
        # Workers run while the bulk retry goes.
        workers = [rq_workers.start() for _ in range(2)]
        for worker in workers:
            await asyncio.to_thread(worker.wait_registered, sync_redis)
        await bulk.confirm(run)
        done = await bulk.until(run["id"], "done")
        audit = await api.audit()
    assert len(outage) == 300
    new_ids = retried_once(done, audit, outage, other)
    # Every new job runs, once (it fails again: the task always does).
    wait_for(lambda: set(new_ids) <= set(ran_ids(sync_redis)), "the retries ran", timeout=120)
    runs = ran_ids(sync_redis)
    assert sorted(r for r in runs if r in set(new_ids)) == sorted(new_ids)
    assert len(runs) == 500 + 300
    # The others are untouched: still failed, never run again.
    assert set(other) <= set(registry.get_job_ids(cleanup=False))
    assert not set(outage) & set(registry.get_job_ids(cleanup=False))


async def test_bulk_cancel_racing_workers_cancels_or_runs_each_job_once(
    sync_redis, rq_workers, redis_url
) -> None:
    queue = Queue("default", connection=sync_redis)
    jobs = queue.enqueue_many([Queue.prepare_data(rq_tasks.record) for _ in range(500)])
    ids = [job.id for job in jobs]
    async with rq_api(redis_url) as api:
        bulk = BulkClient(api.client, PREFIX, SOURCE, api.headers)
        run = await bulk.dry_run({"action": "cancel", "list": "enqueued", "filter": {}})
        assert run["matched"] == 500, run
        await bulk.confirm(run)
        workers = [rq_workers.start(burst=True) for _ in range(2)]
        done = await bulk.until(run["id"], "done")
        for worker in workers:
            await asyncio.to_thread(worker.assert_clean_exit, 120)
    runs = ran_ids(sync_redis)
    ran = set(runs)
    canceled = set(CanceledJobRegistry("default", connection=sync_redis).get_job_ids())
    print(f"\nrq bulk cancel racing 2 workers: {done['outcomes']}; {len(ran)} ran")
    assert len(runs) == len(ran), "a job ran twice"
    assert not canceled & ran, "a job both canceled and run"
    assert canceled | ran == set(ids), "a job lost"
    # The outcomes say which: done = canceled; every other one ran.
    assert done["acted"] == 500
    assert done["outcomes"].get("done", 0) == len(canceled)
    assert sum(done["outcomes"].values()) == 500
    assert {s["job_id"] for s in done["skipped"]} == ran
    assert {s["outcome"] for s in done["skipped"]} <= {"wrong_state", "not_found"}
