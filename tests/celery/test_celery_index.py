"""The Celery result index on a real Redis: its script, its subscriber and backfill, and real
Celery workers feeding it."""

from __future__ import annotations

import asyncio
import json
import os
import pickle
import random
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio

from jobbridge.adapters.celery.index import ResultIndex
from jobbridge.adapters.celery.index_store import IndexSettings, WriteCounts
from jobbridge.adapters.celery.index_summary import BUCKETS, Bucket, Entry, IndexedTask, summarize
from jobbridge.adapters.celery.keys import CeleryKeys
from tests.celery.celery_support import (
    meta_key,
    realistic_meta,
    seed_metas,
    send,
    wait_for_state,
)
from tests.rq.rq_support import async_wait_for

pytestmark = pytest.mark.redis

BASE = "jobbridge:celery::index:"
LIFECYCLE = "jobbridge:celery::lifecycle:"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
NOW_S = NOW.timestamp()
NOW_MS = int(NOW_S * 1000)
#: fast settings for tests: no pause between steps, quick retries
FAST = IndexSettings(step_sleep_s=0.0, lock_retry_s=0.1, backoff_s=(0.05, 0.5))

Factory = Callable[..., ResultIndex]


@pytest.fixture
async def make_index(redis_client: redis.asyncio.Redis) -> AsyncIterator[Factory]:
    """ResultIndex instances on the test database (each one a "replica"), closed at the end."""
    made: list[ResultIndex] = []

    def make(
        *,
        base: str = BASE,
        settings: IndexSettings = FAST,
        clock: Callable[[], float] | None = None,
        client: redis.asyncio.Redis | None = None,
    ) -> ResultIndex:
        index = ResultIndex(
            client or redis_client,
            client or redis_client,
            keys=CeleryKeys(),
            base=base,
            source="celery-test",
            lifecycle_prefix=LIFECYCLE,
            settings=settings,
            **({"clock": clock} if clock else {}),
        )
        made.append(index)
        return index

    yield make
    for index in made:
        tasks = list(index._tasks)
        await index.close()
        assert all(task.done() for task in tasks), "close left a task running"


def fixed(seconds: float = NOW_S) -> Callable[[], float]:
    return lambda: seconds


def done_meta(task_id: str, state: str, at: datetime, **extra: Any) -> bytes:
    value = json.loads(realistic_meta(task_id, state, at))
    value.update(extra)
    return json.dumps(value).encode()


def index_entry(task_id: str, raw: bytes, seen_ms: int = NOW_MS) -> Entry:
    found = summarize(task_id.encode(), raw, seen_ms=seen_ms)
    assert isinstance(found, Entry), found
    return found


def dump(conn: redis.Redis, base: str = BASE) -> dict[str, Any]:
    """The whole index under ``base``, comparable between two bases."""
    state: dict[str, Any] = {
        b.value: conn.zrange(f"{base}{b.value}", 0, -1, withscores=True) for b in BUCKETS
    }
    state["rows"] = conn.hgetall(f"{base}rows")
    return state


async def where(index: ResultIndex, task_id: str) -> Bucket | None:
    task = await index.get(task_id)
    return task.bucket if task else None


# ------------------------------------------------------------------ the script


async def test_precedence_of_states(make_index, sync_redis):
    index = make_index(clock=fixed())
    t = "task-1"
    at = NOW - timedelta(hours=1)
    started = json.dumps({"status": "STARTED", "result": {}, "task_id": t, "retries": 0}).encode()

    await index.ingest([(t.encode(), started, NOW_MS - 5000)])
    assert await where(index, t) is Bucket.RUNNING
    # seen again later: still first seen at the earlier time
    await index.ingest([(t.encode(), started, NOW_MS - 1000)])
    assert sync_redis.zscore(index.key(Bucket.RUNNING), t) == NOW_MS - 5000

    counts = await index.ingest([(t.encode(), done_meta(t, "SUCCESS", at), NOW_MS)])
    assert counts.written == 1
    task = await index.get(t)
    assert task is not None and task.bucket is Bucket.COMPLETED and task.at == at
    assert sync_redis.zscore(index.key(Bucket.RUNNING), t) is None

    # an unfinished meta never replaces a finished one; an older finished one neither
    late = await index.ingest([(t.encode(), started, NOW_MS + 1000)])
    older = await index.ingest([(t.encode(), done_meta(t, "FAILURE", at - timedelta(1)), NOW_MS)])
    assert (late.stale, older.stale) == (1, 1)
    assert await where(index, t) is Bucket.COMPLETED

    # a newer finished one does
    await index.ingest([(t.encode(), done_meta(t, "REVOKED", at + timedelta(seconds=1)), NOW_MS)])
    assert await where(index, t) is Bucket.CANCELED
    assert sync_redis.zcard(index.key(Bucket.COMPLETED)) == 0
    assert sync_redis.hlen(index.rows) == 1


def _events(rng: random.Random) -> list[tuple[bytes, bytes, int]]:
    """Metas of 40 tasks as workers would publish them, with the times a replica saw them."""
    events = []
    for n in range(40):
        t = f"t{n}"
        seen = NOW_MS - 600_000 + n * 1000
        runs = rng.randint(1, 3)
        for run in range(runs):
            for state in ("STARTED", "RETRY") if run < runs - 1 else ("STARTED",):
                raw = json.loads(realistic_meta(t, state, None, n=n))
                raw["retries"] = run
                events.append((t.encode(), json.dumps(raw).encode(), seen + run * 10))
        # a redelivered copy run by another worker: same version, another summary
        if n % 5 == 0:
            other = json.loads(realistic_meta(t, "STARTED", None, n=n))
            other.update(worker="w2@other", retries=runs - 1)
            events.append((t.encode(), json.dumps(other).encode(), seen + 5))
        at = NOW - timedelta(minutes=n)
        if n % 4 == 0:
            continue  # still running
        final = ("SUCCESS", "FAILURE", "REVOKED")[n % 3]
        events.append((t.encode(), realistic_meta(t, final, at, n=n), seen + 100))
        if n % 7 == 0:  # two finished metas of one date_done: the state rank decides
            events.append((t.encode(), realistic_meta(t, "REVOKED", at, n=n), seen + 200))
        if n % 6 == 0:  # a finished meta without date_done: ordered by when it was seen
            raw = json.loads(realistic_meta(t, "FAILURE", at, n=n))
            raw["date_done"] = None
            events.append((t.encode(), json.dumps(raw).encode(), seen + 300))
    return events


@pytest.mark.slow
async def test_any_order_and_any_number_of_writers_end_the_same(make_index, sync_redis):
    events = _events(random.Random(7))
    reference = make_index(base="ref:", clock=fixed())
    for event in events:
        await reference.ingest([event])
    expected = dump(sync_redis, "ref:")
    assert sum(len(v) for k, v in expected.items() if k != "rows") == 40

    backwards = make_index(base="back:", clock=fixed())
    for event in reversed(events):
        await backwards.ingest([event])
    assert dump(sync_redis, "back:") == expected

    for attempt in range(3):
        base = f"mixed{attempt}:"
        shuffled = events[:]
        random.Random(attempt).shuffle(shuffled)
        one, two = make_index(base=base, clock=fixed()), make_index(base=base, clock=fixed())

        async def feed(index: ResultIndex, part: list[tuple[bytes, bytes, int]]) -> None:
            for start in range(0, len(part), 3):
                await index.ingest(part[start : start + 3])
                await asyncio.sleep(0)

        # both "replicas" get every event, each in its own order, at once
        other = shuffled[:]
        random.Random(attempt + 100).shuffle(other)
        await asyncio.gather(feed(one, shuffled), feed(two, other))
        assert dump(sync_redis, base) == expected, attempt


async def test_trim_by_count_keeps_the_newest(make_index, sync_redis):
    index = make_index(clock=fixed(), settings=IndexSettings(cap=5, trim_per_call=1000))
    metas = [
        (f"c{n}".encode(), done_meta(f"c{n}", "SUCCESS", NOW - timedelta(minutes=10 - n)), NOW_MS)
        for n in range(8)
    ]
    counts = await index.ingest(metas)
    assert counts.trimmed == 3
    assert [t.task_id for t in await index.page(Bucket.COMPLETED, 0, 10)] == [
        "c7",
        "c6",
        "c5",
        "c4",
        "c3",
    ]
    assert sorted(sync_redis.hkeys(index.rows)) == [f"c{n}".encode() for n in range(3, 8)]


async def test_trim_work_per_call_is_bounded(make_index, sync_redis):
    index = make_index(clock=fixed(), settings=IndexSettings(cap=2, trim_per_call=2))
    entries = [
        index_entry(f"d{n}", done_meta(f"d{n}", "FAILURE", NOW - timedelta(minutes=n)))
        for n in range(8)
    ]
    assert (await index.write(entries)).trimmed == 2
    assert sync_redis.zcard(index.key(Bucket.FAILED)) == 6
    assert [(await index.trim()).trimmed for _ in range(3)] == [2, 2, 0]
    assert [t.task_id for t in await index.page(Bucket.FAILED, 0, 10)] == ["d0", "d1"]
    assert sorted(sync_redis.hkeys(index.rows)) == [b"d0", b"d1"]


async def test_trim_by_window(make_index, sync_redis):
    now = [NOW_S]
    index = make_index(clock=lambda: now[0])
    day = timedelta(days=1)
    fresh, old = NOW - day, NOW - 8 * day
    counts = await index.ingest(
        [
            (b"new", done_meta("new", "SUCCESS", fresh), NOW_MS),
            (b"old", done_meta("old", "SUCCESS", old), NOW_MS),
            (b"fail", done_meta("fail", "FAILURE", NOW - 6 * day), NOW_MS),
            (b"run-old", realistic_meta("run-old", "STARTED", None), NOW_MS - 25 * 3_600_000),
            (b"run-new", realistic_meta("run-new", "STARTED", None), NOW_MS - 3_600_000),
        ]
    )
    assert counts.trimmed == 2  # finished 8 days ago; running, first seen 25 hours ago
    assert await where(index, "old") is None
    assert await where(index, "run-old") is None
    assert await where(index, "new") is Bucket.COMPLETED
    assert sync_redis.hexists(index.rows, "old") == 0

    now[0] = NOW_S + 2 * 86_400  # two days on: nothing written, the periodic trim runs
    assert (await index.trim()).trimmed == 2  # the failure, now 8 days old; the run, 49 hours
    assert await where(index, "new") is Bucket.COMPLETED
    assert sync_redis.hlen(index.rows) == 1


async def test_a_task_an_operator_acted_on_is_not_indexed_again(make_index, sync_redis):
    index = make_index(clock=fixed())
    sync_redis.set(f"{LIFECYCLE}gone", "{}")
    sync_redis.set(meta_key("gone"), done_meta("gone", "FAILURE", NOW))
    sync_redis.set(meta_key("kept"), done_meta("kept", "FAILURE", NOW))
    counts = await index.ingest([(b"gone", done_meta("gone", "FAILURE", NOW), NOW_MS)])
    assert counts == WriteCounts(operator=1)
    report = await index.backfill.run()
    assert (report.written, report.operator) == (1, 1)
    assert await index.get("gone") is None
    assert await where(index, "kept") is Bucket.FAILED
    # A task an operator canceled: its REVOKED meta is what shows it, in the canceled list.
    sync_redis.set(f"{LIFECYCLE}revoked", "{}")
    counts = await index.ingest([(b"revoked", done_meta("revoked", "REVOKED", NOW), NOW_MS)])
    assert counts == WriteCounts(written=1)
    assert await where(index, "revoked") is Bucket.CANCELED


# ------------------------------------------------------------------ reads


async def test_reads_never_scan(make_index, sync_redis):
    seed_metas(sync_redis, 300)
    index = make_index()
    await index.backfill.run()

    def stats() -> tuple[int, int]:
        info = sync_redis.info("commandstats")
        return (
            info.get("cmdstat_scan", {}).get("calls", 0),
            info.get("cmdstat_keys", {}).get("calls", 0),
        )

    before = stats()
    for bucket in BUCKETS:
        assert await index.page(bucket, 0, 50)
    assert await index.page(Bucket.COMPLETED, 10_000, 50) == []
    pipe = index.broker.pipeline(transaction=False)
    index.queue_counts(pipe, int(time.time() * 1000))
    counts = index.take_counts(await pipe.execute())
    assert sum(counts.totals.values()) == 300
    assert counts.completed_24h == 210 and counts.failed_7d == 45
    first = (await index.page(Bucket.FAILED, 0, 1))[0]
    assert await index.get(first.task_id) == first
    assert await index.get("no-such-task") is None
    assert stats() == before


async def test_rows_someone_broke_do_not_break_a_page(make_index, sync_redis):
    index = make_index(clock=fixed())
    await index.ingest([(b"good", done_meta("good", "FAILURE", NOW), NOW_MS)])
    sync_redis.zadd(index.key(Bucket.FAILED), {"junk": NOW_MS + 1, "bare": NOW_MS + 2, b"\xff": 1})
    sync_redis.hset(index.rows, mapping={"junk": b"\x00{not json", b"\xff": "[]"})
    page = await index.page(Bucket.FAILED, 0, 10)
    by_id = {t.task_id: t for t in page}
    assert [t.task_id for t in page][:3] == ["bare", "junk", "good"]
    assert by_id["bare"].problem == "no summary"
    assert "not JSON" in (by_id["junk"].problem or "")
    assert "not an object" in (by_id["\udcff"].problem or "")
    assert by_id["good"].problem is None and by_id["good"].state == "FAILURE"
    junk = await index.get("junk")
    assert junk is not None and junk.bucket is Bucket.FAILED and junk.state == "UNKNOWN"
    # the script overwrites a broken row with a real meta
    await index.ingest([(b"junk", done_meta("junk", "SUCCESS", NOW), NOW_MS)])
    assert await where(index, "junk") is Bucket.COMPLETED


# ------------------------------------------------------------------ hostile metas


def _pickle_bomb(marker: Path) -> bytes:
    class Boom:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    return pickle.dumps({"status": "SUCCESS", "result": Boom(), "date_done": None})


def _hostile(marker: Path) -> dict[str, bytes]:
    return {
        "garbage": b"{{{ not json",
        "bomb": _pickle_bomb(marker),
        "huge": done_meta("huge", "SUCCESS", NOW, result="r" * 5_000_000),
        "types": done_meta("types", "FAILURE", NOW, retries="x", args="a", date_done=3),
        "pending": json.dumps({"status": "PENDING", "result": None, "task_id": "p"}).encode(),
        "deep": b"[" * 100_000 + b"]" * 100_000,
    }


async def test_hostile_metas_found_by_the_backfill(make_index, sync_redis, tmp_path):
    marker = tmp_path / "ran"
    for task_id, raw in _hostile(marker).items():
        sync_redis.set(meta_key(task_id), raw)
    sync_redis.rpush(meta_key("a-list"), "x")
    index = make_index(clock=fixed())
    report = await index.backfill.run()
    assert report.completed and report.keys_seen == 7
    assert (report.written, report.skipped, report.oversized) == (2, 5, 1)
    assert not marker.exists()
    huge = await index.get("huge")
    assert huge is not None and huge.bucket is Bucket.COMPLETED and huge.at == NOW
    assert "5,000," in (huge.problem or "")
    types = await index.get("types")
    assert types is not None and types.bucket is Bucket.FAILED
    assert "retries" in (types.problem or "")
    assert sum(index.skipped.values()) == 5
    assert await index.get("garbage") is None


async def test_hostile_metas_published_to_the_subscriber(make_index, sync_redis, tmp_path):
    marker = tmp_path / "ran"
    index = make_index(clock=fixed())
    await index.start()
    await async_wait_for(lambda: index._subscribed, "the subscription")
    for task_id, raw in _hostile(marker).items():
        sync_redis.publish(meta_key(task_id), raw)
    sync_redis.publish("celery-task-meta-", b"no id")
    await async_wait_for(lambda: index.events >= 7, "the events")
    await async_wait_for(lambda: index.get("types"), "the indexed metas")
    assert await where(index, "huge") is Bucket.COMPLETED
    assert sum(index.skipped.values()) == 5
    assert not marker.exists()
    assert (await index.status())["subscriber_connected"] is True


# ------------------------------------------------------------------ backfill


async def test_backfill_resumes_from_its_stored_cursor(make_index, sync_redis):
    ids = seed_metas(sync_redis, 600)
    settings = IndexSettings(step_sleep_s=0, scan_count=50)
    first = make_index(settings=settings)
    stopped = await first.backfill.run(max_keys=200)
    assert stopped.ran and not stopped.completed
    assert 200 <= stopped.keys_seen < 600 and stopped.cursor != "0"
    status = await first.status()
    assert status["pass_in_progress"] is True and status["cursor"] == stopped.cursor
    assert status["lock_held"] is False

    # another replica (or this one restarted) goes on from there
    second = make_index(settings=settings)
    rest = await second.backfill.run()
    assert rest.resumed and rest.completed
    assert rest.keys_seen < 600 <= stopped.keys_seen + rest.keys_seen  # SCAN may repeat a key
    pipe = second.broker.pipeline(transaction=False)
    second.queue_counts(pipe, int(time.time() * 1000))
    assert sum(second.take_counts(await pipe.execute()).totals.values()) == 600
    status = await second.status()
    assert (status["passes"], status["last_pass_keys"], status["cursor"]) == (1, 600, "0")
    assert await where(second, ids[0]) is Bucket.COMPLETED


async def test_a_closed_index_leaves_its_pass_for_the_next(make_index, sync_redis):
    seed_metas(sync_redis, 400)
    slow = IndexSettings(step_sleep_s=0.05, scan_count=20, pass_interval_s=3600)
    first = make_index(settings=slow)
    await first.start()
    await async_wait_for(
        lambda: sync_redis.hget(first.backfill_key, "keys_seen") not in (None, b"0"),
        "a step stored",
    )
    started = time.monotonic()
    await first.close()
    assert time.monotonic() - started < 1.5
    stored = sync_redis.hgetall(first.backfill_key)
    assert stored[b"cursor"] != b"0" and stored[b"pass_started_ms"]
    assert not sync_redis.exists(first.lock_key)  # released at close

    second = make_index(settings=IndexSettings(step_sleep_s=0, scan_count=20))
    report = await second.backfill.run()
    assert report.resumed and report.completed and report.keys_seen < 400
    assert sync_redis.zcard(second.key(Bucket.COMPLETED)) == 280


@pytest.mark.slow
async def test_one_replica_backfills_at_a_time(make_index, sync_redis):
    seed_metas(sync_redis, 300)
    settings = IndexSettings(step_sleep_s=0.02, scan_count=20, lock_retry_s=0.05)
    one, two = make_index(settings=settings), make_index(settings=settings)
    first = asyncio.create_task(one.backfill.run())
    await async_wait_for(lambda: sync_redis.exists(one.lock_key), "the lock taken")
    refused = await two.backfill.run()
    assert refused.held_by_other and not refused.ran
    assert (await first).completed
    assert not sync_redis.exists(one.lock_key)

    # in the background too: never both at once, and every result indexed once
    sync_redis.delete(one.backfill_key)
    both: list[bool] = []
    await one.start()
    await two.start()

    async def passes() -> int:
        both.append(one.backfill.backfilling and two.backfill.backfilling)
        return int(sync_redis.hget(one.backfill_key, "passes") or 0)

    await async_wait_for(passes, "a background pass", every=0.005)
    await asyncio.sleep(0.3)
    assert not any(both)
    assert int(sync_redis.hget(one.backfill_key, "passes") or 0) in (1, 2)


@pytest.mark.slow
async def test_a_lost_subscription_is_followed_by_a_pass(make_index, sync_redis):
    index = make_index(settings=IndexSettings(step_sleep_s=0, pass_interval_s=3600))
    await index.start()
    await async_wait_for(
        lambda: sync_redis.hget(index.backfill_key, "passes") == b"1", "first pass"
    )
    await async_wait_for(lambda: index._subscribed, "the subscription")
    # a meta written while nobody listened (no PUBLISH), then the connection drops
    sync_redis.set(meta_key("missed"), done_meta("missed", "SUCCESS", datetime.now(UTC)))
    sync_redis.client_kill_filter(_type="pubsub")
    await async_wait_for(lambda: index.reconnects >= 1, "the reconnection")
    await async_wait_for(lambda: where(index, "missed"), "the missed meta")
    # the pass that wrote it stores its count when it ends, just after that write
    passes = lambda: int(sync_redis.hget(index.backfill_key, "passes") or 0) >= 2  # noqa: E731
    await async_wait_for(passes, "the pass after the reconnection to end", timeout=5)


@pytest.mark.slow
async def test_backfill_of_seeded_metas_is_quick(make_index, sync_redis):
    seed_metas(sync_redis, 5000)
    index = make_index(settings=IndexSettings(step_sleep_s=0))
    report = await index.backfill.run()
    assert report.completed and report.written == 5000
    assert report.seconds < 10, report


# ------------------------------------------------------------------ real Celery workers


LIVE = IndexSettings(step_sleep_s=0, pass_interval_s=3600, lock_retry_s=0.1)


async def in_bucket(index: ResultIndex, task_id: str, bucket: Bucket) -> IndexedTask:
    async def check() -> IndexedTask | None:
        task = await index.get(task_id)
        return task if task is not None and task.bucket is bucket else None

    found: IndexedTask = await async_wait_for(check, f"{task_id} {bucket}", timeout=15)
    return found


async def test_real_worker_states_land_in_their_buckets(
    make_index, celery_app, celery_workers, sync_redis
):
    index = make_index(settings=LIVE)
    await index.start()
    await async_wait_for(
        lambda: sync_redis.hget(index.backfill_key, "passes") == b"1", "first pass"
    )
    celery_workers.start(pool="prefork", concurrency=2)

    added = send(celery_app, "add", 2, 3)
    failed = send(celery_app, "fail", "kaboom")
    retried = send(celery_app, "retrying", 1, 1.5)
    slow = send(celery_app, "sleep", 30)

    ok = await in_bucket(index, added.id, Bucket.COMPLETED)
    assert (ok.state, ok.args_preview, ok.queue) == (
        "SUCCESS",
        "examples.celery_app.add(2, 3)",
        "celery",
    )
    assert ok.extended and ok.worker and ok.problem is None
    bad = await in_bucket(index, failed.id, Bucket.FAILED)
    assert bad.error == "ValueError: kaboom"
    retrying = await in_bucket(index, retried.id, Bucket.RETRYING)
    assert retrying.state == "RETRY" and "retry 1 of 1" in (retrying.error or "")
    running = await in_bucket(index, slow.id, Bucket.RUNNING)
    assert running.state == "STARTED"

    celery_app.control.revoke(slow.id, terminate=True)
    canceled = await in_bucket(index, slow.id, Bucket.CANCELED)
    assert canceled.state == "REVOKED"
    done = await in_bucket(index, retried.id, Bucket.COMPLETED)
    assert done.retries == 1
    # all of it came through the subscription: the only pass ran on an empty database
    status = await index.status()
    assert status["passes"] == 1 and status["last_pass_keys"] == 0
    assert index.events >= 8


async def test_results_written_while_no_index_ran_are_found_after_restart(
    make_index, celery_app, celery_workers, sync_redis
):
    first = make_index(settings=LIVE)
    await first.start()
    celery_workers.start(pool="prefork", concurrency=2)
    tasks = [send(celery_app, "sleep", 1.5), send(celery_app, "sleep", 1.5)]
    for task in tasks:
        await in_bucket(first, task.id, Bucket.RUNNING)
    await first.close()  # jobbridge goes down while they run
    for task in tasks:
        wait_for_state(celery_app, task.id, "SUCCESS", workers=celery_workers)
    assert [await where(first, t.id) for t in tasks] == [Bucket.RUNNING] * 2

    second = make_index(settings=LIVE)
    await second.start()  # its first pass finds what the first missed
    for task in tasks:
        found = await in_bucket(second, task.id, Bucket.COMPLETED)
        assert found.state == "SUCCESS"
    assert sync_redis.zcard(second.key(Bucket.RUNNING)) == 0


async def test_two_replicas_index_what_one_would(
    make_index, celery_app, celery_workers, sync_redis
):
    one, two = make_index(settings=LIVE), make_index(settings=LIVE)
    await one.start()
    await two.start()
    await async_wait_for(lambda: one._subscribed and two._subscribed, "both subscriptions")
    celery_workers.start(pool="solo")
    sent = [send(celery_app, "add", n, n) for n in range(5)] + [send(celery_app, "fail", "no")]
    sent.append(send(celery_app, "retrying", 1, 0.2))
    for task in sent:
        task_id = task.id
        await async_wait_for(lambda: where(one, task_id), "indexed", timeout=15)  # noqa: B023
        wait_for_state(
            celery_app, task_id, "FAILURE" if task is sent[5] else "SUCCESS", workers=celery_workers
        )
    await in_bucket(one, sent[-1].id, Bucket.COMPLETED)
    await asyncio.sleep(0.3)  # the last batches of both subscribers
    assert one.events >= len(sent) * 2 and two.events >= len(sent) * 2

    alone = make_index(base="alone:", settings=LIVE)
    await alone.backfill.run()
    shared, single = dump(sync_redis), dump(sync_redis, "alone:")
    assert shared == single
    assert len(shared["completed"]) == 6 and len(shared["failed"]) == 1


async def test_a_replica_that_lost_the_lock_stops_and_leaves_it(make_index, sync_redis):
    seed_metas(sync_redis, 200)
    index = make_index(settings=IndexSettings(step_sleep_s=0, scan_count=20))

    stored: list[int] = []

    def steal(report):
        stored.append(report.keys_seen)
        sync_redis.set(index.lock_key, "another replica")

    report = await index.backfill.run(progress=steal)
    assert report.ran and report.lock_lost and not report.completed
    assert report.steps == 2  # the step after the theft is not stored
    assert sync_redis.get(index.lock_key) == b"another replica"  # not released by the loser
    # the progress stored is the first step's
    assert sync_redis.hget(index.backfill_key, "keys_seen") == str(stored[0]).encode()


async def test_a_stored_state_someone_broke_starts_a_clean_pass(make_index, sync_redis):
    seed_metas(sync_redis, 50)
    index = make_index()
    sync_redis.hset(
        index.backfill_key, mapping={"cursor": "9" * 40, "pass_started_ms": "x", "passes": "-"}
    )
    report = await index.backfill.run()
    assert report.completed and not report.resumed and report.keys_seen == 50
    sync_redis.hset(index.backfill_key, mapping={"cursor": "not a number", "pass_started_ms": "5"})
    report = await index.backfill.run()
    assert report.completed and report.resumed and report.keys_seen == 50
    assert (await index.status())["passes"] == 2
