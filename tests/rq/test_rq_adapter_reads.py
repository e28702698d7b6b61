"""The RQ adapter's reads against real RQ: jobs made with RQ's own API, run by real
``rq worker --burst`` processes, and every total checked against RQ's own counts
(``Queue.count``, ``registry.get_job_count(cleanup=False)``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
import redis.asyncio
from rq import Queue, Retry
from rq.cron import CronScheduler
from rq.job import Job
from rq.serializers import JSONSerializer

from jobbridge.adapters.rq.adapter import RqAdapter
from jobbridge.model import (
    CORE_LISTS,
    Action,
    JobRecord,
    JobStatus,
    ListName,
    Snapshot,
    SnapshotQuery,
)
from jobbridge.sources import connect
from tests.integration.processes import scaled, spawn
from tests.rq import tasks as rq_tasks
from tests.rq.rq_support import RqWorker, WorkerPool

pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parents[2]
RQ_COMMAND = Path(sys.executable).parent / "rq"
ALL = SnapshotQuery.build(per_page=100)


# ------------------------------------------------------------------ helpers


def worker_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RQ_")}
    return {**env, "PYTHONPATH": str(ROOT), **extra}


def burst(url: str, *queues: str, serializer: str | None = None, **env: str) -> None:
    """Run one ``rq worker --burst --with-scheduler`` over ``queues`` until they are empty
    (the harness's wait: a worker done with its jobs whose exit hangs is stopped)."""
    name = f"burst-{os.getpid()}-{time.monotonic_ns()}"
    command = [str(RQ_COMMAND), "worker", "--burst", "--url", url, "--with-scheduler"]
    if serializer:
        command += ["--serializer", serializer]
    log = Path(tempfile.mkdtemp(prefix="jb-rq-burst-")) / f"{name}.log"
    env = worker_env(PYTHONUNBUFFERED="1", **env)
    worker = RqWorker(name, spawn([*command, "--name", name, *queues], env, log), log)
    try:
        worker.assert_clean_exit(90)
    finally:
        worker.stop()


def wait_for(check, what: str, timeout: float = 20.0):
    deadline = time.monotonic() + scaled(timeout)
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[redis.asyncio.Redis]:
    """A client made as jobbridge makes them (ids that are not UTF-8 round-trip)."""
    made = connect(redis_url)
    yield made
    await made.aclose()


@pytest.fixture
def adapter(client: redis.asyncio.Redis) -> RqAdapter:
    return RqAdapter(client, source="rq")


def rq_totals(conn: redis.Redis, names: Sequence[str]) -> dict[str, int]:
    """RQ's own counts, summed over queues, without its cleanup side effects."""
    totals = dict.fromkeys(
        ("queued", "scheduled", "deferred", "started", "finished", "failed", "canceled"), 0
    )
    for name in names:
        queue = Queue(name, connection=conn)
        totals["queued"] += queue.count
        totals["scheduled"] += queue.scheduled_job_registry.get_job_count(cleanup=False)
        totals["deferred"] += queue.deferred_job_registry.get_job_count(cleanup=False)
        totals["started"] += queue.started_job_registry.get_job_count(cleanup=False)
        totals["finished"] += queue.finished_job_registry.get_job_count(cleanup=False)
        totals["failed"] += queue.failed_job_registry.get_job_count(cleanup=False)
        totals["canceled"] += queue.canceled_job_registry.get_job_count(cleanup=False)
    return totals


def assert_matches_rq(snap: Snapshot, conn: redis.Redis, names: Sequence[str]) -> None:
    totals = rq_totals(conn, names)
    lists, counters = snap.lists, snap.counters
    assert lists[ListName.ENQUEUED].total == counters.enqueued == totals["queued"]
    # the scheduled list shows the deferred (blocked) jobs after the scheduled ones
    assert counters.scheduled == totals["scheduled"] and counters.blocked == totals["deferred"]
    assert lists[ListName.SCHEDULED].total == totals["scheduled"] + totals["deferred"]
    assert lists[ListName.RUNNING].total == counters.running == totals["started"]
    assert lists[ListName.COMPLETED].total == counters.completed_kept == totals["finished"]
    assert lists[ListName.FAILED].total == counters.failed_kept == totals["failed"]
    assert lists[ListName.CANCELED].total == counters.canceled == totals["canceled"]
    assert counters.completed_24h is None and counters.failed_7d is None
    assert counters.canceled == totals["canceled"]
    for queue in counters.queues:
        assert queue.enqueued == Queue(queue.name, connection=conn).count


def rows(snap: Snapshot, which: ListName) -> dict[str, JobRecord]:
    return {job.id: job for job in snap.lists[which].items}


def ended_at(conn: redis.Redis, job_id: str) -> datetime | None:
    return Job.fetch(job_id, connection=conn).ended_at


# ------------------------------------------------------------------ lists and counters


@pytest.mark.slow
async def test_snapshot_matches_rq(
    adapter: RqAdapter, sync_redis: redis.Redis, redis_url: str
) -> None:
    default = Queue("default", connection=sync_redis)
    high = Queue("high", connection=sync_redis)
    jsonq = Queue("jsonq", connection=sync_redis, serializer=JSONSerializer)
    ok = default.enqueue(rq_tasks.add, 2, b=3, principal_id="alice")
    bad = default.enqueue(rq_tasks.fail, "kaput")
    retrying = default.enqueue(rq_tasks.fail, "again", retry=Retry(max=2, interval=600))
    later = high.enqueue_in(timedelta(hours=1), rq_tasks.add, 1)
    waiting_on = high.enqueue(rq_tasks.add, 5, depends_on=later)
    echoed = jsonq.enqueue(rq_tasks.add, 1, b=2, request_id="r-1")
    burst(redis_url, "default", "high")
    burst(redis_url, "jsonq", serializer="rq.serializers.JSONSerializer")
    waiting = [default.enqueue(rq_tasks.add, i) for i in range(3)]
    front = default.enqueue(rq_tasks.add, 99, at_front=True)
    canceled = high.enqueue(rq_tasks.add, 7)
    canceled.cancel()

    await adapter.discover_queues()
    assert adapter.queues == ("default", "high", "jsonq")
    snap = await adapter.snapshot(ALL)
    assert_matches_rq(snap, sync_redis, adapter.queues)
    for page in snap.lists.values():
        assert len(page.items) == page.total and page.skipped == 0

    done = rows(snap, ListName.COMPLETED)
    assert set(done) == {ok.id, echoed.id}
    assert done[ok.id].status is JobStatus.COMPLETED and done[ok.id].raw_status == "finished"
    assert done[ok.id].name == "tests.rq.tasks.add" and done[ok.id].principal_id == "alice"
    assert done[ok.id].finished_at == ended_at(sync_redis, ok.id) is not None
    assert done[echoed.id].name == "tests.rq.tasks.add"
    assert done[echoed.id].correlation_id == "r-1"

    failed = rows(snap, ListName.FAILED)[bad.id]
    assert failed.status is JobStatus.FAILED and failed.raw_status == "failed"
    assert failed.last_error is not None and "ValueError: kaput" in failed.last_error
    assert failed.actions == (Action.RETRY, Action.DISCARD)
    assert failed.finished_at == ended_at(sync_redis, bad.id)

    scheduled = rows(snap, ListName.SCHEDULED)
    registry = default.scheduled_job_registry
    assert scheduled[retrying.id].status is JobStatus.RETRYING
    assert scheduled[retrying.id].scheduled_for == registry.get_scheduled_time(retrying.id)
    assert scheduled[retrying.id].retries_left == 1
    assert scheduled[later.id].status is JobStatus.SCHEDULED
    assert scheduled[later.id].scheduled_for == high.scheduled_job_registry.get_scheduled_time(
        later.id
    )
    assert scheduled[waiting_on.id].raw_status == "deferred"
    assert scheduled[waiting_on.id].status is JobStatus.BLOCKED
    assert scheduled[waiting_on.id].waits_for == (later.id,)
    assert all(j.actions == (Action.CANCEL,) for j in scheduled.values())

    enqueued = snap.lists[ListName.ENQUEUED].items
    # default's list is [front, w0, w1, w2]; shown newest (the tail) first
    assert [j.id for j in enqueued] == [w.id for w in reversed(waiting)] + [front.id]
    assert [j.extra["place in line"] for j in enqueued] == ["4", "3", "2", "1"]
    assert all(j.status is JobStatus.ENQUEUED and j.actions == (Action.CANCEL,) for j in enqueued)
    front_enqueued = Job.fetch(front.id, connection=sync_redis).enqueued_at
    assert front_enqueued is not None and snap.counters.oldest_enqueued_age_s is not None
    age = datetime.now(UTC).timestamp() - front_enqueued.timestamp()
    assert abs(snap.counters.oldest_enqueued_age_s - age) < 5

    # RQ's canceled registry is a list of its own (Autumn's sources have none)
    shown = rows(snap, ListName.CANCELED)
    assert list(shown) == [canceled.id] and snap.lists[ListName.CANCELED].total == 1
    assert shown[canceled.id].status is JobStatus.CANCELED and shown[canceled.id].actions == ()
    assert all(canceled.id not in rows(snap, which) for which in CORE_LISTS)
    detail = await adapter.job(canceled.id)
    assert detail is not None and detail.job.status is JobStatus.CANCELED


@pytest.mark.slow
async def test_pages_join_queues_end_to_end(
    adapter: RqAdapter, sync_redis: redis.Redis, redis_url: str
) -> None:
    sizes = {"default": 5, "mid": 0, "zeta": 7}
    for name, size in sizes.items():
        queue = Queue(name, connection=sync_redis)
        for i in range(size):
            queue.enqueue(rq_tasks.add, i)
        if not size:  # an empty queue RQ still lists
            sync_redis.sadd("rq:queues", queue.key)
    for name in ("default", "zeta"):
        queue = Queue(name, connection=sync_redis)
        for i in range(3):
            queue.enqueue(rq_tasks.fail, f"{name}-{i}")
    burst(redis_url, "default", "zeta")
    for name, size in sizes.items():
        queue = Queue(name, connection=sync_redis)
        for i in range(size):
            queue.enqueue(rq_tasks.add, i)
    await adapter.discover_queues()
    assert adapter.queues == ("default", "mid", "zeta")

    expected = [
        i for q in adapter.queues for i in reversed(Queue(q, connection=sync_redis).job_ids)
    ]
    failed_expected = [
        m.decode()
        for q in adapter.queues
        for m in sync_redis.zrange(f"rq:failed:{q}", 0, -1, desc=True)
    ]
    for which, want in ((ListName.ENQUEUED, expected), (ListName.FAILED, failed_expected)):
        seen: list[str] = []
        for page in range(1, 6):
            query = SnapshotQuery.build({which: page}, per_page=4, only=frozenset({which}))
            snap = await adapter.snapshot(query)
            assert snap.lists[which].total == len(want)
            seen += [j.id for j in snap.lists[which].items]
        assert seen == want
    snap = await adapter.snapshot(ALL)
    assert_matches_rq(snap, sync_redis, adapter.queues)


async def test_running_job_and_its_worker(
    adapter: RqAdapter, sync_redis: redis.Redis, rq_workers: WorkerPool
) -> None:
    slow = Queue("slow", connection=sync_redis)
    job = slow.enqueue(rq_tasks.sleep, 4)
    process = rq_workers.start(["slow"], burst=True)
    try:
        wait_for(lambda: job.get_status(refresh=True) == "started", "the job to start")
        fetched = Job.fetch(job.id, connection=sync_redis)
        await adapter.discover_queues()
        snap = await adapter.snapshot(ALL)
        running = rows(snap, ListName.RUNNING)[job.id]
        assert running.status is JobStatus.RUNNING and running.raw_status == "started"
        assert running.worker == fetched.worker_name is not None
        assert running.actions == (Action.STOP,)
        assert running.started_at == fetched.started_at
        assert running.overdue_since is None and "execution" in running.extra
        assert snap.counters.running == 1 and snap.counters.running_overdue == 0

        workers = await adapter.workers()
        assert [w.name for w in workers] == [fetched.worker_name]
        worker = workers[0]
        assert worker.state == "busy" and worker.queues == ("slow",)
        assert worker.current_job == job.id and worker.birth is not None
        assert worker.pid is not None and worker.problem is None
        assert snap.workers is None  # the service adds them to whole-page reads (ListsWorkers)

        detail = await adapter.job(job.id)
        assert detail is not None and detail.job.status is JobStatus.RUNNING
        assert detail.job.worker == fetched.worker_name
        assert "function: tests.rq.tasks.sleep" in detail.payload
    finally:
        process.assert_clean_exit(60)
    snap = await adapter.snapshot(ALL)
    assert rows(snap, ListName.COMPLETED)[job.id].status is JobStatus.COMPLETED
    assert await adapter.workers() == ()


async def test_intermediate_and_1x_wip_members(adapter: RqAdapter, sync_redis: redis.Redis) -> None:
    default = Queue("default", connection=sync_redis)
    taken, waiting = default.enqueue(rq_tasks.add, 1), default.enqueue(rq_tasks.add, 2)
    old = default.enqueue(rq_tasks.add, 3)
    # what a worker listening on one queue does: BLMOVE LEFT -> RIGHT into the intermediate list
    sync_redis.lmove(default.key, f"{default.key}:intermediate", "LEFT", "RIGHT")
    # an RQ 1.x wip member: the plain job id, scored by its (passed) heartbeat deadline
    sync_redis.lrem(default.key, 0, old.id)
    sync_redis.hset(old.key, mapping={"status": "started", "worker_name": "w-old"})
    sync_redis.zadd(f"rq:wip:{default.name}", {old.id: time.time() - 30})

    snap = await adapter.snapshot(ALL)
    enqueued = snap.lists[ListName.ENQUEUED]
    assert enqueued.total == snap.counters.enqueued == 2
    assert [j.id for j in enqueued.items] == [waiting.id, taken.id]
    assert enqueued.items[0].extra["place in line"] == "1"
    reserved = enqueued.items[1]
    assert (reserved.status, reserved.raw_status, reserved.actions) == (
        JobStatus.RUNNING,
        "intermediate",
        (),
    )
    assert "place in line" not in reserved.extra

    running = rows(snap, ListName.RUNNING)[old.id]
    assert running.worker == "w-old" and running.overdue_since is not None
    assert "execution" not in running.extra
    assert snap.counters.running_overdue == 1


# ------------------------------------------------------------------ broken data


GARBAGE = {
    "status": b"\xff\xfenot-a-status",
    "origin": b"elsewhere",
    "created_at": b"\x00",
    "enqueued_at": b"last tuesday",
    "started_at": b"2026-99-99T99:99:99Z",
    "ended_at": b"9" * 300,
    "timeout": b"forever",
    "retries_left": b"1e999",
    "dependency_ids": b"[[[",
    "description": b"\xff\xfe(" * 100,
    "data": b"x\x9c\xde\xad\xbe\xef",
    "meta": b"\x80\x05\x95garbage",
    "worker_name": b"\xff" * 500,
}


@pytest.mark.slow
async def test_dangling_and_garbage_rows_are_flagged(
    adapter: RqAdapter, sync_redis: redis.Redis, redis_url: str
) -> None:
    default = Queue("default", connection=sync_redis)
    finished = default.enqueue(rq_tasks.add, 1)
    failed = default.enqueue(rq_tasks.fail)
    burst(redis_url, "default")
    sync_redis.delete(finished.key)  # its registry entry stays: a dangling member
    sync_redis.zadd("rq:failed:default", {"ghost-failed": time.time() + 3600})
    sync_redis.zadd("rq:scheduled:default", {"ghost-scheduled": time.time() + 3600})
    sync_redis.rpush(default.key, "ghost-queued")
    garbage = default.enqueue(rq_tasks.add, 1)
    sync_redis.hset(garbage.key, mapping=GARBAGE)
    sync_redis.set("rq:job:not-a-hash", "x")
    sync_redis.rpush(default.key, "not-a-hash")
    sync_redis.rpush(default.key, b"\xff\xfe-id")

    snap = await adapter.snapshot(ALL)
    assert_matches_rq(snap, sync_redis, ["default"])
    done = rows(snap, ListName.COMPLETED)[finished.id]
    assert done.problem == "its job hash no longer exists" and done.actions == ()
    ghost = rows(snap, ListName.FAILED)["ghost-failed"]
    assert ghost.problem == "its job hash no longer exists" and ghost.queue == "default"
    assert rows(snap, ListName.FAILED)[failed.id].problem is None
    assert rows(snap, ListName.SCHEDULED)["ghost-scheduled"].problem is not None
    enqueued = rows(snap, ListName.ENQUEUED)
    assert enqueued["ghost-queued"].problem == "its job hash no longer exists"
    assert enqueued["not-a-hash"].problem == "its key holds another type than a hash"
    assert enqueued["\udcff\udcfe-id"].problem is not None  # a non-UTF-8 id, kept exactly
    bad = enqueued[garbage.id]
    assert bad.problem is not None
    for word in ("status", "enqueued_at", "timeout", "names queue elsewhere", "data"):
        assert word in bad.problem, word
    assert bad.queue == "default" and bad.status is JobStatus.ENQUEUED
    assert snap.lists[ListName.ENQUEUED].skipped == 4

    for job_id in ("ghost-failed", finished.id):
        detail = await adapter.job(job_id)
        assert detail is not None and detail.job.problem == "its job hash no longer exists"
    detail = await adapter.job(garbage.id)
    assert detail is not None and detail.job.problem is not None and detail.raw
    assert await adapter.job("not-a-hash") is not None
    assert await adapter.job("never-existed") is None


async def test_counters_name_keys_of_the_wrong_type(
    adapter: RqAdapter, sync_redis: redis.Redis
) -> None:
    Queue("default", connection=sync_redis).enqueue(rq_tasks.add, 1)
    sync_redis.sadd("rq:queues", "rq:queue:broken")
    sync_redis.set("rq:queue:broken", "x")
    sync_redis.set("rq:wip:broken", "x")
    sync_redis.hset("rq:failed:broken", "a", "b")
    await adapter.discover_queues()
    counters = await adapter.counters()
    assert counters.enqueued == 1
    problems = " ".join(counters.problems)
    for key in ("rq:queue:broken", "rq:wip:broken", "rq:failed:broken"):
        assert key in problems
    snap = await adapter.snapshot(ALL)
    assert snap.lists[ListName.ENQUEUED].total == 1

    sync_redis.delete("rq:queues")
    sync_redis.set("rq:queues", "x")
    await adapter.discover_queues()
    assert any("rq:queues" in p for p in (await adapter.counters()).problems)


# ------------------------------------------------------------------ the job page


@pytest.mark.slow
async def test_job_page_finds_each_place(
    adapter: RqAdapter, sync_redis: redis.Redis, redis_url: str
) -> None:
    default = Queue("default", connection=sync_redis)
    ok = default.enqueue(rq_tasks.add, 2, b=3)
    bad = default.enqueue(rq_tasks.fail, "kaput")
    burst(redis_url, "default")
    queued = default.enqueue(rq_tasks.add, 1)
    later = default.enqueue_in(timedelta(hours=1), rq_tasks.add, 1)
    deferred = default.enqueue(rq_tasks.add, 1, depends_on=later)
    canceled = default.enqueue(rq_tasks.add, 1)
    canceled.cancel()

    expected = {
        ok.id: (JobStatus.COMPLETED, ()),
        bad.id: (JobStatus.FAILED, (Action.RETRY, Action.DISCARD)),
        queued.id: (JobStatus.ENQUEUED, (Action.CANCEL,)),
        later.id: (JobStatus.SCHEDULED, (Action.CANCEL,)),
        deferred.id: (JobStatus.BLOCKED, (Action.CANCEL,)),
        canceled.id: (JobStatus.CANCELED, ()),
    }
    for job_id, (status, actions) in expected.items():
        detail = await adapter.job(job_id)
        assert detail is not None, job_id
        assert (detail.job.status, detail.job.actions) == (status, actions), job_id
        assert detail.job.queue == "default" and detail.job.problem is None
        assert detail.payload.startswith("function: tests.rq.tasks.")
        assert detail.payload_kind == "pickle" and "status: " in detail.raw

    done = await adapter.job(ok.id)
    assert done is not None and "latest result: successful" in done.payload
    assert "return value: 5" in done.payload and '"b": 3' in done.payload
    failed = await adapter.job(bad.id)
    assert failed is not None and failed.job.last_error is not None
    # the traceback is the row's last_error, shown once: the payload only points to it
    assert "ValueError: kaput" in failed.job.last_error
    assert "ValueError: kaput" not in failed.payload
    assert "exception: shown under Last error" in failed.payload
    scheduled = await adapter.job(later.id)
    assert scheduled is not None
    assert scheduled.job.scheduled_for == default.scheduled_job_registry.get_scheduled_time(
        later.id
    )


async def test_job_known_only_by_its_lifecycle_entry(
    adapter: RqAdapter, sync_redis: redis.Redis
) -> None:
    copy = {"id": "gone-1", "origin": "default", "status": "failed", "description": "t.f('x')"}
    entry = {
        "status": "discarded",
        "at_ms": int(time.time() * 1000),
        "job_id": "gone-1",
        "actor": "alice",
        "record": json.dumps(copy),
    }
    sync_redis.set(adapter.operator.keys.lifecycle("gone-1"), json.dumps(entry))
    detail = await adapter.job("gone-1")
    assert detail is not None
    assert (detail.job.status, detail.job.queue, detail.job.name) == (
        JobStatus.DISCARDED,
        "default",
        "t.f",
    )
    assert detail.lifecycle[0].actor == "alice" and detail.job.actions == ()


# ------------------------------------------------------------------ queues, prefixes, cron


async def test_queue_discovery_and_configured_queues(
    client: redis.asyncio.Redis, sync_redis: redis.Redis
) -> None:
    for name in ("b", "a", "default"):
        Queue(name, connection=sync_redis).enqueue(rq_tasks.add, 1)
    discovered = RqAdapter(client, source="rq")
    assert discovered.queues == ("default",)  # until the first pass
    await discovered.discover_queues()
    assert discovered.queues == ("default", "a", "b")
    configured = RqAdapter(client, source="rq", queues=["b"])
    await configured.discover_queues()
    counters = await configured.counters()
    assert configured.queues == ("b",) and counters.enqueued == 1
    sync_redis.sadd("rq:queues", *[f"rq:queue:extra-{i:03}" for i in range(105)])
    await discovered.discover_queues()
    assert len(discovered.queues) == 100
    assert any("8 more queues" in p for p in (await discovered.counters()).problems)


@pytest.mark.slow
async def test_another_key_prefix_with_braces(client: redis.asyncio.Redis, redis_url: str) -> None:
    prefix = "{app}:rq"
    script = (
        "import redis, rq\n"
        "from tests.rq import tasks as rq_tasks\n"
        f"c = redis.Redis.from_url({redis_url!r})\n"
        "q = rq.Queue('default', connection=c)\n"
        "q.enqueue(rq_tasks.add, 1); q.enqueue(rq_tasks.fail)\n"
    )
    env = worker_env(RQ_KEY_PREFIX=prefix)
    subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=60)
    burst(redis_url, "default", RQ_KEY_PREFIX=prefix)
    script = script.replace("q.enqueue(rq_tasks.fail)", "q.enqueue(rq_tasks.add, 2)")
    subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=60)

    adapter = RqAdapter(client, source="app", key_prefix=prefix)
    await adapter.discover_queues()
    snap = await adapter.snapshot(ALL)
    counters = snap.counters
    assert (counters.enqueued, counters.completed_kept, counters.failed_kept) == (2, 1, 1)
    failed = snap.lists[ListName.FAILED].items[0]
    assert failed.last_error is not None and "ValueError: boom" in failed.last_error
    plain = RqAdapter(client, source="rq")
    await plain.discover_queues()
    assert (await plain.counters()).enqueued == 0


async def test_cron_schedules(adapter: RqAdapter, sync_redis: redis.Redis) -> None:
    scheduler = CronScheduler(connection=sync_redis, name="cron-1")
    scheduler.register(rq_tasks.add, "default", args=(1,), interval=60)
    scheduler.register(rq_tasks.echo, "reports", cron="*/5 * * * *", name="report")
    scheduler.register_birth()
    scheduler.enqueue_jobs()  # the interval job runs at once
    scheduler.save()
    snap = await adapter.snapshot(ALL)
    by_name = {s.name: s for s in snap.schedules}
    assert set(by_name) == {"tests.rq.tasks.add", "report"}
    assert by_name["tests.rq.tasks.add"].schedule == "every 60s on queue default"
    assert by_name["tests.rq.tasks.add"].last_status == "queued"
    assert by_name["tests.rq.tasks.add"].next_run_at is not None
    assert by_name["report"].schedule == "cron */5 * * * * on queue reports"
    assert by_name["report"].last_status is None
