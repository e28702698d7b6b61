"""Class 7 (issue 15): a job retried from jobbridge keeps its RQ ``Retry`` policy where RQ's
stored fields allow, and the reply and the job page say how many attempts the new job has.

RQ stores ``retries_left`` (counted down to 0 by the time the job fails) and
``retry_intervals`` (JSON), never ``max``. Checked with a real RQ worker (with its scheduler,
for the intervals): the new job is retried by RQ itself the expected number of times.
"""

from __future__ import annotations

import pytest
from rq import Retry
from rq.job import Job
from rq.registry import FailedJobRegistry

from tests.rq import tasks as rq_tasks
from tests.rq.rq_support import enqueue, ran_ids, rq_api, wait_for

pytestmark = pytest.mark.redis


def failed_ids(conn) -> set[str]:
    return set(FailedJobRegistry("default", connection=conn).get_job_ids(cleanup=False))


def runs(conn, job_id: str) -> int:
    return ran_ids(conn).count(job_id)


async def test_class7_rq_retry_keeps_the_retry_policy_and_says_the_attempts(
    sync_redis, rq_workers, redis_url
) -> None:
    # Two intervals or more: one per retry, so the new job gets as many retries.
    listed = enqueue(sync_redis, rq_tasks.fail, "listed", retry=Retry(max=3, interval=[0, 1, 0]))
    # One interval (Retry(max=2) stores [0]): RQ keeps no count to give back.
    single = enqueue(sync_redis, rq_tasks.fail, "single", retry=Retry(max=2))
    plain = enqueue(sync_redis, rq_tasks.fail, "plain")
    worker = rq_workers.start(scheduler=True)
    wait_for(
        lambda: {listed.id, single.id, plain.id} <= failed_ids(sync_redis),
        "the three jobs to fail for good",
        30,
    )
    assert (
        runs(sync_redis, listed.id),
        runs(sync_redis, single.id),
        runs(sync_redis, plain.id),
    ) == (4, 3, 1)
    assert sync_redis.hget(f"rq:job:{listed.id}", "retries_left") == b"0"
    # No worker while the retries are made and their pages read: a live one could take a new
    # job first, and a running job's page does not word the attempts it has left.
    worker.stop()

    async with rq_api(redis_url) as api:
        status, body = await api.act(listed.id, "retry")
        assert status == 200, body
        new_listed = body["new_id"]
        assert body["message"] == (
            f"Retried job {listed.id} as {new_listed}; it has 4 attempts: 3 retries at "
            "0, 1, 0 s, the original's RQ Retry (RQ stores its intervals, one per retry, "
            "not its max)."
        )
        stored = sync_redis.hgetall(f"rq:job:{new_listed}")
        assert stored[b"retries_left"] == b"3"
        assert stored[b"retry_intervals"] == b"[0, 1, 0]"
        new_job = Job.fetch(new_listed, connection=sync_redis)  # RQ's own reading of the hash
        assert (new_job.retries_left, new_job.retry_intervals) == (3, [0, 1, 0])

        status, page = await api.get(f"/jobs/{api.source}/{new_listed}")
        assert status == 200
        assert "4: this run, then 3 retries on failure (RQ&#39;s Retry)" in page, page
        assert "0, 1, 0 s" in page
        audit = [e for e in await api.audit() if e["job_id"] == listed.id]
        assert "it has 4 attempts" in audit[0]["message"]
        status, old_page = await api.get(f"/jobs/{api.source}/{listed.id}")
        assert "it has 4 attempts" in old_page

        status, body = await api.act(single.id, "retry")
        assert status == 200, body
        new_single = body["new_id"]
        assert (
            "it has 1 attempt: RQ stored the original Retry's interval (0 s) but not its "
            in (body["message"])
        )
        assert not sync_redis.hexists(f"rq:job:{new_single}", "retries_left")

        status, body = await api.act(plain.id, "retry")
        assert status == 200, body
        new_plain = body["new_id"]
        assert body["message"].endswith("it has 1 attempt (the original had no Retry policy).")

    # RQ itself retries the new jobs: 1 + 3 runs, 1 run, 1 run, then failed for good.
    worker = rq_workers.start(scheduler=True)
    wait_for(
        lambda: {new_listed, new_single, new_plain} <= failed_ids(sync_redis),
        "the new jobs to fail for good",
        30,
    )
    assert (
        runs(sync_redis, new_listed),
        runs(sync_redis, new_single),
        runs(sync_redis, new_plain),
    ) == (4, 1, 1)
    assert worker.alive, worker.describe()
    assert sync_redis.hget(f"rq:job:{new_listed}", "retries_left") == b"0"
