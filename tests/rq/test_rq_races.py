"""RQ actions racing real workers and each other: nothing lost, nothing run twice, nothing both
run and canceled; two retries of one job make one new job."""

from __future__ import annotations

import asyncio
import os
import random
import re
import time

import pytest
import redis
from rq import Queue
from rq.registry import CanceledJobRegistry, FailedJobRegistry, StartedJobRegistry

from tests.rq import tasks as rq_tasks
from tests.rq.rq_support import (
    RqApi,
    make_failed,
    ran_ids,
    rq_api,
)

pytestmark = pytest.mark.redis

#: how a cancel refused because a worker holds the job says so
TAKEN = re.compile(r"already (running|taken by a worker)")

JOBS = 1000
WORKERS = 2
#: jobs canceled at random, whatever their state
RANDOM_CANCELS = 300
#: cancels aimed at the head of the queue: the very jobs the workers are popping
HEAD_CANCELS = 250


def statuses(conn: redis.Redis, ids: list[str]) -> dict[str, str | None]:
    """RQ's status field of each job, read in one pipeline."""
    pipe = conn.pipeline(transaction=False)
    for job_id in ids:
        pipe.hget(f"rq:job:{job_id}", "status")
    return {
        job_id: raw.decode() if raw is not None else None
        for job_id, raw in zip(ids, pipe.execute(), strict=True)
    }


async def test_cancels_racing_two_workers_lose_nothing_and_run_nothing_twice(
    sync_redis, rq_workers, redis_url
) -> None:
    rng = random.Random(int(os.environ.get("JOBBRIDGE_RACE_SEED", "20261203")))
    queue = Queue("default", connection=sync_redis)
    jobs = queue.enqueue_many([Queue.prepare_data(rq_tasks.record) for _ in range(JOBS)])
    ids = [job.id for job in jobs]
    assert queue.count == JOBS
    targets = rng.sample(ids, RANDOM_CANCELS)
    #: every cancel's (HTTP status, body), per job: a job may be hit by a racer and the sniper
    outcomes: dict[str, list[tuple[int, dict]]] = {}

    async with rq_api(redis_url) as first, rq_api(redis_url) as second:

        async def fire(batch: list[str], api: RqApi) -> None:
            for job_id in batch:
                outcomes.setdefault(job_id, []).append(await api.act(job_id, "cancel"))
                await asyncio.sleep(rng.random() / 25)

        async def snipe(api: RqApi) -> None:
            """Cancel the next jobs to be popped (the left end) while workers pop them."""
            shot = 0
            while shot < HEAD_CANCELS and sync_redis.llen(queue.key):
                for raw in sync_redis.lrange(queue.key, 0, 1):
                    job_id = raw.decode()
                    if job_id not in outcomes:
                        outcomes.setdefault(job_id, []).append(await api.act(job_id, "cancel"))
                        shot += 1
                await asyncio.sleep(rng.random() / 50)

        started = time.monotonic()
        # Not quiet (-q): the harness must read "done, quitting" to stop a worker whose
        # teardown hangs in RQ's pub/sub thread (tests/rq/rq_support.py, wait_exit).
        workers = [rq_workers.start(burst=True) for _ in range(WORKERS)]
        await asyncio.gather(fire(targets[0::2], first), fire(targets[1::2], second), snipe(second))
        cancel_seconds = time.monotonic() - started
        for worker in workers:
            await asyncio.to_thread(worker.assert_clean_exit, 55)
        drained_seconds = time.monotonic() - started

    every = [(status, body) for seen in outcomes.values() for status, body in seen]
    canceled = {j for j, seen in outcomes.items() if any(s == 200 for s, _ in seen)}
    runs = ran_ids(sync_redis)
    ran = set(runs)
    refused = [body for status, body in every if status != 200]
    running = sum(bool(TAKEN.search(body["message"])) for body in refused)
    again = sum("already canceled" in body["message"] for body in refused)
    not_found = sum(body["error"] == "not_found" for body in refused)
    print(
        f"\nrq race: {JOBS} jobs, {WORKERS} workers, {len(every)} cancels of {len(outcomes)} "
        f"jobs in {cancel_seconds:.2f}s: {len(canceled)} canceled, {running} refused as "
        f"already taken by a worker, {again} as already canceled, "
        f"{len(refused) - running - again - not_found} as done (no longer waiting), "
        f"{not_found} not found; {len(runs)} ran ({len(ran)} distinct); "
        f"drained in {drained_seconds:.2f}s"
    )

    assert all(sum(s == 200 for s, _ in seen) <= 1 for seen in outcomes.values()), "twice"
    assert {status for status, _ in every} <= {200, 404, 409}, every
    assert {body["error"] for body in refused} <= {"wrong_state", "not_found"}
    assert len(runs) == len(ran), "a job ran twice"
    assert not canceled & ran, f"canceled jobs ran: {sorted(canceled & ran)[:5]}"
    assert ran | canceled == set(ids), f"lost: {sorted(set(ids) - ran - canceled)[:5]}"
    assert len(ran) + len(canceled) == JOBS
    # A cancel refused outright was refused because the job was taken (it ran).
    assert all(job_id in ran for job_id in outcomes if job_id not in canceled)

    # RQ's own view agrees: ran -> finished, canceled -> canceled, and nothing left over.
    states = statuses(sync_redis, ids)
    assert {states[j] for j in ran} == {"finished"}
    assert {states[j] for j in canceled} == {"canceled"}
    assert set(CanceledJobRegistry("default", connection=sync_redis).get_job_ids()) == canceled
    assert queue.count == 0 and sync_redis.llen(queue.intermediate_queue_key) == 0
    assert StartedJobRegistry("default", connection=sync_redis).get_job_ids(cleanup=False) == []
    assert 0 < len(canceled) < len(outcomes), "the race did not interleave; tune the test"


async def test_two_simultaneous_retries_create_exactly_one_job(
    sync_redis, rq_workers, redis_url
) -> None:
    failed = make_failed(sync_redis, rq_workers, 20)
    registry = FailedJobRegistry("default", connection=sync_redis)
    new_ids: list[str] = []
    async with rq_api(redis_url) as first, rq_api(redis_url) as second:
        for job_id in failed:
            (a_status, a), (b_status, b) = await asyncio.gather(
                first.act(job_id, "retry"), second.act(job_id, "retry")
            )
            assert sorted([a_status, b_status]) == [200, 409], (a, b)
            winner, loser = (a, b) if a_status == 200 else (b, a)
            assert loser["error"] == "wrong_state", loser
            new_ids.append(winner["new_id"])
        audit = await first.audit()
    assert len(set(new_ids)) == len(failed) and not set(new_ids) & set(failed)
    assert Queue("default", connection=sync_redis).get_job_ids() == new_ids
    assert not set(failed) & set(registry.get_job_ids(cleanup=False))
    outcomes = sorted(e["outcome"] for e in audit if e["action"] == "retry")
    assert outcomes == ["done"] * 20 + ["wrong_state"] * 20

    # The copies are real jobs: a worker runs each once (they fail again, as the task does).
    rq_workers.run_burst()
    assert sorted(ran_ids(sync_redis)) == sorted(failed + new_ids)
    assert set(registry.get_job_ids(cleanup=False)) == set(new_ids)


async def test_retry_racing_discard_has_one_winner(sync_redis, rq_workers, redis_url) -> None:
    failed = make_failed(sync_redis, rq_workers, 20)
    retried: list[str] = []
    async with rq_api(redis_url) as first, rq_api(redis_url) as second:
        for job_id in failed:
            (r_status, r), (d_status, d) = await asyncio.gather(
                first.act(job_id, "retry"), second.act(job_id, "discard")
            )
            # One wins; the other is refused as such (never an error).
            assert sorted([r_status, d_status]) in ([200, 404], [200, 409]), (r, d)
            if r_status == 200:
                retried.append(r["new_id"])
    assert Queue("default", connection=sync_redis).get_job_ids() == retried
    assert FailedJobRegistry("default", connection=sync_redis).get_job_ids(cleanup=False) == []
