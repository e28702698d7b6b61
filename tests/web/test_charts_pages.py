"""Chart fragments on the pages: the overview and the source page include them, the fragment
routes draw one SVG per series with its numbers in words, and hostile names stay text."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

import pytest
import redis.asyncio

from jobbridge.adapters.finished import FinishedJob
from jobbridge.series.store import SeriesStore
from jobbridge.settings import SourceConfig
from tests.web.conftest import make_settings

pytestmark = pytest.mark.redis

HOSTILE = '<img src=x onerror="alert(1)">&'


async def seed_series(url: str, source: str, queue: str) -> None:
    client = redis.asyncio.Redis.from_url(url)
    try:
        store = SeriesStore(client, "jobbridge:", source)
        # The app's follower may hold the lease: take it over for the write.
        await client.delete(store.lease_key)
        await store.hold_lease("test", 60_000)
        now = int(time.time())
        jobs = [
            FinishedJob("a", now * 1000, False, queue),
            FinishedJob("b", now * 1000, True, queue),
        ]
        cursor = await store.cursor()
        counted = await store.write(
            token="test",
            read_from=cursor,
            cursor=cursor or "",
            now_s=now,
            enqueued=4,
            queue_depths=[(queue, 4)],
            jobs=jobs,
        )
        assert counted == 2
    finally:
        await client.aclose()


async def test_pages_include_charts_and_fragments_draw_them(
    make_client: Any, redis_url: str
) -> None:
    extra = (SourceConfig(name=HOSTILE, system="autumn", redis_url=redis_url, key_prefix="h"),)
    client = await make_client(make_settings(redis_url, extra_sources=extra))
    overview = await (await client.get("/admin/jobs")).text()
    assert 'hx-get="/admin/charts"' in overview and 'id="overview-charts"' in overview
    page = await client.get("/admin/jobs/orders")
    assert 'hx-get="/admin/charts/orders"' in await page.text()

    await seed_series(redis_url, HOSTILE, HOSTILE)
    response = await client.get("/admin/charts")
    assert response.status == 200
    body = await response.text()
    assert body.count("<svg") == 2  # one per source
    assert "<img" not in body and "onerror=&#34;" not in body.replace("&#34;alert", "")
    assert "&lt;img src=x onerror=" in body
    assert "1 completed, 1 failed" in body  # the hostile source's hour, in words
    assert 'role="img"' in body and "<title>" in body
    assert "style=" not in body and "<script" not in body  # the CSP forbids both inline

    one = await client.get(f"/admin/charts/{quote(HOSTILE, safe='')}")
    text = await one.text()
    assert one.status == 200 and text.count("<svg") == 2  # last hour and last 24 hours
    assert "last 24 hours" in text and "<img" not in text
    missing = await client.get("/admin/charts/nope")
    assert missing.status == 404

    api = await client.get(
        f"/admin/api/sources/{quote(HOSTILE, safe='')}/series",
        params={"window": "24h", "queue": HOSTILE},
    )
    data = await api.json()
    assert data["queue"] == HOSTILE and data["step_s"] == 900
    assert sum(p["completed"] for p in data["points"]) == 1
    assert (await client.get("/admin/api/sources/orders/series?window=2h")).status == 400
