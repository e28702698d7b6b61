"""Every RQ action through the JSON API, checked through RQ's own API and real workers.

Each action's effect is read back with RQ itself (``Job.fetch(...).get_status()``, registry
membership), and a real ``rq worker`` then has to behave: canceled jobs never run, retried ones
run to completion, stopped ones end ``stopped``, and no worker ever exits because of what
jobbridge wrote (burst workers exit 0, long-running ones stay alive and keep working).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import redis
from rq import Queue
from rq.job import Job
from rq.registry import (
    CanceledJobRegistry,
    DeferredJobRegistry,
    FailedJobRegistry,
    FinishedJobRegistry,
    ScheduledJobRegistry,
    StartedJobRegistry,
)

from tests.rq import tasks as rq_tasks
from tests.rq.rq_support import (
    ACTOR,
    RqApi,
    WorkerPool,
    async_wait_for,
    enqueue,
    make_failed,
    ran_ids,
    rq_api,
    status_of,
)

pytestmark = pytest.mark.redis


@pytest.fixture
async def api(redis_url: str) -> AsyncIterator[RqApi]:
    async with rq_api(redis_url) as client:
        yield client


def queued_ids(conn: redis.Redis, queue: str = "default") -> list[str]:
    return Queue(queue, connection=conn).get_job_ids()


async def audit_rows(api: RqApi) -> list[tuple[str, str, str]]:
    """(action, job id, outcome) of the source's audit entries, oldest first."""
    entries = await api.audit()
    assert all(e["actor"] == ACTOR and e["source"] == api.source for e in entries), entries
    return [(e["action"], e["job_id"], e["outcome"]) for e in reversed(entries)]


async def wait_status(conn: redis.Redis, job_id: str, status: str, timeout: float = 15) -> None:
    await async_wait_for(
        lambda: status_of(conn, job_id) == status, f"job {job_id} to be {status}", timeout
    )


# ------------------------------------------------------------------ cancel


async def test_cancel_queued_job_never_runs(sync_redis, rq_workers, api, tmp_path) -> None:
    keep_marker, gone_marker = tmp_path / "keep", tmp_path / "gone"
    keep = enqueue(sync_redis, rq_tasks.touch, str(keep_marker))
    gone = enqueue(sync_redis, rq_tasks.touch, str(gone_marker))

    status, body = await api.act(gone.id, "cancel")
    assert status == 200, body
    assert body["outcome"] == "canceled" and body["id"] == gone.id

    assert status_of(sync_redis, gone.id) == "canceled"
    assert gone.id in CanceledJobRegistry("default", connection=sync_redis)
    assert queued_ids(sync_redis) == [keep.id]

    rq_workers.run_burst()
    assert keep_marker.exists() and not gone_marker.exists()
    assert ran_ids(sync_redis) == [keep.id]
    assert status_of(sync_redis, keep.id) == "finished"
    assert status_of(sync_redis, gone.id) == "canceled"
    assert await audit_rows(api) == [("cancel", gone.id, "done")]


async def test_cancel_scheduled_job_never_runs(sync_redis, rq_workers, api, tmp_path) -> None:
    queue = Queue("default", connection=sync_redis)
    # Due already: the burst scheduler below moves every due job it still finds.
    due = datetime.now(UTC) - timedelta(seconds=5)
    control = queue.enqueue_at(due, rq_tasks.touch, str(tmp_path / "control"))
    gone = queue.enqueue_at(due, rq_tasks.touch, str(tmp_path / "gone"))
    assert status_of(sync_redis, gone.id) == "scheduled"

    status, body = await api.act(gone.id, "cancel")
    assert status == 200, body
    assert status_of(sync_redis, gone.id) == "canceled"
    scheduled = ScheduledJobRegistry("default", connection=sync_redis)
    assert gone.id not in scheduled and control.id in scheduled
    assert gone.id in CanceledJobRegistry("default", connection=sync_redis)

    rq_workers.run_burst(scheduler=True)
    assert ran_ids(sync_redis) == [control.id]
    assert (tmp_path / "control").exists() and not (tmp_path / "gone").exists()
    assert status_of(sync_redis, gone.id) == "canceled"


async def test_cancel_deferred_job_never_runs(sync_redis, rq_workers, api, tmp_path) -> None:
    parent = enqueue(sync_redis, rq_tasks.add, 1, 2)
    child = enqueue(sync_redis, rq_tasks.touch, str(tmp_path / "child"), depends_on=parent)
    assert status_of(sync_redis, child.id) == "deferred"

    status, body = await api.act(child.id, "cancel")
    assert status == 200, body
    assert status_of(sync_redis, child.id) == "canceled"
    assert child.id not in DeferredJobRegistry("default", connection=sync_redis)
    assert child.id in CanceledJobRegistry("default", connection=sync_redis)

    rq_workers.run_burst()
    assert ran_ids(sync_redis) == [parent.id]
    assert status_of(sync_redis, parent.id) == "finished"
    assert not (tmp_path / "child").exists()
    assert status_of(sync_redis, child.id) == "canceled"
    assert queued_ids(sync_redis) == []


async def test_cancel_running_job_is_refused_and_the_job_completes(
    sync_redis, rq_workers, api
) -> None:
    worker = rq_workers.start()
    job = enqueue(sync_redis, rq_tasks.sleep_then, 1.5, "done")
    await wait_status(sync_redis, job.id, "started")

    status, body = await api.act(job.id, "cancel")
    assert status == 409, body
    assert body["error"] == "wrong_state", body
    assert re.search(r"already (running|taken by a worker)", body["message"]), body
    assert status_of(sync_redis, job.id) == "started"
    assert job.id in StartedJobRegistry("default", connection=sync_redis)
    assert job.id not in CanceledJobRegistry("default", connection=sync_redis)

    await wait_status(sync_redis, job.id, "finished")
    assert Job.fetch(job.id, connection=sync_redis).return_value() == "done"
    assert job.id in FinishedJobRegistry("default", connection=sync_redis)
    worker.assert_alive()
    assert await audit_rows(api) == [("cancel", job.id, "wrong_state")]


async def test_cancel_of_a_job_a_worker_just_popped_is_refused(sync_redis, api) -> None:
    """The moment between a worker's LMOVE into the intermediate list and its start."""
    job = enqueue(sync_redis, rq_tasks.add, 1, 1)
    queue = Queue("default", connection=sync_redis)
    assert sync_redis.lmove(queue.key, queue.intermediate_queue_key) == job.id.encode()

    status, body = await api.act(job.id, "cancel")
    assert status == 409, body
    assert body["error"] == "wrong_state", body
    assert status_of(sync_redis, job.id) == "queued"
    assert sync_redis.lrange(queue.intermediate_queue_key, 0, -1) == [job.id.encode()]
    assert job.id not in CanceledJobRegistry("default", connection=sync_redis)


async def test_cancel_unknown_and_finished_jobs_are_refused(sync_redis, rq_workers, api) -> None:
    done = enqueue(sync_redis, rq_tasks.add, 2, 2)
    rq_workers.run_burst()
    status, body = await api.act(done.id, "cancel")
    assert status in (404, 409) and body["error"] in ("not_found", "wrong_state"), body
    assert status_of(sync_redis, done.id) == "finished"
    status, body = await api.act("no-such-job", "cancel")
    assert status == 404 and body["error"] == "not_found", body


# ------------------------------------------------------------------ retry


async def test_retry_creates_a_copy_that_runs_to_completion(
    sync_redis, rq_workers, api, tmp_path
) -> None:
    marker = tmp_path / "failed-once"
    old = enqueue(
        sync_redis,
        rq_tasks.fail_once,
        str(marker),
        value="second time lucky",
        meta={"tenant": "acme"},
        job_timeout=77,
        result_ttl=654,
        failure_ttl=4321,
        description="custom description",
    )
    rq_workers.run_burst()
    assert status_of(sync_redis, old.id) == "failed" and marker.exists()
    failed = FailedJobRegistry("default", connection=sync_redis)
    assert old.id in failed
    before = Job.fetch(old.id, connection=sync_redis)

    status, body = await api.act(old.id, "retry")
    assert status == 200, body
    assert body["outcome"] == "retried" and body["id"] == old.id
    new_id = body["new_id"]
    assert new_id and new_id != old.id

    assert old.id not in failed
    assert queued_ids(sync_redis) == [new_id]
    new = Job.fetch(new_id, connection=sync_redis)
    assert new.get_status().value == "queued"
    assert (new.func_name, new.args, new.kwargs) == (before.func_name, before.args, before.kwargs)
    assert new.description == before.description == "custom description"
    assert new.origin == "default"
    assert (new.timeout, new.result_ttl, new.failure_ttl, new.ttl) == (77, 654, 4321, None)
    assert new.meta == {"tenant": "acme"}
    assert new.enqueued_at is not None
    assert abs(new.enqueued_at.replace(tzinfo=UTC) - datetime.now(UTC)) < timedelta(minutes=1)
    assert new.started_at is None and new.ended_at is None
    # The copy lives until it is done, whatever TTL the failed original had.
    assert sync_redis.ttl(new.key) == -1

    rq_workers.run_burst()
    assert status_of(sync_redis, new_id) == "finished"
    assert Job.fetch(new_id, connection=sync_redis).return_value() == "second time lucky"
    assert new_id in FinishedJobRegistry("default", connection=sync_redis)
    assert ran_ids(sync_redis) == [old.id, new_id]

    again_status, again = await api.act(old.id, "retry")
    assert again_status == 409 and again["error"] == "wrong_state", again
    assert queued_ids(sync_redis) == []
    assert await audit_rows(api) == [("retry", old.id, "done"), ("retry", old.id, "wrong_state")]
    entries = await api.audit()
    assert entries[-1]["new_id"] == new_id


async def test_retry_of_a_job_that_is_not_failed_is_refused(sync_redis, rq_workers, api) -> None:
    waiting = enqueue(sync_redis, rq_tasks.add, 1, 2)
    status, body = await api.act(waiting.id, "retry")
    # "not in the failed list" (as Autumn's adapter says of any job that is not failed)
    assert status in (404, 409) and body["error"] in ("not_found", "wrong_state"), body
    assert queued_ids(sync_redis) == [waiting.id]
    status, body = await api.act("no-such-job", "retry")
    assert status == 404 and body["error"] == "not_found", body
    rq_workers.run_burst()
    assert ran_ids(sync_redis) == [waiting.id]


async def test_retry_onto_another_queue_keeps_the_origin(sync_redis, rq_workers, api) -> None:
    (old,) = make_failed(sync_redis, rq_workers, queue="low")
    status, body = await api.act(old, "retry")
    assert status == 200, body
    assert queued_ids(sync_redis, "low") == [body["new_id"]] and queued_ids(sync_redis) == []
    assert Job.fetch(body["new_id"], connection=sync_redis).origin == "low"
    assert old not in FailedJobRegistry("low", connection=sync_redis)


# ------------------------------------------------------------------ discard


async def test_discard_removes_the_failed_job_and_only_it(sync_redis, rq_workers, api) -> None:
    keep, gone = make_failed(sync_redis, rq_workers, 2)
    failed = FailedJobRegistry("default", connection=sync_redis)

    status, body = await api.act(gone, "discard")
    assert status == 200, body
    assert body["outcome"] == "discarded" and body["id"] == gone
    assert gone not in failed and keep in failed
    assert status_of(sync_redis, keep) == "failed"

    again_status, again = await api.act(gone, "discard")
    assert again_status in (404, 409), again
    assert again["error"] in ("wrong_state", "not_found"), again
    assert keep in failed

    # A worker goes on working after the discard.
    later = enqueue(sync_redis, rq_tasks.add, 3, 4)
    rq_workers.run_burst()
    assert Job.fetch(later.id, connection=sync_redis).return_value() == 7
    rows = await audit_rows(api)
    assert rows[0] == ("discard", gone, "done") and rows[1][:2] == ("discard", gone)
    assert rows[1][2] == again["error"]


async def test_discard_of_a_job_that_is_not_failed_is_refused(sync_redis, rq_workers, api) -> None:
    waiting = enqueue(sync_redis, rq_tasks.add, 5, 5)
    status, body = await api.act(waiting.id, "discard")
    assert status in (404, 409) and body["error"] in ("wrong_state", "not_found"), body
    assert status_of(sync_redis, waiting.id) == "queued" and queued_ids(sync_redis) == [waiting.id]
    rq_workers.run_burst()
    assert status_of(sync_redis, waiting.id) == "finished"


# ------------------------------------------------------------------ stop


async def test_stop_running_job_ends_it_stopped(sync_redis, rq_workers, api) -> None:
    worker = rq_workers.start()
    worker.wait_registered(sync_redis)
    job = enqueue(sync_redis, rq_tasks.sleep_then, 60, "never")
    await wait_status(sync_redis, job.id, "started")

    status, body = await api.act(job.id, "stop")
    assert status == 200, body
    assert body["id"] == job.id
    await wait_status(sync_redis, job.id, "stopped")
    assert job.id in FailedJobRegistry("default", connection=sync_redis)
    assert job.id not in StartedJobRegistry("default", connection=sync_redis)

    # The worker carries on: it is alive and runs the next job.
    worker.assert_alive()
    after = enqueue(sync_redis, rq_tasks.add, 20, 22)
    await wait_status(sync_redis, after.id, "finished")
    assert Job.fetch(after.id, connection=sync_redis).return_value() == 42
    worker.assert_alive()
    assert await audit_rows(api) == [("stop", job.id, "done")]


async def test_stop_of_a_job_that_is_not_running_is_refused(sync_redis, rq_workers, api) -> None:
    waiting = enqueue(sync_redis, rq_tasks.add, 1, 1)
    status, body = await api.act(waiting.id, "stop")
    assert status == 409 and body["error"] == "wrong_state", body
    assert status_of(sync_redis, waiting.id) == "queued" and queued_ids(sync_redis) == [waiting.id]
    (failed,) = make_failed(sync_redis, rq_workers)
    assert status_of(sync_redis, waiting.id) == "finished"
    status, body = await api.act(failed, "stop")
    assert status == 409 and body["error"] == "wrong_state", body
    assert status_of(sync_redis, failed) == "failed"


# ------------------------------------------------------------------ one worker, every action


async def test_a_worker_keeps_working_through_every_action(
    sync_redis, rq_workers, api, tmp_path
) -> None:
    """One long-lived worker (with the scheduler) sees every action; it never exits and
    runs a fresh job after each."""
    worker = rq_workers.start(scheduler=True)
    worker.wait_registered(sync_redis)
    probes = 0

    async def probe() -> None:
        nonlocal probes
        probes += 1
        job = enqueue(sync_redis, rq_tasks.add, probes, 0)
        await wait_status(sync_redis, job.id, "finished")
        worker.assert_alive()

    failed = enqueue(sync_redis, rq_tasks.fail_once, str(tmp_path / "marker"), value="fine")
    await wait_status(sync_redis, failed.id, "failed")
    await probe()

    # cancel: a job parked behind a long one, so it is still waiting when canceled
    blocker = enqueue(sync_redis, rq_tasks.sleep_then, 1.0, "blocker")
    await wait_status(sync_redis, blocker.id, "started")
    waiting = enqueue(sync_redis, rq_tasks.touch, str(tmp_path / "never"))
    assert (await api.act(waiting.id, "cancel"))[0] == 200
    assert (await api.act(blocker.id, "cancel"))[0] == 409
    await wait_status(sync_redis, blocker.id, "finished")
    await probe()

    status, body = await api.act(failed.id, "retry")
    assert status == 200, body
    await wait_status(sync_redis, body["new_id"], "finished")
    await probe()

    gone = enqueue(sync_redis, rq_tasks.fail, "to discard")
    await wait_status(sync_redis, gone.id, "failed")
    assert (await api.act(gone.id, "discard"))[0] == 200
    await probe()

    sleeper = enqueue(sync_redis, rq_tasks.sleep_then, 60, "never")
    await wait_status(sync_redis, sleeper.id, "started")
    assert (await api.act(sleeper.id, "stop"))[0] == 200
    await wait_status(sync_redis, sleeper.id, "stopped")
    await probe()

    assert not (tmp_path / "never").exists()
    assert status_of(sync_redis, waiting.id) == "canceled"
    outcomes = [(action, outcome) for action, _, outcome in await audit_rows(api)]
    assert outcomes == [
        ("cancel", "done"),
        ("cancel", "wrong_state"),
        ("retry", "done"),
        ("discard", "done"),
        ("stop", "done"),
    ]
    worker.assert_alive()


# -------------------------------------------------------------------- rate limits (RQ 3)


async def test_rate_limited_jobs_are_left_to_rq(
    api: RqApi, sync_redis: redis.Redis, rq_workers: WorkerPool
) -> None:
    from rq.rate_limit import RateLimit

    limit = RateLimit("mail", 1)
    queued = [enqueue(sync_redis, rq_tasks.add, n, rate_limit=limit) for n in range(2)]
    failed = make_failed(sync_redis, rq_workers, rate_limit=RateLimit("fails", 1))[0]
    for job_id, action in ((queued[0].id, "cancel"), (failed, "retry")):
        status, body = await api.act(job_id, action)
        assert status == 409 and body["error"] == "wrong_state", body
        assert "rate-limited" in body["message"]
    # Nothing changed: RQ still runs the queued jobs within their limit, the failure stays.
    assert status_of(sync_redis, queued[0].id) != "canceled"
    assert failed in FailedJobRegistry("default", connection=sync_redis).get_job_ids(cleanup=False)
    rq_workers.run_burst()
    assert all(status_of(sync_redis, job.id) == "finished" for job in queued)


# -------------------------------------------------------------------- metrics and actuator


async def test_metrics_and_actuator_cover_rq(
    api: RqApi, sync_redis: redis.Redis, rq_workers: WorkerPool
) -> None:
    failed = make_failed(sync_redis, rq_workers)[0]
    queued = [enqueue(sync_redis, rq_tasks.add, n) for n in range(2)]
    metrics = await api.client.get("/metrics", headers=api.headers)
    text = await metrics.text()
    assert metrics.status == 200
    assert f'jobbridge_jobs_enqueued{{source="{api.source}"}} 2.0' in text
    assert f'jobbridge_jobs_failed_kept{{source="{api.source}"}} 1.0' in text
    # RQ cannot count a 7-day window: no sample rather than a wrong one.
    assert f'jobbridge_jobs_failed_7d{{source="{api.source}"}}' not in text

    actuator = await api.client.get("/actuator/jobs", headers=api.headers)
    body = await actuator.json()
    assert body["jobs"]["tests.rq.tasks.add"]["queued"] == len(queued)
    assert body["jobs"]["tests.rq.tasks.fail"]["dead_letter"] == 1
    assert "boom" in body["jobs"]["tests.rq.tasks.fail"]["last_error"]

    snapshot = await api.snapshot()
    assert snapshot["counters"]["failed_7d"] is None
    assert snapshot["counters"]["failed_kept"] == 1
    assert [w for w in snapshot["workers"] if w["state"] != "dead"] == []
    assert snapshot["lists"]["failed"]["items"][0]["id"] == failed
