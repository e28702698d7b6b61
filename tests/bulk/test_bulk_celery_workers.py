"""Bulk runs on Celery with a real ``celery worker`` running: a bulk retry takes exactly the
tasks its filter matches, once each, and the worker runs every new task; a bulk cancel racing
the worker revokes or leaves to run each task, never both, losing none."""

from __future__ import annotations

import json

import pytest

from tests.bulk.support import BulkClient, retried_once
from tests.celery.celery_jobbridge import celery_api
from tests.celery.celery_support import meta_key, ran_ids, send
from tests.rq.rq_support import PREFIX, async_wait_for

pytestmark = pytest.mark.redis


def states(conn, ids: list[str]) -> dict[str, str]:
    out = {}
    for task_id, raw in zip(ids, conn.mget([meta_key(i) for i in ids]), strict=True):
        out[task_id] = json.loads(raw)["status"] if raw else "PENDING"
    return out


async def test_bulk_retry_of_300_of_500_failures_while_a_worker_runs(
    celery_app, celery_workers, redis_url, sync_redis
) -> None:
    outage = [send(celery_app, "fail", "ConnectionError: refused").id for _ in range(300)]
    other = [send(celery_app, "fail", "ValueError: bad input").id for _ in range(200)]
    celery_workers.start(pool="prefork", concurrency=2)

    def all_failed() -> bool:
        return set(states(sync_redis, outage + other).values()) == {"FAILURE"}

    await async_wait_for(all_failed, "every task to fail", 120, every=0.2)
    async with celery_api(redis_url) as api:

        async def indexed() -> bool:
            body = await api.snapshot("?per_page=1&only=failed")
            return bool(body["lists"]["failed"]["total"] == 500)

        await async_wait_for(indexed, "the index to hold every failure", 30, every=0.2)
        bulk = BulkClient(api.client, PREFIX, api.source, api.headers)
        run = await bulk.dry_run(
            {"action": "retry", "list": "failed", "filter": {"error_contains": "ConnectionError"}}
        )
        assert (run["matched"], run["looked_at"]) == (300, 500), run
        await bulk.confirm(run)
        done = await bulk.until(run["id"], "done")
        audit = await api.audit()
    assert len(outage) == 300
    new_ids = retried_once(done, audit, outage, other)

    # The worker runs every new task (it fails again: the task always does).
    def retried_ran() -> bool:
        return set(states(sync_redis, new_ids).values()) == {"FAILURE"}

    await async_wait_for(retried_ran, "every retried task to run", 120, every=0.2)
    # The others are untouched.
    assert set(states(sync_redis, other).values()) == {"FAILURE"}


async def test_bulk_cancel_racing_a_worker_revokes_or_runs_each_task_once(
    celery_app, celery_workers, redis_url, sync_redis
) -> None:
    ids = [send(celery_app, "record", f"n{n}").id for n in range(500)]
    assert sync_redis.llen("celery") == 500
    async with celery_api(redis_url) as api:
        bulk = BulkClient(api.client, PREFIX, api.source, api.headers)
        run = await bulk.dry_run({"action": "cancel", "list": "enqueued"})
        assert run["matched"] == 500, run
        await bulk.confirm(run)
        celery_workers.start(pool="prefork", concurrency=2, wait=False)
        done = await bulk.until(run["id"], "done")

        def settled() -> bool:
            return set(states(sync_redis, ids).values()) <= {"SUCCESS", "REVOKED"}

        await async_wait_for(settled, "every task to finish or be revoked", 120, every=0.2)
    runs = ran_ids(sync_redis)
    ran = set(runs)
    final = states(sync_redis, ids)
    revoked = {i for i, s in final.items() if s == "REVOKED"}
    print(f"\ncelery bulk cancel racing a worker: {done['outcomes']}; {len(ran)} ran")
    assert len(runs) == len(ran), "a task ran twice"
    assert not revoked & ran, "a task both revoked and run"
    assert revoked | ran == set(ids), "a task lost"
    assert {final[i] for i in ran} <= {"SUCCESS"}
    assert done["acted"] == 500 and sum(done["outcomes"].values()) == 500
    assert done["outcomes"].get("done", 0) == len(revoked)
    assert {s["job_id"] for s in done["skipped"]} == ran
    assert {s["outcome"] for s in done["skipped"]} <= {"wrong_state", "not_found"}
    assert sync_redis.llen("celery") == 0
