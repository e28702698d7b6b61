"""The Celery harness works: real workers run ``examples.celery_app`` tasks on the test Redis.

Each test prints the raw keys the broker and the backend left (``-s`` shows them), so the
layout the Celery adapter has to read is on record.
"""

from __future__ import annotations

import json
import time

import pytest
import redis

from tests.celery.celery_support import (
    key_layout,
    meta_key,
    ran_ids,
    send,
    state_of,
    wait_for_state,
    watch_states,
)
from tests.rq.rq_support import wait_for

pytestmark = pytest.mark.redis


def show_layout(conn: redis.Redis, title: str) -> None:
    print(f"\n--- keys: {title}")
    for info in key_layout(conn):
        print(info)
        # Members of the small structures, to show what they hold (payloads cut short).
        if info.type == "set":
            print("    members:", sorted(conn.smembers(info.name)))
        elif info.type == "zset":
            print("    members:", conn.zrange(info.name, 0, -1, withscores=True))
        elif info.type == "hash":
            for tag, value in conn.hgetall(info.name).items():
                print(f"    {tag!r}: {value[:160]!r}...")


def stored_meta(conn: redis.Redis, task_id: str) -> dict:
    raw = conn.get(meta_key(task_id))
    assert raw is not None, f"no {meta_key(task_id)}"
    return json.loads(raw)


def test_add_succeeds_with_extended_meta(celery_app, celery_workers, sync_redis):
    worker = celery_workers.start(pool="solo")
    result = send(celery_app, "add", 2, 3)
    wait_for_state(celery_app, result.id, "SUCCESS", workers=celery_workers)

    meta = stored_meta(sync_redis, result.id)
    assert meta["status"] == "SUCCESS"
    assert meta["result"] == 5
    assert meta["task_id"] == result.id
    assert meta["name"] == "examples.celery_app.add"
    assert meta["args"] == [2, 3]
    assert meta["kwargs"] == {}
    assert meta["worker"] == worker.hostname
    assert meta["queue"] == "celery"
    assert 0 < sync_redis.ttl(meta_key(result.id)) <= 86400

    recorded = send(celery_app, "record", "once")
    chained = (
        celery_app.signature("examples.celery_app.add", args=(1, 4))
        | celery_app.signature("examples.celery_app.mul", args=(10,))
    ).apply_async()
    wait_for_state(celery_app, recorded.id, "SUCCESS", workers=celery_workers)
    wait_for_state(celery_app, chained.id, "SUCCESS", workers=celery_workers)
    assert ran_ids(sync_redis) == [recorded.id]
    assert stored_meta(sync_redis, chained.id)["result"] == 50
    show_layout(sync_redis, "solo worker after add, record and a chain")


def test_fail_ends_failure_with_traceback(celery_app, celery_workers, sync_redis):
    celery_workers.start(pool="solo")
    result = send(celery_app, "fail", "kaboom")
    wait_for_state(celery_app, result.id, "FAILURE", workers=celery_workers)

    meta = stored_meta(sync_redis, result.id)
    assert meta["result"]["exc_type"] == "ValueError"
    assert meta["result"]["exc_message"] == ["kaboom"]
    assert "ValueError: kaboom" in meta["traceback"]
    assert meta["name"] == "examples.celery_app.fail"

    # ``flaky`` fails on its first run for a key and succeeds on the next.
    first = send(celery_app, "flaky", "k")
    wait_for_state(celery_app, first.id, "FAILURE", workers=celery_workers)
    again = send(celery_app, "flaky", "k")
    wait_for_state(celery_app, again.id, "SUCCESS", workers=celery_workers)
    assert stored_meta(sync_redis, again.id)["result"] == 2


def test_retrying_passes_through_retry(celery_app, celery_workers, sync_redis):
    celery_workers.start(pool="solo")
    result = send(celery_app, "retrying", 2, countdown=0.5)
    seen = watch_states(celery_app, result.id, "SUCCESS", timeout=15)
    assert "RETRY" in seen, seen
    assert seen[-1] == "SUCCESS"
    meta = stored_meta(sync_redis, result.id)
    assert meta["result"] == 2
    assert meta["retries"] == 2


def test_prefork_runs_two_tasks_at_once(celery_app, celery_workers, sync_redis):
    celery_workers.start(pool="prefork", concurrency=2)
    first, second = send(celery_app, "sleep", 2), send(celery_app, "sleep", 2)
    started = time.monotonic()
    wait_for_state(celery_app, first.id, "STARTED", 5, workers=celery_workers)
    wait_for_state(celery_app, second.id, "STARTED", 5, workers=celery_workers)
    assert time.monotonic() - started < 1.5
    assert state_of(celery_app, first.id) == "STARTED"
    pids = {stored_meta(sync_redis, t.id)["result"]["pid"] for t in (first, second)}
    assert len(pids) == 2

    # While both processes are busy: a prefetched task, an ETA task, a priority-9 task on a
    # queue nobody consumes and a plain one on that queue, to see every broker structure.
    send(celery_app, "sleep", 0.1)
    send(celery_app, "add", 1, 1, countdown=60)
    send(celery_app, "add", 1, 2, queue="nobody", priority=9)
    send(celery_app, "add", 1, 3, queue="nobody")
    wait_for(lambda: sync_redis.hlen("unacked") >= 2, "prefetched and ETA messages in unacked")
    show_layout(sync_redis, "prefork -c 2: two running, one prefetched, one ETA, two unconsumed")
    wait_for_state(celery_app, first.id, "SUCCESS", 5, workers=celery_workers)
    wait_for_state(celery_app, second.id, "SUCCESS", 5, workers=celery_workers)


def test_mail_task_runs_only_on_a_mail_consumer(celery_app, celery_workers, sync_redis):
    celery_workers.start(["celery"], pool="solo")
    result = send(celery_app, "send_email", "ops@example.com")
    wait_for(lambda: sync_redis.llen("mail") == 1, "the message on the mail list")
    time.sleep(0.5)
    assert state_of(celery_app, result.id) == "PENDING"
    assert sync_redis.llen("mail") == 1

    mailer = celery_workers.start(["mail"], pool="solo")
    wait_for_state(celery_app, result.id, "SUCCESS", workers=celery_workers)
    meta = stored_meta(sync_redis, result.id)
    assert meta["worker"] == mailer.hostname
    assert meta["queue"] == "mail"
    assert meta["result"] == "sent to ops@example.com"
    assert sync_redis.llen("mail") == 0


def test_revoke_terminate_ends_a_running_task_revoked(celery_app, celery_workers, sync_redis):
    worker = celery_workers.start(pool="prefork", concurrency=1)
    result = send(celery_app, "sleep", 30)
    wait_for_state(celery_app, result.id, "STARTED", 5, workers=celery_workers)

    celery_app.control.revoke(result.id, terminate=True)
    wait_for_state(celery_app, result.id, "REVOKED", 5, workers=celery_workers)
    meta = stored_meta(sync_redis, result.id)
    assert meta["result"]["exc_type"] == "TaskRevokedError"
    worker.assert_alive()
    assert worker.ping(celery_app)
    show_layout(sync_redis, "after revoke(terminate=True)")
