"""Celery's task events in jobbridge's result index: the precedence the index script gives a
meta over an event, hostile events, and real workers' events for tasks that store no result."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
import redis
import redis.asyncio

from jobbridge.adapters.celery.index import ResultIndex
from jobbridge.adapters.celery.index_store import IndexSettings
from jobbridge.adapters.celery.index_summary import Bucket, Entry, summarize
from jobbridge.adapters.celery.keys import CeleryKeys
from jobbridge.adapters.celery.task_events import TaskEventFeed, entry_of
from tests.celery.celery_jobbridge import celery_api, wait_row
from tests.celery.celery_support import meta_key, realistic_meta, send
from tests.celery.celery_unacked_seed import event_message, events_channel
from tests.rq.rq_support import async_wait_for

pytestmark = pytest.mark.redis

BASE = "jobbridge:celery::index:"
LIFECYCLE = "jobbridge:celery::lifecycle:"
NOW_S = 1_780_000_000.0
NOW_MS = int(NOW_S * 1000)
FAST = IndexSettings(step_sleep_s=0.0, lock_retry_s=0.1, backoff_s=(0.05, 0.5))


@pytest.fixture
async def index(redis_client: redis.asyncio.Redis) -> AsyncIterator[ResultIndex]:
    made = ResultIndex(
        redis_client,
        redis_client,
        keys=CeleryKeys(),
        base=BASE,
        source="celery-test",
        lifecycle_prefix=LIFECYCLE,
        settings=FAST,
        clock=lambda: NOW_S,
    )
    yield made
    await made.close()


def event(kind: str, task_id: str, at_s: float = NOW_S, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "uuid": task_id, "timestamp": at_s, "hostname": "w1@h", **fields}


def event_entry(kind: str, task_id: str, at_s: float = NOW_S, **fields: Any) -> Entry:
    entry = entry_of(event(kind, task_id, at_s, **fields), None, NOW_MS)
    assert entry is not None
    return entry


def meta_entry(task_id: str, state: str) -> Entry:
    finished = state in ("SUCCESS", "FAILURE", "REVOKED")
    raw = realistic_meta(task_id, state, datetime.fromtimestamp(NOW_S, UTC) if finished else None)
    entry = summarize(task_id.encode(), raw, seen_ms=NOW_MS)
    assert isinstance(entry, Entry), entry
    return entry


async def where(index: ResultIndex, task_id: str) -> tuple[Bucket | None, bool | None]:
    """The bucket a task is in and whether its row comes from events."""
    task = await index.get(task_id)
    return (task.bucket, task.from_events) if task else (None, None)


# ------------------------------------------------------------------------------------------
# The script's precedence


async def test_an_event_fills_in_what_no_meta_says(index: ResultIndex) -> None:
    await index.write([event_entry("task-started", "t1")])
    assert await where(index, "t1") == (Bucket.RUNNING, True)
    await index.write([event_entry("task-succeeded", "t1", NOW_S + 2)])
    task = await index.get("t1")
    assert task is not None and task.bucket is Bucket.COMPLETED and task.from_events
    assert task.worker == "w1@h" and task.at.timestamp() == NOW_S + 2
    # an older event of the same task changes nothing
    await index.write([event_entry("task-started", "t1", NOW_S + 1)])
    assert await where(index, "t1") == (Bucket.COMPLETED, True)


@pytest.mark.parametrize("meta_first", [True, False])
async def test_a_meta_outranks_an_event_whatever_the_order(
    index: ResultIndex, meta_first: bool
) -> None:
    meta = meta_entry("t2", "SUCCESS")
    late_event = event_entry("task-succeeded", "t2", NOW_S + 60)  # a later timestamp
    for entry in [meta, late_event] if meta_first else [late_event, meta]:
        await index.write([entry])
    task = await index.get("t2")
    assert task is not None and task.bucket is Bucket.COMPLETED
    assert not task.from_events and task.extended


async def test_an_event_finishes_a_started_meta_and_the_final_meta_replaces_it(
    index: ResultIndex,
) -> None:
    await index.write([meta_entry("t3", "STARTED")])
    # an unfinished event never replaces a meta
    await index.write([event_entry("task-retried", "t3", NOW_S + 5, exception="E('x')")])
    assert await where(index, "t3") == (Bucket.RUNNING, False)
    # a finished one does (the task would otherwise look running until its meta came)
    await index.write([event_entry("task-failed", "t3", NOW_S + 6, exception="E('x')")])
    task = await index.get("t3")
    assert task is not None and (task.bucket, task.from_events) == (Bucket.FAILED, True)
    assert task.error == "E('x')"
    await index.write([meta_entry("t3", "FAILURE")])
    assert await where(index, "t3") == (Bucket.FAILED, False)
    # and an unfinished meta cannot take a finished event's task back
    await index.write([event_entry("task-succeeded", "t4", NOW_S)])
    await index.write([meta_entry("t4", "STARTED")])
    assert await where(index, "t4") == (Bucket.COMPLETED, True)


async def test_failed_events_of_a_task_an_operator_handled_are_skipped(
    index: ResultIndex, redis_client: redis.asyncio.Redis
) -> None:
    await redis_client.set(LIFECYCLE + "t5", "{}")
    counts = await index.write([event_entry("task-failed", "t5")])
    assert counts.operator == 1
    assert await where(index, "t5") == (None, None)


# ------------------------------------------------------------------------------------------
# The feed on a real channel


async def test_the_feed_remembers_names_and_survives_hostile_events(
    index: ResultIndex, redis_client: redis.asyncio.Redis
) -> None:
    feed = TaskEventFeed(
        redis_client, index, global_keyprefix="", db=0, source="celery-test", clock=lambda: NOW_S
    )
    await feed.start()
    try:
        await async_wait_for(lambda: feed.subscriptions > 0, "the subscription", timeout=5)
        channel = events_channel("", 0, "task-multi")
        received = event(
            "task-received",
            "t6",
            name="tasks.add",
            args="(2, 3)",
            kwargs="{'z': 1}",
            retries=0,
            root_id="r",
            parent_id="p",
        )
        hostile: list[Any] = [
            event("task-succeeded", "x" * 500),  # an id too long
            event("task-failed", "t7", at_s=-5.0, exception=["not text"]),
            event("task-revoked", "t9", at_s=1e300),
            {"type": "task-succeeded"},  # no uuid
            {"type": "task-started", "uuid": "t8", "timestamp": "yesterday", "hostname": 9},
            "not an event",
        ]
        await redis_client.publish(channel, event_message([received, *hostile]))
        await redis_client.publish(channel, b"\x80\x04 not an envelope")
        await redis_client.publish(
            events_channel("", 0, "task-succeeded"),
            event_message(event("task-succeeded", "t6", NOW_S + 1, result="5", runtime=0.1)),
        )
        await async_wait_for(lambda: feed.written.written >= 4, "4 entries written", timeout=5)
        task = await index.get("t6")
        assert task is not None and task.bucket is Bucket.COMPLETED and task.from_events
        assert (task.name, task.parent_id, task.root_id) == ("tasks.add", "p", "r")
        assert task.args_preview == "tasks.add(2, 3, **{'z': 1})"
        failed = await index.get("t7")
        assert failed is not None and failed.bucket is Bucket.FAILED and failed.error is None
        assert failed.at.timestamp() == NOW_S  # no time in the event: its arrival
        revoked = await index.get("t9")
        assert revoked is not None and revoked.bucket is Bucket.CANCELED
        assert revoked.at.timestamp() == NOW_S + 60  # a clock far ahead: kept near arrival
        started = await index.get("t8")
        assert started is not None and started.bucket is Bucket.RUNNING and started.worker is None
        assert await index.get("x" * 500) is None
    finally:
        await feed.close()


# ------------------------------------------------------------------------------------------
# Real workers


async def test_a_task_that_stores_no_result_shows_through_its_events(
    celery_app, celery_workers, redis_url: str, sync_redis: redis.Redis
) -> None:
    async with celery_api(redis_url) as api:
        celery_workers.start(pool="solo")  # -E: task events
        running = send(celery_app, "quiet", 3)
        row = await wait_row(api, "running", running.id)
        assert row["name"] == "examples.celery_app.quiet"
        done = await wait_row(api, "completed", running.id, timeout=20)
        assert done["worker"].endswith("@jbtest")
        failing = send(celery_app, "quiet", 0, "quietly broken")
        failed = await wait_row(api, "failed", failing.id)
        assert "quietly broken" in (failed["last_error"] or "")
        assert not sync_redis.exists(meta_key(running.id), meta_key(failing.id))
        status, job = await api.get(f"/api/sources/{api.source}/jobs/{failing.id}")
        assert status == 200 and "from the task's events" in json.dumps(job)
        # its arguments are nowhere: retry is refused, and nothing is sent
        status, body = await api.act(failing.id, "retry")
        assert status == 409 and "arguments are gone" in body["message"], body
        assert "task events" in failed["extra"]["known from"]
        assert "none was stored" in failed["extra"]["retry"]
        # a task that stores its result is indexed from it, events or not
        stored = send(celery_app, "add", 2, 3)
        await wait_row(api, "completed", stored.id)
        index = api.service.adapter(api.source).index  # type: ignore[attr-defined]

        async def from_meta() -> bool:
            task = await index.get(stored.id)
            return task is not None and not task.from_events and task.extended

        await async_wait_for(from_meta, "add's row from its meta", timeout=10)
