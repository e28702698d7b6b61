"""Class 6 of issue 15: bounded by bytes, not entries.

25,000 ``task-received`` events whose every field is 200 astral characters (4 bytes each as
Python holds them) once grew the process by 100 MB: the feed remembered 20,000 of them. It
now keeps at most ``REMEMBERED_BYTES``. And a registry member of a megabyte was printed
whole in a row's attributes and link (twice per row, on every list it is in): a page shows
at most a capped id, and the job page the whole one.
"""

from __future__ import annotations

import gc
import time
import tracemalloc
from collections.abc import AsyncIterator

import pytest
import redis
from aiohttp.test_utils import TestClient, TestServer

from jobbridge.adapters.celery.task_events import REMEMBERED_BYTES, TaskEventFeed
from jobbridge.dev.autumn_emulator import Autumn
from jobbridge.settings import ServerConfig, Settings, SourceConfig
from jobbridge.web import responses
from jobbridge.web.app import create_app
from tests.celery.celery_unacked_seed import event_message

pytestmark = pytest.mark.redis

ASTRAL = "\U0001f600" * 200
EVENTS = 25_000
#: events per message, as a prefork worker batches them on task.multi (under the 1 MiB cap)
PER_MESSAGE = 25


def received(n: int) -> dict[str, object]:
    return {
        "type": "task-received",
        "uuid": f"{n:06d}{ASTRAL[:194]}",
        "timestamp": 1_780_000_000.0,
        "hostname": ASTRAL,
        "name": ASTRAL,
        "args": f"({ASTRAL})",
        "kwargs": f"{{{ASTRAL}}}",
        "root_id": ASTRAL,
        "parent_id": ASTRAL,
        "queue": ASTRAL,
        "retries": 0,
    }


@pytest.mark.slow
def test_remembered_task_descriptions_are_bounded_by_bytes() -> None:
    feed = TaskEventFeed(None, None, global_keyprefix="", db=0, source="bytes")  # type: ignore[arg-type]
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for start in range(0, EVENTS, PER_MESSAGE):
            batch = [received(n) for n in range(start, start + PER_MESSAGE)]
            assert feed.read(event_message(batch)) == []  # describing events write nothing
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert feed.events == EVENTS
    assert 0 < feed.remembered_bytes <= REMEMBERED_BYTES
    # Unbounded by bytes this was ~109 MB; the budget is 8 MiB, so allow it and some slack.
    assert grown < REMEMBERED_BYTES + 4 * 1024 * 1024, grown
    # The newest are the ones kept, and each is described with its fields cut.
    newest = feed._described[received(EVENTS - 1)["uuid"]]  # type: ignore[index]
    assert newest.name is not None and len(newest.name) <= 201


def test_forgotten_and_finished_tasks_give_their_bytes_back() -> None:
    feed = TaskEventFeed(None, None, global_keyprefix="", db=0, source="bytes")  # type: ignore[arg-type]
    feed.read(event_message([received(n) for n in range(10)]))
    held = feed.remembered_bytes
    assert held > 0
    done = [
        {"type": "task-succeeded", "uuid": received(n)["uuid"], "timestamp": 1_780_000_001.0}
        for n in range(10)
    ]
    assert len(feed.read(event_message(done))) == 10
    assert feed.remembered_bytes == 0 and not feed._described


# ------------------------------------------------------------------------------- pages

BIG = "J" * 1_000_000


@pytest.fixture
async def web(redis_url: str) -> AsyncIterator[TestClient]:
    settings = Settings(
        server=ServerConfig(cache_ttl_s=0.0),
        sources=(
            SourceConfig(name="orders", system="autumn", redis_url=redis_url, queues=("default",)),
            SourceConfig(name="work", system="rq", redis_url=redis_url, queues=("default",)),
        ),
    )
    client = TestClient(TestServer(create_app(settings)))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()


async def test_a_megabyte_member_makes_a_small_page(
    web: TestClient, sync_redis: redis.Redis
) -> None:
    now = time.time()
    sync_redis.sadd("rq:queues", "rq:queue:default")
    for registry in ("failed", "finished", "wip", "scheduled", "canceled", "deferred"):
        sync_redis.zadd(f"rq:{registry}:default", {BIG: now + 100})
    sync_redis.rpush("rq:queue:default", BIG)
    sync_redis.rpush("autumn:jobs:queue:default", BIG)
    sync_redis.zadd("autumn:jobs:delayed", {BIG: int(now * 1000)})
    sync_redis.lpush("autumn:jobs:dead", '{"id": "' + BIG + '", "error": "x", "raw_payload": "{"}')
    for path in ("/admin/jobs", "/admin/jobs/orders", "/admin/jobs/work"):
        response = await web.get(path)
        assert response.status == 200, path
        html = await response.text()
        assert BIG[:1001] not in html, path  # no copy longer than the attribute cap
        assert len(html) < 100_000, (path, len(html))
    rows = await (await web.get("/admin/jobs/work")).text()
    assert rows.count('data-job-id="' + "J" * 1000 + '…"') == 7  # every list shows the row
    assert "too long to link" in rows


async def test_the_job_page_shows_the_whole_id(web: TestClient, autumn_emulator: Autumn) -> None:
    # As long an id as the job route takes (class 1 lifts its 200 limit): the job page
    # shows it whole, however long, where tables cut it.
    length = min(3000, getattr(responses, "MAX_PARAM_CHARS", 3000))
    long_id = autumn_emulator.enqueue("noop", {}, job_id="L" * length)
    page = await web.get(f"/admin/jobs/orders/job?id={long_id}")
    assert page.status == 200
    assert f"<code>{long_id}</code>" in await page.text()
    rows = await (await web.get("/admin/jobs/orders")).text()
    shown = long_id if length <= 200 else "L" * 199 + "…"
    assert f"<code>{shown}</code>" in rows
