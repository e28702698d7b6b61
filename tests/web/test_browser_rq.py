"""An RQ source page in headless Chromium: rows made by RQ itself, the workers panel with a
real ``rq worker``, and a cancel through the page's own form that RQ then reports."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import Page, expect

from jobbridge.settings import AuthConfig, ServerConfig, Settings, SourceConfig
from tests.rq import tasks as rq_tasks
from tests.rq.rq_support import (
    WorkerPool,
    enqueue,
    status_of,
    sync_redis,
)
from tests.web.conftest import base_url

pytestmark = pytest.mark.browser


async def test_rq_source_page_shows_rows_workers_and_cancels(
    make_client: Any, redis_url: str, page: Page, rq_workers: WorkerPool
) -> None:
    conn = sync_redis(redis_url)
    jobs = [enqueue(conn, rq_tasks.add, n, 1) for n in range(3)]
    # A live worker on another queue: listed on the page, and it leaves "default" alone.
    worker = rq_workers.start(("elsewhere",))
    worker.wait_registered(conn)
    settings = Settings(
        server=ServerConfig(cache_ttl_s=0.0),
        sources=(SourceConfig(name="work", system="rq", redis_url=redis_url),),
        auth=AuthConfig(),
    )
    client = await make_client(settings)
    await page.goto(f"{base_url(client)}/admin/jobs/work")

    enqueued = page.locator("#list-enqueued")
    for job in jobs:
        await expect(enqueued.locator(f'tr[data-job-id="{job.id}"]')).to_have_count(1)
    # Newest first, each with its place in line (the oldest is taken next).
    rows = enqueued.locator("tbody tr")
    assert await rows.first.get_attribute("data-job-id") == jobs[-1].id
    await expect(page.locator(f'#workers tr[data-worker="{worker.name}"]')).to_contain_text(
        "elsewhere"
    )

    target = jobs[1]
    row = enqueued.locator(f'tr[data-job-id="{target.id}"]')
    await row.locator('button[data-action="cancel"]').click()
    await expect(page.locator(".flash")).to_contain_text(f"Canceled job {target.id}")
    await expect(enqueued.locator(f'tr[data-job-id="{target.id}"]')).to_have_count(0)
    assert status_of(conn, target.id) == "canceled"
    assert conn.lrange("rq:queue:default", 0, -1) == [jobs[0].id.encode(), jobs[2].id.encode()]
    worker.assert_alive()
