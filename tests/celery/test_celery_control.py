"""jobbridge's Celery control messages against real workers on the test Redis.

Every message here is built by ``jobbridge.adapters.celery.control`` and written with plain
redis-py (``PUBLISH``, ``LPUSH``, ``SET``): no Celery client sends anything that is checked.
The Celery client only reads results back (``state_of``, ``AsyncResult.get``) and starts the
``sleep`` and countdown tasks the revokes act on.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis
import redis.asyncio
from celery.exceptions import TaskRevokedError  # type: ignore[import-untyped]
from celery.result import AsyncResult  # type: ignore[import-untyped]

from examples import celery_app as example
from jobbridge.adapters.celery.control import (
    build_task_message,
    events_pattern,
    pidbox_channel,
    reply_binding,
    reply_list,
    reply_to,
    revoke_envelope,
    revoked_meta,
    validate_task_message,
)
from jobbridge.adapters.celery.envelope import (
    decode_event,
    decode_reply,
)
from jobbridge.adapters.celery.keys import CeleryKeys
from jobbridge.adapters.celery.result_meta import decode_result_meta
from jobbridge.adapters.celery.workers import MAX_EVENT_MESSAGE_BYTES, WorkerWatch
from jobbridge.dev.private_redis import start_redis_server
from tests.celery.celery_support import (
    CeleryWorker,
    meta_key,
    ran_ids,
    send,
    start_with_transport_options,
    state_of,
    wait_for_state,
)
from tests.celery.celery_unacked_seed import events_channel
from tests.integration.processes import scaled
from tests.rq.rq_support import async_wait_for, wait_for

pytestmark = pytest.mark.redis


def db_of(redis_url: str) -> int:
    return int(urlsplit(redis_url).path.lstrip("/") or 0)


def held_tags(conn: redis.Redis) -> set[str]:
    """Task ids of the messages in ``unacked`` (prefetched, or held for their eta)."""
    ids = set()
    for value in conn.hvals("unacked"):
        message = json.loads(value)[0]
        ids.add(message["headers"]["id"])
    return ids


def broadcast(conn: redis.Redis, redis_url: str, raw: bytes) -> int:
    """PUBLISH a control message on the pidbox channel; how many subscribers got it."""
    return int(conn.publish(pidbox_channel("", db_of(redis_url)), raw))


class EventTap:
    """Messages on the event channels, as a monitor receives them (decoded by jobbridge)."""

    def __init__(self, conn: redis.Redis, pattern: str) -> None:
        self.pubsub = conn.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
        self.pubsub.psubscribe(pattern)
        #: (channel, event) for every event received
        self.events: list[tuple[str, dict[str, Any]]] = []

    def pump(self, seconds: float = 0.05) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            message = self.pubsub.get_message(timeout=0.05)
            if message is not None:
                channel = message["channel"].decode()
                self.events += [(channel, e) for e in decode_event(message["data"])]

    def wait_for(self, what: str, check: Any, timeout: float = 10.0) -> dict[str, Any]:
        """The first event ``check`` accepts, pumping until it comes."""

        def found() -> Any:
            self.pump()
            return next((e for _, e in self.events if check(e)), None)

        return wait_for(found, what, timeout, every=0)

    def close(self) -> None:
        self.pubsub.close()


# ------------------------------------------------------------------ revoke


def test_revoke_envelope_makes_a_worker_discard_a_task_it_holds(
    celery_app, celery_workers, sync_redis, redis_url
):
    worker = celery_workers.start(pool="solo")
    held = send(celery_app, "record", "held", countdown=3)
    wait_for(lambda: held.id in held_tags(sync_redis), "the worker to hold the countdown task")

    assert broadcast(sync_redis, redis_url, revoke_envelope(held.id, ticket=str(uuid.uuid4()))) >= 1
    # Celery 5.7's revoke handler stores REVOKED at once for a task that has no result yet ...
    wait_for_state(celery_app, held.id, "REVOKED", 8, workers=celery_workers)
    assert (
        decode_result_meta(sync_redis.get(meta_key(held.id))).error == "TaskRevokedError: revoked"
    )
    # ... and the worker discards the message it holds when its eta comes.
    wait_for(lambda: held.id not in held_tags(sync_redis), "the held message to be discarded", 8)
    wait_for(
        lambda: (
            f"Discarding revoked task: {example.task_name('record')}[{held.id}]"
            in worker.logs(10**6)
        ),
        "the discard in the worker's log",
    )
    meta = decode_result_meta(sync_redis.get(meta_key(held.id)))
    assert (meta.status, meta.worker) == ("REVOKED", worker.hostname)

    # With a reply_to the worker answers on jobbridge's own reply list.
    oid = str(uuid.uuid4())
    set_key, member = reply_binding("", oid)
    sync_redis.sadd(set_key, member)
    other = send(celery_app, "record", "other", countdown=3)
    wait_for(lambda: other.id in held_tags(sync_redis), "the worker to hold the second task")
    ticket = str(uuid.uuid4())
    broadcast(
        sync_redis, redis_url, revoke_envelope(other.id, ticket=ticket, reply_to=reply_to(oid))
    )
    popped = sync_redis.blpop([reply_list("", oid)], timeout=5)
    assert popped is not None, worker.describe()
    answer = decode_reply(popped[1], ticket=ticket)
    assert answer is not None and worker.hostname in answer
    assert other.id in answer[worker.hostname]["ok"]  # "tasks flagged as revoked: <id>"
    sync_redis.srem(set_key, member)
    wait_for_state(celery_app, other.id, "REVOKED", 8, workers=celery_workers)
    wait_for(lambda: other.id not in held_tags(sync_redis), "the second message to be discarded", 8)

    control = send(celery_app, "record", "control")
    wait_for_state(celery_app, control.id, "SUCCESS", workers=celery_workers)
    assert ran_ids(sync_redis) == [control.id]  # the revoked ones never ran
    worker.assert_alive()


def test_revoke_envelope_terminate_ends_a_running_task(
    celery_app, celery_workers, sync_redis, redis_url
):
    worker = celery_workers.start(pool="prefork", concurrency=1)
    running = send(celery_app, "sleep", 30)
    wait_for_state(celery_app, running.id, "STARTED", 8, workers=celery_workers)

    started = time.monotonic()
    raw = revoke_envelope(running.id, terminate=True, ticket=str(uuid.uuid4()))
    assert broadcast(sync_redis, redis_url, raw) >= 1
    wait_for_state(celery_app, running.id, "REVOKED", 8, workers=celery_workers)
    assert time.monotonic() - started < 8  # not the 30 s of the task
    meta = decode_result_meta(sync_redis.get(meta_key(running.id)))
    assert meta.error == "TaskRevokedError: terminated"

    # The pool replaced its process: the worker goes on running tasks.
    after = send(celery_app, "add", 1, 2)
    wait_for_state(celery_app, after.id, "SUCCESS", 10, workers=celery_workers)
    worker.assert_alive()


# ------------------------------------------------------------------ task messages


@pytest.mark.parametrize(("pool", "priority"), [("solo", None), ("prefork", 6)])
def test_built_message_runs_to_success(
    celery_app, celery_workers, sync_redis, redis_url, pool, priority
):
    worker = celery_workers.start(pool=pool, concurrency=2)
    tap = EventTap(sync_redis, events_pattern("", db_of(redis_url), "task"))
    try:
        task_id = str(uuid.uuid4())
        parent_id, root_id = f"parent-{uuid.uuid4()}", f"root-{uuid.uuid4()}"
        raw = build_task_message(
            task=example.task_name("record"),
            task_id=task_id,
            args=["built"],
            kwargs={},
            queue="celery",
            priority=priority,
            parent_id=parent_id,
            root_id=root_id,
            origin="jobbridge@test",
        )
        assert validate_task_message(raw, queue="celery") is None
        sync_redis.lpush(CeleryKeys().priority_list("celery", priority or 0), raw)

        wait_for_state(celery_app, task_id, "SUCCESS", 10, workers=celery_workers)
        meta = decode_result_meta(sync_redis.get(meta_key(task_id)))
        assert (meta.parent_id, meta.name, meta.args, meta.queue) == (
            parent_id,
            example.task_name("record"),
            ["built"],
            "celery",
        )
        assert meta.worker == worker.hostname
        assert ran_ids(sync_redis) == [task_id]
        # Celery keeps no root_id in a meta; the worker's task-received event shows it.
        received = tap.wait_for(
            "task-received", lambda e: e["type"] == "task-received" and e["uuid"] == task_id
        )
        assert (received["root_id"], received["parent_id"]) == (root_id, parent_id)
    finally:
        tap.close()
    worker.assert_alive()
    assert worker.ping(celery_app)


# ------------------------------------------------------------------ result metas


@pytest.mark.slow
def test_revoked_meta_unblocks_a_waiting_get(celery_app, sync_redis):
    task_id = str(uuid.uuid4())
    key = meta_key(task_id)
    outcome: dict[str, Any] = {}

    def wait() -> None:
        try:
            outcome["value"] = AsyncResult(task_id, app=celery_app).get(timeout=15)
        except Exception as exc:  # what get raised is the point
            outcome["error"] = exc
        outcome["at"] = time.monotonic()

    waiter = threading.Thread(target=wait, daemon=True)
    waiter.start()
    wait_for(lambda: sync_redis.pubsub_numsub(key)[0][1] >= 1, "the waiter to subscribe")
    # Right after subscribing, the client reads the key once (so it misses nothing written
    # before); write after that read, to see what wakes it.
    time.sleep(0.5)
    meta = revoked_meta(
        task_id,
        date_done=datetime.now(UTC),
        name=example.task_name("add"),
        args=[1, 2],
        kwargs={},
        queue="celery",
        parent_id=None,
        root_id=None,
        extended=True,
    )
    sync_redis.set(key, meta, ex=86400)
    time.sleep(0.5)
    assert "at" not in outcome  # the client does not poll: the PUBLISH is what wakes it
    published = time.monotonic()
    assert sync_redis.publish(key, meta) >= 1
    waiter.join(timeout=5)
    assert "at" in outcome, "AsyncResult.get did not return"
    assert outcome["at"] - published < 1.0
    assert isinstance(outcome.get("error"), TaskRevokedError), outcome
    assert state_of(celery_app, task_id) == "REVOKED"
    assert 86000 < sync_redis.ttl(key) <= 86400
    assert AsyncResult(task_id, app=celery_app).name == example.task_name("add")


# ------------------------------------------------------------------ events


def test_decode_event_reads_a_workers_events(celery_app, celery_workers, sync_redis, redis_url):
    db = db_of(redis_url)
    tap = EventTap(sync_redis, events_pattern("", db))
    try:
        worker = celery_workers.start(pool="solo", events=True)
        online = tap.wait_for("worker-online", lambda e: e["type"] == "worker-online")
        assert online["hostname"] == worker.hostname
        beat = tap.wait_for("worker-heartbeat", lambda e: e["type"] == "worker-heartbeat")
        assert isinstance(beat["timestamp"], float) and beat["freq"] == 2.0

        result = send(celery_app, "add", 2, 3)
        wait_for_state(celery_app, result.id, "SUCCESS", workers=celery_workers)
        for kind in ("task-received", "task-started", "task-succeeded"):
            tap.wait_for(kind, lambda e, k=kind: e["type"] == k and e.get("uuid") == result.id)
        mine = {(channel, e["type"]) for channel, e in tap.events if e.get("uuid") == result.id}
        # The client's task-sent on its own channel; the worker, with its event loop, buffers
        # its task events and publishes them as lists on task.multi.
        multi = events_channel("", db, "task-multi")
        assert mine == {
            (events_channel("", db, "task-sent"), "task-sent"),
            (multi, "task-received"),
            (multi, "task-started"),
            (multi, "task-succeeded"),
        }, mine
        worker.stop()
        offline = tap.wait_for("worker-offline", lambda e: e["type"] == "worker-offline")
        assert offline["hostname"] == worker.hostname
        for channel, event in tap.events:
            if event["type"].startswith("worker-"):
                assert channel == events_channel("", db, event["type"])
    finally:
        tap.close()


# ------------------------------------------------------------------ the watch


def watched(watch: WorkerWatch, name: str) -> Any:
    return next((w for w in watch.workers() if w.name == name), None)


async def test_worker_watch_follows_a_prefork_worker(
    celery_workers, sync_redis, redis_url, redis_client
):
    watch = WorkerWatch(redis_client, global_keyprefix="", db=db_of(redis_url), source="t")
    await watch.start()
    await watch.start()  # idempotent
    try:
        # (without -E; the example app turns task events on in its configuration anyway)
        worker: CeleryWorker = await asyncio.to_thread(
            celery_workers.start, pool="prefork", concurrency=2, events=False
        )

        def described() -> bool:
            seen = watched(watch, worker.hostname)
            return seen is not None and seen.state == "online" and seen.pool is not None

        started = time.monotonic()
        await async_wait_for(described, "the watch to describe the worker", timeout=10)
        print(f"described after {time.monotonic() - started:.1f}s")
        seen = watched(watch, worker.hostname)
        assert (seen.pool, seen.concurrency) == ("prefork", 2)
        assert set(seen.queues) == set(worker.queues)
        assert seen.reserved == 0 and seen.active == 0
        assert seen.pid == worker.process.pid
        assert seen.last_heartbeat is not None and seen.last_heartbeat.tzinfo is not None
        assert abs(seen.last_heartbeat.timestamp() - time.time()) < 5
        assert seen.hostname == "jbtest"
        assert watch.inspections >= 1

        await asyncio.to_thread(worker.stop)
        await async_wait_for(
            lambda: watched(watch, worker.hostname).state == "offline",
            "the watch to see the worker offline",
            timeout=5,
        )
        # through its worker-offline event, not the expiry of its heartbeats
        assert watch._hosts[worker.hostname].offline_at is not None
    finally:
        closing = time.monotonic()
        await watch.close()
        assert time.monotonic() - closing < 1.5
    assert_no_reply_keys(sync_redis, "")


def assert_no_reply_keys(conn: redis.Redis, prefix: str) -> None:
    """Nothing of the watch's inspections is left: no reply list, no reply binding."""
    assert conn.keys(f"{prefix}*.reply.celery.pidbox") == []
    assert conn.smembers(f"{prefix}_kombu.binding.reply.celery.pidbox") == set()


async def test_worker_watch_sees_a_killed_worker_expire(
    celery_app, celery_workers, sync_redis, redis_url, redis_client
):
    worker = await asyncio.to_thread(celery_workers.start, pool="solo")
    watch = WorkerWatch(redis_client, global_keyprefix="", db=db_of(redis_url), source="t")
    await watch.start()
    try:
        # the inspection at start finds the running worker at once
        await async_wait_for(
            lambda: getattr(watched(watch, worker.hostname), "pool", None) == "solo",
            "the inspection at start",
            timeout=5,
        )
        seen = watched(watch, worker.hostname)
        assert (seen.state, seen.concurrency, seen.reserved) == ("online", 1, 0)
        # tasks held for their eta are scheduled, not reserved (as Celery's inspect says)
        eta_ids = {send(celery_app, "add", 1, n, countdown=30).id for n in range(2)}
        await async_wait_for(lambda: eta_ids <= held_tags(sync_redis), "the worker to hold both")
        await watch.inspect()
        held = watched(watch, worker.hostname)
        assert (held.reserved, held.scheduled) == (0, 2)
        await async_wait_for(
            lambda: watched(watch, worker.hostname).last_heartbeat is not None,
            "a heartbeat",
            timeout=5,
        )
        worker.process.kill()  # no worker-offline event: only the heartbeats stop
        killed = time.monotonic()
        await async_wait_for(
            lambda: watched(watch, worker.hostname).state == "offline",
            "the heartbeat to expire",
            timeout=8,
        )
        # freq x 2 = 4 s after the last heartbeat, which came at most 2 s before the kill
        assert time.monotonic() - killed < 5
    finally:
        await watch.close()


@pytest.mark.slow
async def test_worker_watch_reconnects_after_redis_restarts(redis_server, caplog):
    server = start_redis_server(binary=redis_server.binary)
    client = redis.asyncio.Redis.from_url(server.url(0), socket_timeout=5)
    publisher = redis.Redis.from_url(server.url(0))
    watch = WorkerWatch(client, global_keyprefix="jb:", db=0, source="restarts")
    channel = events_channel("jb:", 0, "worker-heartbeat")

    def beat(hostname: str) -> bytes:
        body = {"hostname": hostname, "freq": 2.0, "timestamp": time.time()}
        body["type"] = "worker-heartbeat"
        return json.dumps(
            {
                "body": base64.b64encode(json.dumps(body).encode()).decode(),
                "content-encoding": "utf-8",
                "content-type": "application/json",
                "headers": {"hostname": hostname},
                "properties": {"body_encoding": "base64", "delivery_tag": "t"},
            }
        ).encode()

    try:
        await watch.start()
        await async_wait_for(
            lambda: publisher.publish(channel, beat("before@h")) and watched(watch, "before@h"),
            "the first heartbeat",
            timeout=5,
        )
        server.stop()
        await asyncio.sleep(1.5)  # the watch notices, and retries with backoff
        server.restart()
        publisher.connection_pool.disconnect()
        await async_wait_for(
            lambda: publisher.publish(channel, beat("after@h")) and watched(watch, "after@h"),
            "a heartbeat after the restart",
            timeout=15,
        )
        lost = [r for r in caplog.records if "lost the Redis connection" in r.getMessage()]
        assert len([r for r in lost if "worker events" in r.getMessage()]) == 1
        # Close while Redis is away again: still prompt.
        server.stop()
        await asyncio.sleep(0.2)
    finally:
        closing = time.monotonic()
        await watch.close()
        assert time.monotonic() - closing < 1.5
        await client.aclose()
        publisher.close()
        server.stop()


async def test_a_prefixed_worker_obeys_and_answers(
    celery_workers, sync_redis, redis_url, redis_client, tmp_path
):
    prefix = "jb:"
    db = db_of(redis_url)
    worker = await asyncio.to_thread(
        start_with_transport_options,
        celery_workers,
        {"global_keyprefix": prefix},
        tmp_path / "config",
    )
    assert sync_redis.exists(CeleryKeys(global_keyprefix=prefix).binding("celery"))
    watch = WorkerWatch(redis_client, global_keyprefix=prefix, db=db, source="t")
    await watch.start()
    try:
        # events on the prefixed channels, replies on the prefixed list
        await async_wait_for(
            lambda: getattr(watched(watch, worker.hostname), "pool", None) == "solo",
            "the watch to describe the prefixed worker",
            timeout=8,
        )
        assert watched(watch, worker.hostname).state == "online"

        task_id = str(uuid.uuid4())
        raw = build_task_message(
            task=example.task_name("record"),
            task_id=task_id,
            args=["prefixed"],
            kwargs={},
            queue="celery",
            priority=None,
            parent_id=None,
            root_id=None,
            origin="jobbridge@test",
        )
        sync_redis.lpush(CeleryKeys(global_keyprefix=prefix).priority_list("celery"), raw)
        await async_wait_for(
            lambda: task_id in ran_ids(sync_redis), "the task on the prefixed list"
        )

        unknown = str(uuid.uuid4())
        revoke = revoke_envelope(unknown, ticket=str(uuid.uuid4()))
        assert sync_redis.publish(pidbox_channel("", db), revoke) == 0
        assert sync_redis.publish(pidbox_channel(prefix, db), revoke) >= 1
        # (the result backend has no prefix: its own transport options are not set)
        await async_wait_for(lambda: sync_redis.get(meta_key(unknown)), "the worker to obey")
        assert decode_result_meta(sync_redis.get(meta_key(unknown))).status == "REVOKED"
    finally:
        await watch.close()
    assert_no_reply_keys(sync_redis, prefix)


@pytest.mark.slow
async def test_worker_watch_survives_forged_replies(sync_redis, redis_url, redis_client):
    """Anyone who can subscribe to the pidbox channel learns the watch's reply lists and
    tickets: replies pushed there are hostile input like any other."""
    db = db_of(redis_url)
    tap = sync_redis.pubsub(ignore_subscribe_messages=True)
    tap.subscribe(pidbox_channel("", db))
    watch = WorkerWatch(redis_client, global_keyprefix="", db=db, source="t")
    try:
        inspection = asyncio.create_task(watch.inspect())
        broadcasts: dict[str, dict[str, Any]] = {}

        def heard() -> bool:
            message = tap.get_message(timeout=0.01)
            if message is not None:
                body = json.loads(base64.b64decode(json.loads(message["data"])["body"]))
                broadcasts[body["method"]] = body
            return len(broadcasts) == 4

        await async_wait_for(heard, "the four broadcasts")

        def reply(method: str, body: Any, ticket: str | None = None) -> bytes:
            sent = broadcasts[method]
            envelope = {
                "body": base64.b64encode(json.dumps(body).encode()).decode(),
                "content-encoding": "utf-8",
                "content-type": "application/json",
                "headers": {"ticket": ticket or sent["ticket"], "clock": 1},
                "properties": {"body_encoding": "base64", "delivery_tag": "x"},
            }
            return json.dumps(envelope).encode()

        def list_of(method: str) -> str:
            return reply_list("", broadcasts[method]["reply_to"]["routing_key"])

        forged = {
            "stats": {"forged@h": ["not", "a", "map"], "ok@h": {"pool": {"max-concurrency": 3}}},
            "active_queues": {"forged@h": {"name": "celery"}, "ok@h": [{"name": "q1"}]},
            "reserved": {"forged@h": "many", "ok@h": [{}]},
            "scheduled": {"forged@h": [], "ok@h": [{}, {}]},
        }
        for method, body in forged.items():
            sync_redis.lpush(list_of(method), b"\x00garbage", b"[1, 2]", reply(method, [1]))
            sync_redis.lpush(list_of(method), reply(method, {"spoof@h": []}, ticket="another"))
            sync_redis.lpush(list_of(method), reply(method, {"big@h": "x" * 600_000}))
            sync_redis.lpush(list_of(method), reply(method, body))
        await asyncio.wait_for(inspection, 5)

        by_name = {w.name: w for w in watch.workers()}
        assert set(by_name) == {"forged@h", "ok@h"}
        forged_worker, ok = by_name["forged@h"], by_name["ok@h"]
        assert (forged_worker.pool, forged_worker.concurrency) == (None, None)
        assert (forged_worker.queues, forged_worker.reserved) == ((), None)
        assert (ok.pool, ok.concurrency, ok.queues) == (None, 3, ("q1",))
        assert (ok.reserved, ok.scheduled) == (1, 2)
    finally:
        tap.close()
        await watch.close()
    assert_no_reply_keys(sync_redis, "")


class LagProbe:
    """The longest the event loop went without running a 1 ms ticker, while it runs: in wall
    time (``worst``) and in the loop thread's CPU time (``worst_cpu``: the loop's own work,
    which other processes taking the CPU do not inflate)."""

    def __init__(self) -> None:
        self.worst = 0.0
        self.worst_cpu = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        while True:
            before, cpu = time.perf_counter(), time.thread_time()
            await asyncio.sleep(0.001)
            self.worst = max(self.worst, time.perf_counter() - before - 0.001)
            self.worst_cpu = max(self.worst_cpu, time.thread_time() - cpu)

    def __enter__(self) -> LagProbe:
        self._task = asyncio.create_task(self._tick())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


@pytest.mark.slow
async def test_worker_watch_keeps_the_loop_free_under_a_flood(sync_redis, redis_url, redis_client):
    db = db_of(redis_url)
    watch = WorkerWatch(redis_client, global_keyprefix="", db=db, source="t")
    await watch.start()
    channel = events_channel("", db, "worker-heartbeat")
    # the biggest message the watch decodes: a list of heartbeats just under its cap
    batch = [
        {"type": "worker-heartbeat", "hostname": f"f{n}@h", "timestamp": time.time()}
        for n in range(140)
    ]
    body = base64.b64encode(json.dumps(batch).encode()).decode()
    big = json.dumps(
        {
            "body": body,
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": {},
            "properties": {"body_encoding": "base64", "delivery_tag": "x"},
        }
    ).encode()
    assert len(big) < MAX_EVENT_MESSAGE_BYTES
    try:
        await async_wait_for(sync_redis.pubsub_numpat, "the subscription")
        with LagProbe() as probe:
            pipe = sync_redis.pipeline(transaction=False)
            for _ in range(100):
                pipe.publish(channel, big)
                pipe.publish(channel, b"\x00" * 200_000)
            await asyncio.to_thread(pipe.execute)
            await async_wait_for(lambda: len(watch._hosts) == 140, "the flood", timeout=10)
            await asyncio.sleep(0.5)
        print(f"worst event-loop lag under the flood: {probe.worst * 1000:.1f} ms", end=" ")
        print(f"({probe.worst_cpu * 1000:.1f} ms of the loop's own CPU time)")
        assert probe.worst_cpu < 0.02
        assert probe.worst < scaled(0.02)  # a loaded machine also preempts the loop
    finally:
        await watch.close()
