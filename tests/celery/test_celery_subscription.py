"""One pub/sub connection per Celery source: the worker watch, the result index and the task
event feed all get their messages on it, and all recover when Redis drops it."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import redis
import redis.asyncio

from jobbridge.adapters.celery.adapter import CeleryAdapter
from jobbridge.adapters.celery.control import events_pattern
from jobbridge.adapters.celery.index_summary import Bucket
from tests.celery.celery_unacked_seed import event_message, events_channel
from tests.integration.test_redis_errors import acl_user
from tests.rq.rq_support import async_wait_for

pytestmark = pytest.mark.redis

PREFIX = "sub:"


def pubsub_clients(sync_redis: redis.Redis, db: int) -> dict[int, dict[str, Any]]:
    """The pub/sub connections of one database (other tests' workers use others)."""
    clients = sync_redis.client_list(_type="pubsub")
    return {int(c["id"]): c for c in clients if int(c["db"]) == db}


def publish_all(sync_redis: redis.Redis, db: int, round_: int) -> None:
    """A heartbeat of a worker, a task event and a result meta, named by ``round_``."""
    beat = {"type": "worker-heartbeat", "hostname": f"w{round_}@h", "freq": 2.0}
    beat["timestamp"] = time.time()
    sync_redis.publish(events_channel(PREFIX, db, "worker-heartbeat"), event_message(beat))
    started = {"type": "task-started", "uuid": f"ev-{round_}", "hostname": "w@h"}
    started["timestamp"] = time.time()
    sync_redis.publish(events_channel(PREFIX, db, "task-started"), event_message(started))
    meta = {"status": "SUCCESS", "result": 3, "traceback": None, "children": []}
    meta |= {"date_done": "2026-12-03T10:00:00+00:00", "task_id": f"meta-{round_}"}
    # published only, never SET: the index can have it from the subscription alone
    sync_redis.publish(f"celery-task-meta-meta-{round_}", json.dumps(meta))


async def all_three_heard(
    adapter: CeleryAdapter, sync_redis: redis.Redis, db: int, round_: int
) -> None:
    async def heard() -> bool:
        publish_all(sync_redis, db, round_)
        names = [w.name for w in adapter.watch.workers()]
        event = await adapter.index.get(f"ev-{round_}")
        meta = await adapter.index.get(f"meta-{round_}")
        return (
            f"w{round_}@h" in names
            and event is not None
            and event.bucket is Bucket.RUNNING
            and event.from_events
            and meta is not None
            and meta.bucket is Bucket.COMPLETED
        )

    await async_wait_for(heard, f"every listener's message of round {round_}", every=0.2)


@pytest.mark.slow
async def test_one_connection_feeds_the_watch_the_index_and_the_events(
    redis_url: str, sync_redis: redis.Redis
) -> None:
    db = int(redis_url.rsplit("/", 1)[1])
    assert not pubsub_clients(sync_redis, db)
    adapter = CeleryAdapter(
        redis.asyncio.Redis.from_url(redis_url), source="one-sub", global_keyprefix=PREFIX
    )
    await adapter.start()
    try:
        await async_wait_for(lambda: adapter.subscription.confirmed >= 3, "the subscription")
        ours = pubsub_clients(sync_redis, db)
        assert len(ours) == 1, ours
        (first,) = ours.values()
        assert int(first["psub"]) == 3  # the watch's, the index's and the event feed's pattern
        await all_three_heard(adapter, sync_redis, db, 1)
        passes = adapter.index.reconnects

        sync_redis.client_kill_filter(_type="pubsub")

        await async_wait_for(lambda: adapter.index.reconnects > passes, "the index to resync")
        await async_wait_for(lambda: adapter.task_events.subscriptions >= 2, "the events back")
        await all_three_heard(adapter, sync_redis, db, 2)
        ours = pubsub_clients(sync_redis, db)
        assert len(ours) == 1 and list(ours) != [int(first["id"])], ours
        assert int(next(iter(ours.values()))["psub"]) == 3
    finally:
        await adapter.close()
    await async_wait_for(lambda: not pubsub_clients(sync_redis, db), "the connection to close")


@pytest.mark.slow
async def test_a_pattern_the_acl_refuses_leaves_the_others_followed(
    redis_url: str, redis_server: Any, redis_client: redis.asyncio.Redis, sync_redis: redis.Redis
) -> None:
    db = int(redis_url.rsplit("/", 1)[1])
    # The worker and task event patterns, not the result channels (PSUBSCRIBE is granted
    # by the exact pattern).
    events = [f"&{events_pattern(PREFIX, db, group)}" for group in ("worker", "task")]
    async with acl_user(
        redis_client, redis_server, db, "~*", "+@all", "resetchannels", *events
    ) as url:
        adapter = CeleryAdapter(
            redis.asyncio.Redis.from_url(url), source="refused", global_keyprefix=PREFIX
        )
        await adapter.start()
        try:
            await async_wait_for(lambda: adapter.subscription.confirmed >= 2, "two patterns")

            async def followed(round_: int) -> bool:
                publish_all(sync_redis, db, round_)
                names = [w.name for w in adapter.watch.workers()]
                return f"w{round_}@h" in names and bool(await adapter.index.get(f"ev-{round_}"))

            await async_wait_for(lambda: followed(1), "the events followed", every=0.2)
            assert not adapter.index._subscribed
            assert await adapter.index.get("meta-1") is None
            (ours,) = pubsub_clients(sync_redis, db).values()
            assert int(ours["psub"]) == 2

            # Granted later: the index follows its pattern on the same connection.
            name = url.split("//", 1)[1].split(":", 1)[0]
            await redis_client.execute_command("ACL", "SETUSER", name, "&celery-task-meta-*")
            await async_wait_for(lambda: adapter.index._subscribed, "the index", timeout=20)
            await all_three_heard(adapter, sync_redis, db, 2)
            assert list(pubsub_clients(sync_redis, db)) == [int(ours["id"])]
        finally:
            await adapter.close()
