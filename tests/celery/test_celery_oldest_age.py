"""The oldest waiting age of Celery queues (docs/celery.md §4.5): exact from ``task-sent``
events, a lower bound from the first sighting of a list's oldest message otherwise, per queue
and per priority list, kept across a restart, following the tail as workers take messages, and
never raising on a hostile tail."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import redis
import redis.asyncio
from celery import Celery

from jobbridge.adapters.celery.adapter import CeleryAdapter
from jobbridge.adapters.celery.tail_ages import ListAge, remembered
from jobbridge.model import Counters, QueueCounters
from tests.celery.celery_support import CeleryWorkerPool, send, wait_for_state
from tests.rq.rq_support import async_wait_for

pytestmark = pytest.mark.redis

QUEUES = ("celery", "mail")
SEEN_KEY = "jobbridge:celery::tail_seen"
#: kombu's list of priority step 9 of the ``celery`` queue
STEP_9 = "celery\x06\x169"
#: a fast background step, so the tests need not wait seconds for a sighting
STEP_S = 0.1


@asynccontextmanager
async def adapter_on(redis_url: str, *, start: bool = True) -> AsyncIterator[CeleryAdapter]:
    adapter = CeleryAdapter(redis.asyncio.Redis.from_url(redis_url), source="celery", queues=QUEUES)
    adapter.tail_ages.step_s = STEP_S
    if start:
        await adapter.start()
        await async_wait_for(lambda: adapter.task_events.subscriptions >= 1, "the event feed")
    try:
        yield adapter
    finally:
        await adapter.close()


def queue(counters: Counters, name: str) -> QueueCounters:
    return next(q for q in counters.queues if q.name == name)


async def counters_when(
    adapter: CeleryAdapter, ok: Callable[[Counters], bool], what: str, timeout: float = 10.0
) -> Counters:
    """The first counters read ``ok`` accepts."""
    found: list[Counters] = []

    async def check() -> bool:
        found[:] = [await adapter.counters()]
        return ok(found[0])

    try:
        await async_wait_for(check, what, timeout, every=0.1)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last counters: {found}") from None
    return found[0]


def sent_at(app: Celery, short: str, *args: Any, **options: Any) -> tuple[str, float]:
    """Send a task; its id and the time it was sent (midway through the call)."""
    before = time.time()
    task_id = send(app, short, *args, **options).id
    return task_id, (before + time.time()) / 2


def exact_age(q: QueueCounters, since: float) -> bool:
    age = q.oldest_enqueued_age_s
    return (
        age is not None
        and not q.oldest_enqueued_age_at_least
        and abs(age - (time.time() - since)) < 1.5
    )


# ------------------------------------------------------------------------------------------
# Exact, from task-sent events


async def test_with_sent_events_the_age_is_the_time_since_the_task_was_sent(
    redis_url: str, celery_app: Celery
) -> None:
    assert celery_app.conf.task_send_sent_event
    async with adapter_on(redis_url) as adapter:
        _, at = sent_at(celery_app, "add", 1, 2)
        first = await counters_when(
            adapter, lambda c: exact_age(queue(c, "celery"), at), "an exact age"
        )
        assert first.oldest_enqueued_age_s == queue(first, "celery").oldest_enqueued_age_s
        assert not first.oldest_enqueued_age_at_least
        assert queue(first, "mail").oldest_enqueued_age_s is None  # empty
        await asyncio.sleep(1.5)
        later = await adapter.counters()
        assert exact_age(queue(later, "celery"), at), later
        assert (later.oldest_enqueued_age_s or 0) >= (first.oldest_enqueued_age_s or 0) + 1.4


async def test_the_sent_time_is_remembered_in_redis_for_replicas(
    redis_url: str, celery_app: Celery, sync_redis: redis.Redis
) -> None:
    async with adapter_on(redis_url) as adapter:
        _, at = sent_at(celery_app, "add", 1, 2)
        await counters_when(adapter, lambda c: exact_age(queue(c, "celery"), at), "exact")

        def stored() -> bool:
            values = [remembered(v) for v in sync_redis.hvals(SEEN_KEY)]
            return any(v is not None and v[1] and abs(v[0] / 1000 - at) < 1 for v in values)

        await async_wait_for(stored, "the sent time in the shared hash")
        # a replica that never heard the event (not started: no subscription) reads it
        async with adapter_on(redis_url, start=False) as replica:
            await replica.tail_ages.step()
            counters = await replica.counters()
            assert exact_age(queue(counters, "celery"), at), counters
    assert 0 < sync_redis.ttl(SEEN_KEY) <= 7 * 24 * 3600


# ------------------------------------------------------------------------------------------
# A lower bound, from the first sighting


async def test_without_sent_events_the_age_is_a_lower_bound_that_grows(
    redis_url: str, celery_app: Celery
) -> None:
    celery_app.conf.task_send_sent_event = False
    async with adapter_on(redis_url) as adapter:
        _, at = sent_at(celery_app, "add", 1, 2)
        await asyncio.sleep(0.5)
        first = await counters_when(
            adapter,
            lambda c: (queue(c, "celery").oldest_enqueued_age_s or 0) > 0.2,
            "a first sighting",
        )
        q = queue(first, "celery")
        assert q.oldest_enqueued_age_at_least and first.oldest_enqueued_age_at_least
        assert (q.oldest_enqueued_age_s or 0) <= time.time() - at  # never more than the truth
        await asyncio.sleep(1.5)
        later = queue(await adapter.counters(), "celery")
        assert later.oldest_enqueued_age_at_least
        assert (later.oldest_enqueued_age_s or 0) >= (q.oldest_enqueued_age_s or 0) + 1.4
        assert (later.oldest_enqueued_age_s or 0) <= time.time() - at


async def test_a_restart_keeps_the_first_sightings(redis_url: str, celery_app: Celery) -> None:
    celery_app.conf.task_send_sent_event = False
    async with adapter_on(redis_url) as first:
        sent_at(celery_app, "add", 1, 2)
        seen = await counters_when(
            first,
            lambda c: (queue(c, "celery").oldest_enqueued_age_s or 0) > 0,
            "a first sighting",
        )
    await asyncio.sleep(2.0)
    async with adapter_on(redis_url) as second:
        await async_wait_for(lambda: second.tail_ages.steps >= 1, "a step")
        again = queue(await second.counters(), "celery")
    before = queue(seen, "celery").oldest_enqueued_age_s or 0
    assert again.oldest_enqueued_age_at_least
    assert (again.oldest_enqueued_age_s or 0) >= before + 1.9, (before, again)


async def test_a_tail_not_seen_yet_reads_as_at_least_nothing(
    redis_url: str, celery_app: Celery
) -> None:
    celery_app.conf.task_send_sent_event = False
    async with adapter_on(redis_url, start=False) as adapter:
        sent_at(celery_app, "add", 1, 2)
        q = queue(await adapter.counters(), "celery")  # no step has run: no write, no guess
        assert (q.oldest_enqueued_age_s, q.oldest_enqueued_age_at_least) == (0.0, True)


# ------------------------------------------------------------------------------------------
# Per queue and per priority list


async def test_each_queue_and_priority_list_has_its_own_oldest(
    redis_url: str, celery_app: Celery, sync_redis: redis.Redis
) -> None:
    async with adapter_on(redis_url) as adapter:
        _, low_at = sent_at(celery_app, "add", 1, 2, priority=9)  # step 9: runs last
        await asyncio.sleep(1.5)
        _, high_at = sent_at(celery_app, "add", 3, 4, priority=0)
        await asyncio.sleep(1.0)
        _, mail_at = sent_at(celery_app, "send_email", "a@example.com")
        assert sync_redis.llen(STEP_9) == 1 and sync_redis.llen("celery") == 1
        counters = await counters_when(
            adapter,
            lambda c: (
                exact_age(queue(c, "celery"), low_at) and exact_age(queue(c, "mail"), mail_at)
            ),
            "both queues timed",
        )
        # the queue's oldest is the step-9 message, though the step-0 one runs first
        assert abs((counters.oldest_enqueued_age_s or 0) - (time.time() - low_at)) < 1.5
        assert not counters.oldest_enqueued_age_at_least
        # each list's own age, as the counters read them
        ages = {part: age.age_s for part, age in (await adapter._read_base()).ages.items()}
        assert abs((ages[("celery", 0)] or 0) - (time.time() - high_at)) < 1.5
        assert abs((ages[("celery", 9)] or 0) - (time.time() - low_at)) < 1.5
        assert set(ages) == {("celery", 0), ("celery", 9), ("mail", 0)}


# ------------------------------------------------------------------------------------------
# Following the tail as a real worker takes messages


@pytest.mark.slow
async def test_the_age_follows_the_new_tail_once_a_worker_takes_the_oldest(
    redis_url: str, celery_app: Celery, celery_workers: CeleryWorkerPool, sync_redis: redis.Redis
) -> None:
    async with adapter_on(redis_url) as adapter:
        long_id, long_at = sent_at(celery_app, "sleep", 20)
        await asyncio.sleep(2.0)
        _, next_at = sent_at(celery_app, "add", 1, 2)
        await counters_when(adapter, lambda c: exact_age(queue(c, "celery"), long_at), "oldest")
        await async_wait_for(lambda: sync_redis.hlen(SEEN_KEY) >= 1, "a sighting stored")
        # one task at a time, none prefetched: the worker takes the oldest and runs it
        celery_workers.start(("celery",), extra=("--prefetch-multiplier", "1"))
        wait_for_state(celery_app, long_id, "STARTED", workers=celery_workers)
        assert sync_redis.llen("celery") == 1
        counters = await counters_when(
            adapter, lambda c: exact_age(queue(c, "celery"), next_at), "the new tail's age"
        )
        assert (counters.oldest_enqueued_age_s or 0) < time.time() - long_at - 1.5
        # the departed tail is forgotten; the new one is remembered
        await async_wait_for(lambda: sync_redis.hlen(SEEN_KEY) == 1, "one tag remembered")


@pytest.mark.slow
async def test_a_lower_bound_follows_the_new_tail_too(
    redis_url: str, celery_app: Celery, celery_workers: CeleryWorkerPool, sync_redis: redis.Redis
) -> None:
    celery_app.conf.task_send_sent_event = False
    async with adapter_on(redis_url) as adapter:
        long_id, long_at = sent_at(celery_app, "sleep", 20)
        sent_at(celery_app, "add", 1, 2)
        await asyncio.sleep(2.5)
        before = queue(await adapter.counters(), "celery")
        assert before.oldest_enqueued_age_at_least
        assert 2 < (before.oldest_enqueued_age_s or 0) <= time.time() - long_at
        celery_workers.start(("celery",), extra=("--prefetch-multiplier", "1"))
        wait_for_state(celery_app, long_id, "STARTED", workers=celery_workers)
        taken = time.time()
        after = await counters_when(
            adapter,
            lambda c: (queue(c, "celery").oldest_enqueued_age_s or 99) < 1.5,
            "the new tail's first sighting",
        )
        q = queue(after, "celery")
        assert q.oldest_enqueued_age_at_least and q.enqueued == 1
        assert (q.oldest_enqueued_age_s or 0) <= time.time() - taken + 1.0


# ------------------------------------------------------------------------------------------
# Hostile tails, and the cost of a read


@pytest.mark.parametrize(
    "tail",
    [
        b"not json at all \xff",
        json.dumps({"headers": {"id": "x", "task": "t"}, "properties": {}}).encode(),
        json.dumps({"properties": {"delivery_tag": ["a", "list"]}}).encode(),
        b"[" * 100_000,
    ],
    ids=["garbage", "no-tag", "tag-not-text", "deep-nesting"],
)
async def test_a_hostile_tail_has_no_age_and_the_counters_say_why(
    redis_url: str, celery_app: Celery, sync_redis: redis.Redis, tail: bytes
) -> None:
    sync_redis.lpush("celery", tail)  # the oldest message of the list
    celery_app.conf.task_send_sent_event = False
    sent_at(celery_app, "add", 1, 2, priority=9)  # a good message in another list
    async with adapter_on(redis_url) as adapter:
        await async_wait_for(lambda: adapter.tail_ages.steps >= 2, "two steps")
        counters = await adapter.counters()
    q = queue(counters, "celery")
    assert q.enqueued == 2
    # the other list is timed; the queue's age is a lower bound (the hostile one is not timed)
    assert q.oldest_enqueued_age_s is not None and q.oldest_enqueued_age_at_least
    assert any("oldest message of 'celery' cannot be timed" in p for p in counters.problems), (
        counters.problems
    )
    # nothing of the hostile message was remembered
    assert all(remembered(v) is not None for v in sync_redis.hvals(SEEN_KEY))
    assert sync_redis.hlen(SEEN_KEY) == 1


async def test_a_foreign_value_in_the_hash_is_not_an_age(
    redis_url: str, celery_app: Celery, sync_redis: redis.Redis
) -> None:
    celery_app.conf.task_send_sent_event = False
    sent_at(celery_app, "add", 1, 2)
    async with adapter_on(redis_url, start=False) as adapter:
        await adapter.tail_ages.step()
        (tag,) = sync_redis.hkeys(SEEN_KEY)
        sync_redis.hset(SEEN_KEY, tag, "f-12")
        q = queue(await adapter.counters(), "celery")
        assert (q.oldest_enqueued_age_s, q.oldest_enqueued_age_at_least) == (0.0, True)
        sync_redis.delete(SEEN_KEY)
        sync_redis.set(SEEN_KEY, "a string")
        await adapter.tail_ages.step()
        counters = await adapter.counters()
    assert any("not jobbridge's hash of first-seen times" in p for p in counters.problems)
    assert queue(counters, "celery").oldest_enqueued_age_at_least


async def test_a_counters_read_adds_one_lindex_per_list_in_use_and_one_hmget(
    redis_url: str, celery_app: Celery, sync_redis: redis.Redis
) -> None:
    sent_at(celery_app, "add", 1, 2)
    sent_at(celery_app, "send_email", "a@example.com")
    async with adapter_on(redis_url, start=False) as adapter:
        await adapter.tail_ages.step()

        def calls() -> dict[str, int]:
            stats = sync_redis.info("commandstats")
            return {
                c: int(stats.get(f"cmdstat_{c}", {}).get("calls", 0))
                for c in ("lindex", "hmget", "evalsha", "hset")
            }

        before = calls()
        await adapter.counters()
        after = calls()
    # the lists holding messages at the last step: each queue's step 0 (the other
    # priority lists were empty, and are not read)
    assert {c: after[c] - before[c] for c in after} == {
        "lindex": 2,
        "hmget": 1,
        "evalsha": 0,
        "hset": 0,
    }


def test_a_queue_is_a_lower_bound_when_any_list_is_one_or_untimed() -> None:
    from jobbridge.adapters.celery.adapter import _oldest

    assert _oldest([None, None]) == (None, False)
    assert _oldest([ListAge(3.0), None]) == (3.0, False)
    assert _oldest([ListAge(3.0), ListAge(1.0, at_least=True)]) == (3.0, True)
    assert _oldest([ListAge(3.0), ListAge(None, problem="x")]) == (3.0, True)
    assert remembered(b"s1700000000000") == (1_700_000_000_000, True)
    assert remembered(b"f12") == (12, False)
    assert [remembered(v) for v in (b"", b"x1", b"f", b"f-1", b"f\xd9\xa1", "s" + "9" * 30)] == [
        None
    ] * 6


async def test_a_viewer_acl_user_samples_prunes_and_reads(
    redis_client: redis.asyncio.Redis,
    redis_server: Any,
    redis_url: str,
    celery_app: Celery,
    sync_redis: redis.Redis,
) -> None:
    """The grants `jobbridge acl` prints for a viewer let the sampler's script run, its
    pruning included (departed tags left by a replica that died)."""
    from jobbridge.acl import acl_rules, selectors_supported
    from jobbridge.settings import SourceConfig
    from jobbridge.sources import connect
    from tests.integration.test_redis_errors import acl_user, db_of

    celery_app.conf.task_send_sent_event = False
    sent_at(celery_app, "add", 1, 2)
    source = SourceConfig(name="celery", system="celery", redis_url=redis_url)
    version = str((await redis_client.info("server"))["redis_version"])
    viewer = acl_rules([source], "viewer", selectors=selectors_supported(version))
    async with acl_user(redis_client, redis_server, db_of(redis_url), *viewer) as url:
        adapter = CeleryAdapter(connect(url), source="celery", queues=QUEUES)
        try:
            await adapter.tail_ages.step()
            sync_redis.hset(SEEN_KEY, mapping={f"gone-{i}": "f1" for i in range(1_100)})
            await adapter.tail_ages.step()
            counters = await adapter.counters()
        finally:
            await adapter.close()
    assert sync_redis.hlen(SEEN_KEY) == 1
    q = queue(counters, "celery")
    assert q.oldest_enqueued_age_s is not None and q.oldest_enqueued_age_at_least
    assert not counters.problems


async def test_a_big_tail_is_timed_from_the_step_without_reading_it_again(
    redis_url: str, celery_app: Celery, sync_redis: redis.Redis
) -> None:
    async with adapter_on(redis_url) as adapter:
        _, at = sent_at(celery_app, "add", "x" * 300_000, 2)
        await counters_when(adapter, lambda c: exact_age(queue(c, "celery"), at), "exact")
        await adapter.tail_ages.close()  # no step from here: only the reads below count
        before = sync_redis.info("commandstats").get("cmdstat_lindex", {}).get("calls", 0)
        counters = await adapter.counters()
        after = sync_redis.info("commandstats").get("cmdstat_lindex", {}).get("calls", 0)
        assert after == before
        assert exact_age(queue(counters, "celery"), at), counters
        sync_redis.delete("celery")  # taken: the counters' LLEN says so at once
        assert queue(await adapter.counters(), "celery").oldest_enqueued_age_s is None


async def test_a_waiting_row_is_enqueued_at_its_task_sent_time(
    redis_url: str, celery_app: Celery
) -> None:
    from jobbridge.model import ListName, SnapshotQuery

    async with adapter_on(redis_url) as adapter:
        task_id, at = sent_at(celery_app, "add", 1, 2)
        await async_wait_for(lambda: adapter.sent_times.get(task_id) is not None, "task-sent")
        shot = await adapter.snapshot(SnapshotQuery.build())
        row = next(r for r in shot.lists[ListName.ENQUEUED].items if r.id == task_id)
        assert row.enqueued_at is not None
        assert abs(row.enqueued_at.timestamp() - at) < 1.5, (row.enqueued_at, at)


async def test_without_sent_events_a_waiting_row_has_no_enqueue_time(
    redis_url: str, celery_app: Celery
) -> None:
    from jobbridge.model import ListName, SnapshotQuery

    celery_app.conf.task_send_sent_event = False
    async with adapter_on(redis_url) as adapter:
        task_id, _ = sent_at(celery_app, "add", 1, 2)
        shot = await adapter.snapshot(SnapshotQuery.build())
        row = next(r for r in shot.lists[ListName.ENQUEUED].items if r.id == task_id)
        assert row.enqueued_at is None
