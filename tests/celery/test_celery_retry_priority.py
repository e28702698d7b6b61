"""A retry sends a Celery task again at the priority it was sent with, when jobbridge saw it.

Celery's result does not keep a message's priority, so jobbridge records it while a worker
holds the message (``unacked``, sorted in the background): a task held for its countdown is
recorded, fails, and its retry lands in the list of its priority step with that priority, then
runs on a real worker. A task jobbridge never saw held is retried at priority 0, and the reply
says why. The record itself is written only off the default step, with a TTL, by the
background, and a user that may not write it leaves the sort working.
"""

from __future__ import annotations

import json
import logging
import shlex
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis
import redis.asyncio

from jobbridge.adapters.celery.control import validate_task_message
from jobbridge.adapters.celery.keys import CeleryKeys
from jobbridge.adapters.celery.unacked import PRIORITY_SEEN_TTL_S, UnackedView
from tests.celery.celery_jobbridge import celery_api, wait_row
from tests.celery.celery_support import meta_key, send, wait_for_state
from tests.celery.celery_unacked_seed import held_value
from tests.rq.rq_support import async_wait_for

pytestmark = pytest.mark.redis

#: where jobbridge (default ``jobbridge_prefix``, no ``global_keyprefix``) records a priority
PRIORITY_KEY = "jobbridge:celery::priority:{0}"
#: the lists of the default queue: step 0 is the queue itself, step 6 has kombu's separator
STEP_0 = "celery"
STEP_6 = "celery\x06\x166"
#: how long the worker holds the failing task before running it: several background sorts
COUNTDOWN_S = 4
DAY_S = 86_400


def waiting(conn: redis.Redis, key: str) -> dict[str, tuple[bytes, dict[str, Any]]]:
    """task id -> (raw bytes, envelope) of every message waiting in one list."""
    found = {}
    for raw in conn.lrange(key, 0, -1):
        envelope = json.loads(raw)
        found[envelope["headers"]["id"]] = (raw, envelope)
    return found


async def test_retry_sends_the_task_again_at_the_priority_jobbridge_saw(
    celery_app, celery_workers, redis_url, sync_redis
) -> None:
    worker = celery_workers.start(pool="solo")
    async with celery_api(redis_url) as api:
        # Held for its countdown at the default priority: sorted, never recorded.
        plain = send(celery_app, "add", 1, 1, countdown=COUNTDOWN_S)
        await wait_row(api, "scheduled", plain.id)
        held = send(celery_app, "flaky", "at-7", priority=7, countdown=COUNTDOWN_S)
        key = PRIORITY_KEY.format(held.id)
        await async_wait_for(
            lambda: sync_redis.exists(key), f"jobbridge to record {held.id}'s priority", timeout=15
        )
        # Records are written in the order messages are decoded: plain's would be there.
        assert not sync_redis.exists(PRIORITY_KEY.format(plain.id))
        assert sync_redis.get(key) == b"7"
        assert 7 * DAY_S < sync_redis.ttl(key) <= PRIORITY_SEEN_TTL_S

        wait_for_state(celery_app, held.id, "FAILURE", COUNTDOWN_S + 15, workers=celery_workers)
        wait_for_state(celery_app, plain.id, "SUCCESS", workers=celery_workers)
        await wait_row(api, "failed", held.id)
        worker.stop()  # what the retry pushes stays where it lands

        status, body = await api.act(held.id, "retry")
        assert status == 200, body
        new_id = body["new_id"]
        assert f"as {new_id} at priority 7 (as jobbridge saw it queued)" in body["message"]
        # Priority 7 waits in step 6's list, and the message keeps 7 (kombu's own choice).
        sent = waiting(sync_redis, STEP_6)
        assert list(sent) == [new_id], sent
        raw, envelope = sent[new_id]
        assert envelope["properties"]["priority"] == 7
        assert envelope["headers"]["parent_id"] == held.id
        assert validate_task_message(raw, queue="celery") is None
        assert sync_redis.llen(STEP_0) == 0

        celery_workers.start(pool="solo")
        wait_for_state(celery_app, new_id, "SUCCESS", 20, workers=celery_workers)
        meta = json.loads(sync_redis.get(meta_key(new_id)))
        assert meta["result"] == 2 and meta["parent_id"] == held.id


async def test_retry_of_a_task_jobbridge_never_saw_held_is_at_priority_0(
    celery_app, celery_workers, redis_url, sync_redis
) -> None:
    worker = celery_workers.start(pool="solo")
    # Sent, held and failed while no jobbridge ran: nobody saw its priority.
    unseen = send(celery_app, "flaky", "unseen", priority=7)
    wait_for_state(celery_app, unseen.id, "FAILURE", workers=celery_workers)
    worker.stop()
    assert not sync_redis.exists(PRIORITY_KEY.format(unseen.id))
    async with celery_api(redis_url) as api:
        await wait_row(api, "failed", unseen.id)
        status, body = await api.act(unseen.id, "retry")
        assert status == 200, body
        new_id = body["new_id"]
        assert (
            f"as {new_id} at priority 0 (its priority was never seen: Celery's result does "
            "not keep it)." in body["message"]
        ), body
    sent = waiting(sync_redis, STEP_0)
    assert list(sent) == [new_id], sent
    assert sent[new_id][1]["properties"]["priority"] == 0
    assert sync_redis.llen(STEP_6) == 0


# ------------------------------------------------------------------ the record itself


def hold(conn: redis.Redis, priorities: dict[str, object], delivered_s: float) -> None:
    """Seed held messages, as kombu writes them, tagged ``tag-<task id>``."""
    for n, (task_id, priority) in enumerate(priorities.items()):
        value = held_value(task_id, None, properties={"priority": priority})
        conn.hset("unacked", f"tag-{task_id}", value)
        conn.zadd("unacked_index", {f"tag-{task_id}": delivered_s + n})


def records(conn: redis.Redis, prefix: str = "jobbridge:") -> dict[str, bytes]:
    """Every recorded priority by task id (``KEYS`` is fine in the private test database)."""
    head = f"{prefix}celery::priority:"
    return {k.decode()[len(head) :]: conn.get(k) for k in conn.keys(f"{prefix}celery::priority:*")}


async def test_priorities_off_the_default_step_are_recorded_by_the_background_only(
    sync_redis: redis.Redis, redis_client: redis.asyncio.Redis
) -> None:
    priorities: dict[str, object] = {
        "none": None,
        "zero": 0,
        "two": 2,  # step 0 too: a retry at 0 waits in the same list
        "three": 3,
        "seven": 7,
        "nine": 9,
        "huge": 200,  # kombu clamps it to 9
    }
    hold(sync_redis, priorities, 1_700_000_000.0)
    view = UnackedView(redis_client, CeleryKeys())
    # A refresh made for a request sorts but does not write.
    sorted_ = await view.refresh(record=False)
    assert len(sorted_.reserved) == len(priorities)
    assert records(sync_redis) == {}
    # The next background refresh writes what was decoded, without decoding it again.
    await view.refresh()
    assert view.decoded == len(priorities)
    assert records(sync_redis) == {"three": b"3", "seven": b"7", "nine": b"9", "huge": b"9"}
    ttls = {sync_redis.ttl(PRIORITY_KEY.format(task_id)) for task_id in ("three", "huge")}
    assert all(7 * DAY_S < ttl <= PRIORITY_SEEN_TTL_S for ttl in ttls), ttls
    assert view.priority_key("seven") == PRIORITY_KEY.format("seven")


async def test_a_record_redis_refuses_leaves_the_sort_working_and_is_logged_once(
    redis_url: str, sync_redis: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    user, password = "jb-no-set", "pw-0123456789"
    sync_redis.execute_command(
        *shlex.split(f"ACL SETUSER {user} reset on >{password} ~* +@all -set")
    )
    parts = urlsplit(redis_url)
    limited = redis.asyncio.Redis.from_url(
        f"redis://{user}:{password}@{parts.hostname}:{parts.port}{parts.path}"
    )
    try:
        view = UnackedView(limited, CeleryKeys())
        with caplog.at_level(logging.WARNING, logger="jobbridge.adapters.celery.unacked"):
            hold(sync_redis, {"a": 7, "b": 3}, 1_700_000_000.0)
            first = await view.refresh()
            hold(sync_redis, {"c": 9}, 1_700_000_100.0)
            second = await view.refresh()
        assert list(first.reserved) == ["tag-b", "tag-a"]
        assert list(second.reserved) == ["tag-c", "tag-b", "tag-a"]
        assert second.task_ids == {"a", "b", "c"} and second.problem is None
        assert records(sync_redis) == {}
        warnings = [r.getMessage() for r in caplog.records]
        assert len(warnings) == 1, warnings
        assert "priorities of 2 held tasks not recorded" in warnings[0]
    finally:
        await limited.aclose()
        sync_redis.execute_command("ACL", "DELUSER", user)
