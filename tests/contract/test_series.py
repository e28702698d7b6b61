"""Chart series, for every registered system (issue 17): after a known number of jobs
completes and fails, the series show them in the minutes they finished; the series are
bounded, shared by a replica started later, survive a restart of jobbridge, and only one
replica writes them.

Systems without a finished-job feed (``FollowsFinished``: the toy plugin) say so in their
capabilities, and their series still sample the queue depth.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote

import pytest
import redis.asyncio
from aiohttp.test_utils import TestClient, TestServer

from jobbridge.settings import AuthConfig, ServerConfig, Settings
from jobbridge.web.app import create_app
from tests.contract.conftest import OPERATOR_TOKEN, PREFIX, SOURCE, token
from tests.contract.harness import State, SystemHarness
from tests.contract.test_contract import eventually

pytestmark = pytest.mark.redis

COMPLETED, FAILED = 3, 2


@asynccontextmanager
async def app_of(harness: SystemHarness) -> AsyncIterator[TestClient]:  # type: ignore[type-arg]
    """One jobbridge app (a replica) on the harness's Redis, with its background work."""
    settings = Settings(
        server=ServerConfig(prefix=PREFIX, cache_ttl_s=0.0),
        sources=(harness.source(SOURCE),),
        auth=AuthConfig(
            tokens=(token("series-ops", "operator", OPERATOR_TOKEN),),
            session_secret="series-test-session-secret-0123456789",
        ),
    )
    client = TestClient(TestServer(create_app(settings)))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()


async def get(client: TestClient, path: str) -> tuple[int, Any]:  # type: ignore[type-arg]
    response = await client.get(
        f"{PREFIX}{path}", headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"}
    )
    return response.status, await response.json()


async def series(client: TestClient, window: str = "1h") -> dict[str, Any]:  # type: ignore[type-arg]
    status, body = await get(client, f"/api/sources/{SOURCE}/series?window={window}")
    assert status == 200, body
    return body  # type: ignore[no-any-return]


async def follows_finished(client: TestClient) -> bool:  # type: ignore[type-arg]
    status, body = await get(client, "/api/sources")
    assert status == 200
    (source,) = body["sources"]
    return "finished_series" in source["capabilities"]


def totals(body: dict[str, Any]) -> tuple[int, int]:
    return (
        sum(p["completed"] for p in body["points"]),
        sum(p["failed"] for p in body["points"]),
    )


def minute(iso: str) -> int:
    return int(time.mktime(time.strptime(iso, "%Y-%m-%dT%H:%M:%SZ")) - time.timezone)


async def seed_finished(harness: SystemHarness) -> tuple[float, float]:
    """Seed the known jobs; the span of time their finish times lie in."""
    before = time.time()
    # On this thread: a harness may run the system's worker in-process (RQ's needs signals).
    harness.seed({State.COMPLETED: COMPLETED, State.FAILED: FAILED})
    return before, time.time()


async def test_series_count_finished_jobs_in_their_minutes(harness: SystemHarness) -> None:
    async with app_of(harness) as client:
        if not await follows_finished(client):
            await assert_depth_only(client, harness)
            return
        before, after = await seed_finished(harness)

        async def counted() -> dict[str, Any]:
            body = await series(client)
            assert totals(body) == (COMPLETED, FAILED)
            return body

        hour = await eventually(counted, timeout=20)
        assert hour["window"] == "1h" and hour["step_s"] == 60
        assert len(hour["points"]) == 60  # bounded: one window of steps
        assert hour["since"] is not None
        first, last = int(before) // 60 * 60, int(after) // 60 * 60
        for point in hour["points"]:
            if point["completed"] or point["failed"]:
                assert first <= minute(point["at"]) <= last, point
        day = await series(client, "24h")
        assert day["step_s"] == 900 and len(day["points"]) == 96
        assert totals(day) == (COMPLETED, FAILED)
        # Depth is sampled each step: the newest steps hold a number.
        assert any(p["enqueued"] is not None for p in hour["points"][-2:])
        # Per queue (what the comparison reads): the queues' series add up to the source's.
        await assert_queues_add_up(client)


async def assert_queues_add_up(client: TestClient) -> None:  # type: ignore[type-arg]
    status, body = await get(client, f"/api/sources/{SOURCE}/snapshot?per_page=1")
    assert status == 200
    queues = [q["name"] for q in body["counters"]["queues"]]
    status, finished = await get(client, f"/api/sources/{SOURCE}/snapshot?per_page=100")
    for state in ("completed", "failed"):
        queues += [j["queue"] for j in finished["lists"][state]["items"] if j["queue"]]
    summed = [0, 0]
    for queue in sorted(set(queues)):
        status, one = await get(
            client, f"/api/sources/{SOURCE}/series?window=1h&queue={quote(queue, safe='')}"
        )
        assert status == 200 and one["queue"] == queue
        c, f = totals(one)
        summed[0] += c
        summed[1] += f
    assert tuple(summed) == (COMPLETED, FAILED), queues


async def assert_depth_only(client: TestClient, harness: SystemHarness) -> None:  # type: ignore[type-arg]
    """A system without a finished-job feed: zeros, but the queue depth is sampled."""
    harness.seed({State.ENQUEUED: 2})

    async def sampled() -> dict[str, Any]:
        body = await series(client)
        assert body["points"][-1]["enqueued"] == 2 or body["points"][-2]["enqueued"] == 2
        return body

    body = await eventually(sampled)
    assert totals(body) == (0, 0)


async def test_series_shared_by_a_later_replica_and_survive_a_restart(
    harness: SystemHarness,
) -> None:
    async with app_of(harness) as first:
        if not await follows_finished(first):
            return  # covered by the depth-only assertions above
        await seed_finished(harness)

        async def counted() -> dict[str, Any]:
            body = await series(first)
            assert totals(body) == (COMPLETED, FAILED)
            return body

        seen = await eventually(counted, timeout=20)
        async with app_of(harness) as replica:
            # Both run followers now; only the lease holder writes, each job counts once.
            await asyncio.sleep(2.5)
            again = await series(replica)
            assert totals(again) == (COMPLETED, FAILED)
            assert again["since"] == seen["since"]
            lease = await lease_holders(harness)
            assert lease == 1
    # A restart: a new app on the same Redis shows the same series (nothing re-counted).
    async with app_of(harness) as restarted:
        await asyncio.sleep(2.5)
        body = await series(restarted)
        assert totals(body) == (COMPLETED, FAILED)
        assert body["since"] == seen["since"]


async def lease_holders(harness: SystemHarness) -> int:
    """Lease keys of the source's series held now (by exactly one replica's token)."""
    config = harness.source(SOURCE)
    client = redis.asyncio.Redis.from_url(config.redis_url)
    try:
        key = f"{config.jobbridge_prefix}series:{SOURCE}:lease"
        return 1 if await client.get(key) else 0
    finally:
        await client.aclose()
