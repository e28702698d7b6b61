"""Every Celery action through the JSON API, its effect checked through Celery itself and real
``celery worker`` processes: a canceled task never runs and Celery reads it REVOKED; a retried
task runs to SUCCESS under its new id; a discarded one leaves the failed list while Celery's
result stays; revoke and terminate reach the workers; refusals say why and change nothing.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from examples.celery_app import task_name
from tests.celery.celery_jobbridge import celery_api, ids, snapshot, wait_row
from tests.celery.celery_support import (
    meta_key,
    ran_ids,
    send,
    state_of,
    wait_for_state,
)
from tests.rq.rq_support import ACTOR, RqApi

pytestmark = pytest.mark.redis


async def audit(api: RqApi) -> list[tuple[str, str, str]]:
    status, body = await api.get("/api/audit?limit=100")
    assert status == 200, body
    entries = [e for e in body["entries"] if e["source"] == api.source]
    assert all(e["actor"] == ACTOR for e in entries), entries
    return [(e["action"], e["job_id"], e["outcome"]) for e in reversed(entries)]


async def test_cancel_waiting_task_never_runs_and_reads_revoked(
    celery_app, celery_workers, redis_url, sync_redis
) -> None:
    keep = send(celery_app, "record", "keep")
    gone = send(celery_app, "record", "gone")
    async with celery_api(redis_url) as api:
        await wait_row(api, "enqueued", gone.id)
        status, body = await api.act(gone.id, "cancel")
        assert status == 200, body
        assert body["outcome"] == "canceled" and body["id"] == gone.id
        assert state_of(celery_app, gone.id) == "REVOKED"

        celery_workers.start(pool="solo")
        wait_for_state(celery_app, keep.id, "SUCCESS", workers=celery_workers)
        assert ran_ids(sync_redis) == [keep.id]
        assert state_of(celery_app, gone.id) == "REVOKED"
        row = await wait_row(api, "canceled", gone.id)
        assert row["raw_status"] == "REVOKED"

        # Canceled once: a second cancel says so and changes nothing.
        status, body = await api.act(gone.id, "cancel")
        assert status == 409 and body["error"] == "wrong_state", body
        assert "already canceled" in body["message"]
        status, body = await api.act("no-such-task", "cancel")
        assert status == 404, body
        assert await audit(api) == [
            ("cancel", gone.id, "done"),
            ("cancel", gone.id, "wrong_state"),
            ("cancel", "no-such-task", "not_found"),
        ]
        status, detail = await api.job(gone.id)
        assert status == 200, detail
        assert [e["status"] for e in detail["lifecycle"]] == ["canceled"]


async def test_cancel_unblocks_a_caller_waiting_on_the_result(celery_app, redis_url) -> None:
    waiting = send(celery_app, "add", 1, 1)
    async with celery_api(redis_url) as api:
        await wait_row(api, "enqueued", waiting.id)
        status, body = await api.act(waiting.id, "cancel")
        assert status == 200, body
    with pytest.raises(Exception) as raised:
        waiting.get(timeout=5)
    assert type(raised.value).__name__ == "TaskRevokedError"


async def test_cancel_of_a_taken_task_is_refused(celery_app, celery_workers, redis_url) -> None:
    celery_workers.start(pool="solo")
    taken = send(celery_app, "sleep", 3)
    wait_for_state(celery_app, taken.id, "STARTED", workers=celery_workers)
    async with celery_api(redis_url) as api:
        status, body = await api.act(taken.id, "cancel")
    assert status == 409 and body["error"] == "wrong_state", body
    assert "a worker took it" in body["message"]
    wait_for_state(celery_app, taken.id, "SUCCESS", workers=celery_workers)


async def test_retry_runs_to_success_under_a_new_id(
    celery_app, celery_workers, redis_url, sync_redis
) -> None:
    celery_workers.start(pool="solo")
    first = send(celery_app, "flaky", "retry-me")
    wait_for_state(celery_app, first.id, "FAILURE", workers=celery_workers)
    async with celery_api(redis_url) as api:
        await wait_row(api, "failed", first.id)
        status, body = await api.act(first.id, "retry")
        assert status == 200, body
        new_id = body["new_id"]
        assert new_id and new_id != first.id
        wait_for_state(celery_app, new_id, "SUCCESS", workers=celery_workers)
        meta = json.loads(sync_redis.get(meta_key(new_id)))
        assert meta["result"] == 2
        assert meta["parent_id"] == first.id
        assert meta["name"] == task_name("flaky") and meta["args"] == ["retry-me"]
        # The old task is a retried lifecycle entry; a second retry makes nothing new.
        body_after = await snapshot(api, per_page=100)
        assert first.id not in ids(body_after, "failed")
        status, again = await api.act(first.id, "retry")
        assert status == 409 and "already retried as " + new_id in again["message"], again
        status, detail = await api.job(first.id)
        assert detail["lifecycle"][0]["status"] == "retried"
        assert detail["lifecycle"][0]["new_id"] == new_id
        await wait_row(api, "completed", new_id)
    assert state_of(celery_app, first.id) == "FAILURE"  # Celery's own result is left alone


async def test_retry_without_extended_results_is_refused(celery_app, redis_url, sync_redis) -> None:
    # What a worker without result_extended stores: no name, args or kwargs.
    task_id = "no-extended-0001"
    meta = json.dumps(
        {
            "status": "FAILURE",
            "result": {"exc_type": "ValueError", "exc_message": ["boom"], "exc_module": "builtins"},
            "traceback": "Traceback ...\nValueError: boom\n",
            "children": [],
            "date_done": "2026-12-03T10:00:00.000000+00:00",
            "task_id": task_id,
        }
    )
    async with celery_api(redis_url) as api:
        sync_redis.set(meta_key(task_id), meta, ex=3600)
        sync_redis.publish(meta_key(task_id), meta)
        row = await wait_row(api, "failed", task_id)
        assert "result_extended" in row["extra"]["retry"]
        status, body = await api.act(task_id, "retry")
        assert status == 409, body
        assert "result_extended = True" in body["message"]
        assert task_id in ids(await snapshot(api, per_page=100), "failed")
        assert sync_redis.llen("celery") == 0


async def test_discard_leaves_celerys_result_alone(
    celery_app, celery_workers, redis_url, sync_redis
) -> None:
    celery_workers.start(pool="solo")
    failed = send(celery_app, "fail", "discard me")
    wait_for_state(celery_app, failed.id, "FAILURE", workers=celery_workers)
    async with celery_api(redis_url) as api:
        await wait_row(api, "failed", failed.id)
        status, body = await api.act(failed.id, "discard")
        assert status == 200 and body["outcome"] == "discarded", body
        assert failed.id not in ids(await snapshot(api, per_page=100), "failed")
        status, body = await api.act(failed.id, "discard")
        assert status == 409 and "already discarded" in body["message"], body
        status, detail = await api.job(failed.id)
        assert status == 200 and detail["lifecycle"][0]["status"] == "discarded"
    assert state_of(celery_app, failed.id) == "FAILURE"
    assert sync_redis.exists(meta_key(failed.id))


async def test_revoke_a_held_task_and_terminate_a_running_one(
    celery_app, celery_workers, redis_url, sync_redis
) -> None:
    celery_workers.start(pool="prefork", concurrency=2)
    held = send(celery_app, "record", "held", countdown=60)
    running = send(celery_app, "sleep", 30)
    wait_for_state(celery_app, running.id, "STARTED", workers=celery_workers)
    async with celery_api(redis_url) as api:
        await wait_row(api, "scheduled", held.id)
        # Revoking and terminating need the page's confirmation step; the API is explicit.
        status, body = await api.act(held.id, "revoke")
        assert status == 200 and body["outcome"] == "revoke_requested", body
        wait_for_state(celery_app, held.id, "REVOKED", workers=celery_workers)

        status, body = await api.act(running.id, "stop")
        assert status == 200 and body["outcome"] == "stop_requested", body
        assert "terminate" in body["message"]
        wait_for_state(celery_app, running.id, "REVOKED", 15, workers=celery_workers)

        done = send(celery_app, "add", 1, 1)
        wait_for_state(celery_app, done.id, "SUCCESS", workers=celery_workers)
        status, body = await api.act(done.id, "revoke")
        assert status == 409 and "already finished" in body["message"], body
        status, body = await api.act(done.id, "stop")
        assert status == 409, body
    assert held.id not in ran_ids(sync_redis)
    assert all(w.alive for w in celery_workers.workers)


async def test_revoke_with_no_worker_listening_is_refused(celery_app, redis_url) -> None:
    waiting = send(celery_app, "add", 1, 1)
    async with celery_api(redis_url) as api:
        await wait_row(api, "enqueued", waiting.id)
        status, body = await api.act(waiting.id, "revoke")
    assert status == 409 and "No Celery worker listens" in body["message"], body


async def test_metrics_actuator_and_workers_cover_celery(
    celery_app, celery_workers, redis_url
) -> None:
    worker = celery_workers.start(pool="solo", queues=("celery",))
    failed = send(celery_app, "fail", "for metrics")
    wait_for_state(celery_app, failed.id, "FAILURE", workers=celery_workers)
    waiting = [celery_app.send_task(task_name("send_email"), args=[f"{n}@x"]) for n in range(2)]
    async with celery_api(redis_url) as api:
        await wait_row(api, "failed", failed.id)
        metrics = await api.client.get("/metrics", headers=api.headers)
        text = await metrics.text()
        assert metrics.status == 200
        assert f'jobbridge_jobs_enqueued{{source="{api.source}"}} 2.0' in text
        assert f'jobbridge_jobs_failed_7d{{source="{api.source}"}} 1.0' in text

        actuator = await api.client.get("/actuator/jobs", headers=api.headers)
        body = await actuator.json()
        assert body["jobs"][task_name("send_email")]["queued"] == len(waiting)
        assert body["jobs"][task_name("fail")]["dead_letter"] == 1
        assert "for metrics" in body["jobs"][task_name("fail")]["last_error"]

        for _ in range(100):
            shown = (await snapshot(api))["workers"]
            if shown and shown[0]["pool"]:
                break
            await asyncio.sleep(0.2)
        assert [w["name"] for w in shown] == [worker.hostname], shown
        assert shown[0]["state"] == "online" and shown[0]["pool"] == "solo"
        assert shown[0]["queues"] == ["celery"]
