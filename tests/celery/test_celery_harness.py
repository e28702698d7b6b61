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


def test_add_succeeds_with_extended_meta(capp, workers, conn):
    worker = workers.start(pool="solo")
    result = send(capp, "add", 2, 3)
    wait_for_state(capp, result.id, "SUCCESS", workers=workers)

    meta = stored_meta(conn, result.id)
    assert meta["status"] == "SUCCESS"
    assert meta["result"] == 5
    assert meta["task_id"] == result.id
    assert meta["name"] == "examples.celery_app.add"
    assert meta["args"] == [2, 3]
    assert meta["kwargs"] == {}
    assert meta["worker"] == worker.hostname
    assert meta["queue"] == "celery"
    assert 0 < conn.ttl(meta_key(result.id)) <= 86400

    recorded = send(capp, "record", "once")
    chained = (
        capp.signature("examples.celery_app.add", args=(1, 4))
        | capp.signature("examples.celery_app.mul", args=(10,))
    ).apply_async()
    wait_for_state(capp, recorded.id, "SUCCESS", workers=workers)
    wait_for_state(capp, chained.id, "SUCCESS", workers=workers)
    assert ran_ids(conn) == [recorded.id]
    assert stored_meta(conn, chained.id)["result"] == 50
    show_layout(conn, "solo worker after add, record and a chain")


def test_fail_ends_failure_with_traceback(capp, workers, conn):
    workers.start(pool="solo")
    result = send(capp, "fail", "kaboom")
    wait_for_state(capp, result.id, "FAILURE", workers=workers)

    meta = stored_meta(conn, result.id)
    assert meta["result"]["exc_type"] == "ValueError"
    assert meta["result"]["exc_message"] == ["kaboom"]
    assert "ValueError: kaboom" in meta["traceback"]
    assert meta["name"] == "examples.celery_app.fail"

    # ``flaky`` fails on its first run for a key and succeeds on the next.
    first = send(capp, "flaky", "k")
    wait_for_state(capp, first.id, "FAILURE", workers=workers)
    again = send(capp, "flaky", "k")
    wait_for_state(capp, again.id, "SUCCESS", workers=workers)
    assert stored_meta(conn, again.id)["result"] == 2


def test_retrying_passes_through_retry(capp, workers, conn):
    workers.start(pool="solo")
    result = send(capp, "retrying", 2, countdown=0.5)
    seen = watch_states(capp, result.id, "SUCCESS", timeout=15)
    assert "RETRY" in seen, seen
    assert seen[-1] == "SUCCESS"
    meta = stored_meta(conn, result.id)
    assert meta["result"] == 2
    assert meta["retries"] == 2


def test_prefork_runs_two_tasks_at_once(capp, workers, conn):
    workers.start(pool="prefork", concurrency=2)
    first, second = send(capp, "sleep", 2), send(capp, "sleep", 2)
    started = time.monotonic()
    wait_for_state(capp, first.id, "STARTED", 5, workers=workers)
    wait_for_state(capp, second.id, "STARTED", 5, workers=workers)
    assert time.monotonic() - started < 1.5
    assert state_of(capp, first.id) == "STARTED"
    pids = {stored_meta(conn, t.id)["result"]["pid"] for t in (first, second)}
    assert len(pids) == 2

    # While both processes are busy: a prefetched task, an ETA task, a priority-9 task on a
    # queue nobody consumes and a plain one on that queue, to see every broker structure.
    send(capp, "sleep", 0.1)
    send(capp, "add", 1, 1, countdown=60)
    send(capp, "add", 1, 2, queue="nobody", priority=9)
    send(capp, "add", 1, 3, queue="nobody")
    wait_for(lambda: conn.hlen("unacked") >= 2, "prefetched and ETA messages in unacked")
    show_layout(conn, "prefork -c 2: two running, one prefetched, one ETA, two unconsumed")
    wait_for_state(capp, first.id, "SUCCESS", 5, workers=workers)
    wait_for_state(capp, second.id, "SUCCESS", 5, workers=workers)


def test_mail_task_runs_only_on_a_mail_consumer(capp, workers, conn):
    workers.start(["celery"], pool="solo")
    result = send(capp, "send_email", "ops@example.com")
    wait_for(lambda: conn.llen("mail") == 1, "the message on the mail list")
    time.sleep(0.5)
    assert state_of(capp, result.id) == "PENDING"
    assert conn.llen("mail") == 1

    mailer = workers.start(["mail"], pool="solo")
    wait_for_state(capp, result.id, "SUCCESS", workers=workers)
    meta = stored_meta(conn, result.id)
    assert meta["worker"] == mailer.hostname
    assert meta["queue"] == "mail"
    assert meta["result"] == "sent to ops@example.com"
    assert conn.llen("mail") == 0


def test_revoke_terminate_ends_a_running_task_revoked(capp, workers, conn):
    worker = workers.start(pool="prefork", concurrency=1)
    result = send(capp, "sleep", 30)
    wait_for_state(capp, result.id, "STARTED", 5, workers=workers)

    capp.control.revoke(result.id, terminate=True)
    wait_for_state(capp, result.id, "REVOKED", 5, workers=workers)
    meta = stored_meta(conn, result.id)
    assert meta["result"]["exc_type"] == "TaskRevokedError"
    worker.assert_alive()
    assert worker.ping(capp)
    show_layout(conn, "after revoke(terminate=True)")
