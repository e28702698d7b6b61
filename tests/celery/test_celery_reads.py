"""A Celery source read through jobbridge's JSON API, with messages made by Celery itself and
tasks run by real ``celery worker`` processes.

Every list is checked against what Celery says: messages ``apply_async`` published show in
the enqueued list newest first with their fields and place in line; held messages in the
scheduled or running list; STARTED / SUCCESS / FAILURE / REVOKED tasks in theirs within
seconds; and a jobbridge restarted mid-run still shows what finished before, and (after its
backfill) what finished while it was down.
"""

from __future__ import annotations

import pytest
import redis

from examples.celery_app import MAIL_QUEUE, task_name
from tests.celery.celery_jobbridge import celery_api, ids, snapshot, wait_row
from tests.celery.celery_support import (
    send,
    wait_for_state,
)

pytestmark = pytest.mark.redis


async def test_waiting_messages_newest_first_with_their_fields(
    celery_app, redis_url, sync_redis
) -> None:
    first = send(celery_app, "add", 1, 2)
    urgent = send(celery_app, "add", 3, 4, priority=9)
    later = send(celery_app, "add", 5, 6, countdown=300)
    kwargs = celery_app.send_task(task_name("add"), kwargs={"a": 7, "b": 8}, priority=4)
    mail = celery_app.send_task(task_name("send_email"), args=["ops@example.com"])
    chain = (
        celery_app.signature(task_name("add"), args=(1, 1))
        | celery_app.signature(task_name("mul"), args=(3,))
    ).apply_async()
    newest = send(celery_app, "add", 9, 9)

    async with celery_api(redis_url) as api:
        row = await wait_row(api, "enqueued", mail.id)
        body = await snapshot(api, per_page=100)
    listed = ids(body, "enqueued")
    # The default queue first (its lists from the one that runs last), then mail.
    assert listed == [urgent.id, kwargs.id, newest.id, chain.parent.id, later.id, first.id, mail.id]
    assert body["lists"]["enqueued"]["total"] == 7
    assert body["counters"]["enqueued"] == 7
    by_id = {item["id"]: item for item in body["lists"]["enqueued"]["items"]}

    assert row["name"] == task_name("send_email") and row["queue"] == MAIL_QUEUE
    plain = by_id[first.id]
    assert plain["name"] == task_name("add")
    assert plain["status"] == "enqueued"
    assert "(1, 2)" in plain["payload_preview"]
    assert plain["actions"] == ["cancel"]
    # Place in line within the queue: priority step 0 runs first, oldest first.
    assert by_id[first.id]["extra"]["place in line"] == "1"
    assert by_id[later.id]["extra"]["place in line"] == "2"
    assert by_id[newest.id]["extra"]["place in line"] == "4"
    assert by_id[kwargs.id]["extra"]["place in line"] == "5"  # priority 4 -> step 3
    assert by_id[urgent.id]["extra"]["place in line"] == "6"  # priority 9 -> step 9
    assert by_id[urgent.id]["extra"]["priority"] == "9"
    assert "b=8" in by_id[kwargs.id]["payload_preview"]
    assert by_id[later.id]["scheduled_for"] is not None
    assert task_name("mul") in by_id[chain.parent.id]["extra"]["chain"]
    queues = {q["name"]: q["enqueued"] for q in body["counters"]["queues"]}
    assert queues == {"celery": 6, MAIL_QUEUE: 1}

    # Paging reads only the page: page 2 of 3 per page.
    async with celery_api(redis_url) as api:
        await wait_row(api, "enqueued", mail.id)
        second = await snapshot(api, per_page=3, enqueued_page=2, only="enqueued")
    assert ids(second, "enqueued") == listed[3:6]


async def test_held_running_and_finished_tasks(celery_app, celery_workers, redis_url) -> None:
    async with celery_api(redis_url) as api:
        celery_workers.start(pool="prefork", concurrency=2)
        done = send(celery_app, "add", 2, 3)
        failed = send(celery_app, "fail", "kaboom")
        wait_for_state(celery_app, done.id, "SUCCESS", workers=celery_workers)
        wait_for_state(celery_app, failed.id, "FAILURE", workers=celery_workers)
        completed = await wait_row(api, "completed", done.id)
        assert completed["status"] == "completed" and completed["raw_status"] == "SUCCESS"
        assert completed["name"] == task_name("add")
        assert completed["worker"]
        row = await wait_row(api, "failed", failed.id)
        assert row["status"] == "failed" and "kaboom" in row["last_error"]
        assert row["actions"] == ["retry", "discard"]

        long_a, long_b = send(celery_app, "sleep", 4), send(celery_app, "sleep", 4)
        wait_for_state(celery_app, long_a.id, "STARTED", workers=celery_workers)
        wait_for_state(celery_app, long_b.id, "STARTED", workers=celery_workers)
        eta = send(celery_app, "add", 1, 1, countdown=120)
        prefetched = send(celery_app, "add", 4, 4)
        running = await wait_row(api, "running", long_a.id)
        assert running["status"] == "running"
        held = await wait_row(api, "scheduled", eta.id)
        assert held["status"] == "scheduled" and held["scheduled_for"]
        assert held["raw_status"] == "held until its eta"
        reserved = await wait_row(api, "running", prefetched.id)
        assert reserved["raw_status"] == "reserved (prefetched)"
        body = await snapshot(api)
        assert body["counters"]["scheduled"] == 1
        assert body["counters"]["running"] >= 3
        assert body["counters"]["completed_24h"] >= 1 and body["counters"]["failed_7d"] == 1

        retrying = send(celery_app, "retrying", 1, countdown=0.3)
        revoked = send(celery_app, "add", 8, 8, countdown=60)
        await wait_row(api, "scheduled", revoked.id)
        celery_app.control.revoke(revoked.id)
        wait_for_state(celery_app, revoked.id, "REVOKED", workers=celery_workers)
        canceled = await wait_row(api, "canceled", revoked.id)
        assert canceled["raw_status"] == "REVOKED"
        wait_for_state(celery_app, retrying.id, "SUCCESS", workers=celery_workers)
        await wait_row(api, "completed", retrying.id)


async def test_restart_keeps_history_and_backfills_what_finished_meanwhile(
    celery_app, celery_workers, redis_url
) -> None:
    celery_workers.start(pool="solo")
    before = send(celery_app, "add", 1, 1)
    async with celery_api(redis_url) as api:
        wait_for_state(celery_app, before.id, "SUCCESS", workers=celery_workers)
        await wait_row(api, "completed", before.id)
    # jobbridge is down while these finish: nobody hears their results published.
    meanwhile = [send(celery_app, "add", n, n) for n in range(5)]
    broken = send(celery_app, "fail", "while away")
    for result in meanwhile:
        wait_for_state(celery_app, result.id, "SUCCESS", workers=celery_workers)
    wait_for_state(celery_app, broken.id, "FAILURE", workers=celery_workers)
    async with celery_api(redis_url) as api:
        for result in meanwhile:
            await wait_row(api, "completed", result.id, timeout=30)
        await wait_row(api, "failed", broken.id, timeout=30)
        body = await snapshot(api, per_page=100)
        assert before.id in ids(body, "completed")


async def test_queues_from_bindings_and_a_broken_list(
    celery_app, redis_url, sync_redis: redis.Redis
) -> None:
    send(celery_app, "add", 1, 1)
    celery_app.send_task(task_name("send_email"), args=["a@example.com"])
    sync_redis.set("celery\x06\x163", "not a list")
    async with celery_api(redis_url) as api:
        body = await snapshot(api)
        for _ in range(50):
            if {q["name"] for q in body["counters"]["queues"]} >= {"celery", MAIL_QUEUE}:
                break
            body = await snapshot(api)
    assert {q["name"] for q in body["counters"]["queues"]} == {"celery", MAIL_QUEUE}
    assert any("is not a list" in p for p in body["counters"]["problems"])
    assert body["counters"]["enqueued"] == 2
