"""The background sort of ``unacked``: eta-held messages soonest first, reserved ones newest

delivered first, each tag decoded once, changes merged in, a broken key reported."""

from __future__ import annotations

import pytest
import redis
import redis.asyncio

from jobbridge.adapters.celery.keys import CeleryKeys
from jobbridge.adapters.celery.unacked import UnackedView
from tests.celery.celery_unacked_seed import held_value, seed_held

pytestmark = pytest.mark.redis


def expected(made: dict) -> tuple[list[str], list[str]]:
    scheduled = sorted((eta, tag) for tag, (_, eta, _) in made.items() if eta is not None)
    reserved = sorted((-at, tag) for tag, (_, eta, at) in made.items() if eta is None)
    return [t for _, t in scheduled], [t for _, t in reserved]


@pytest.mark.slow
async def test_sorts_decodes_each_tag_once_and_merges_changes(
    sync_redis: redis.Redis, redis_client: redis.asyncio.Redis
) -> None:
    made = seed_held(sync_redis, 3000)
    view = UnackedView(redis_client, CeleryKeys())
    first = await view.refresh()
    scheduled, reserved = expected(made)
    assert list(first.scheduled) == scheduled and len(scheduled) == 1500
    assert list(first.reserved) == reserved
    assert first.reserved[:3] == reserved[:3]
    assert view.decoded == 3000

    # Nothing changed: nothing decoded again, the same order.
    again = await view.refresh()
    assert view.decoded == 3000 and list(again.scheduled) == scheduled

    # Some acknowledged, some delivered: only the new ones are decoded.
    leaving = list(made)[:100]
    sync_redis.hdel("unacked", *leaving)
    sync_redis.zrem("unacked_index", *leaving)
    for tag in leaving:
        del made[tag]
    made.update(seed_held(sync_redis, 50, start_s=1_800_000_000.0))
    changed = await view.refresh()
    assert view.decoded == 3050
    assert (list(changed.scheduled), list(changed.reserved)) == expected(made)
    task_id = next(iter(made.values()))[0]
    assert task_id in changed.task_ids and view.tag_of(task_id) == next(iter(made))
    gone_id = "never-held"
    assert gone_id not in changed.task_ids and view.tag_of(gone_id) is None


async def test_a_broken_index_is_a_problem_not_an_error(
    sync_redis: redis.Redis, redis_client: redis.asyncio.Redis
) -> None:
    sync_redis.set("unacked_index", "not a zset")
    sync_redis.hset("unacked", "t1", held_value("x", None))
    view = UnackedView(redis_client, CeleryKeys())
    result = await view.refresh()
    assert result.problem == "unacked_index is not a sorted set"
    assert list(result.reserved) == [] and list(result.scheduled) == []
