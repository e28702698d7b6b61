"""An RQ source page in headless Chromium with RQ's own columns (issue 18): a job blocked on
its dependency says what it waits for, a Retry(max=3) job its retries, finished rows their
call, runtime and worker; no Principal column. Screenshot: test-artifacts/rq-columns.png."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, expect
from rq import Retry

from jobbridge.settings import AuthConfig, ServerConfig, Settings, SourceConfig
from tests.rq import tasks as rq_tasks
from tests.rq.rq_support import WorkerPool, enqueue, sync_redis
from tests.web.conftest import base_url

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


async def test_rq_page_has_rqs_columns(
    make_client: Any, redis_url: str, page: Page, rq_workers: WorkerPool
) -> None:
    conn = sync_redis(redis_url)
    done = enqueue(conn, rq_tasks.sleep_then, 0.2, "ok")
    enqueue(conn, rq_tasks.fail, "kaput")
    retried = enqueue(conn, rq_tasks.fail, "again", retry=Retry(max=3, interval=600))
    rq_workers.run_burst(["default"])
    parent = enqueue(conn, rq_tasks.add, 1, queue="slow")
    child = enqueue(conn, rq_tasks.add, 2, depends_on=parent)
    enqueue(conn, rq_tasks.add, 3, b=4)
    settings = Settings(
        server=ServerConfig(cache_ttl_s=0.0),
        sources=(
            SourceConfig(name="work", system="rq", redis_url=redis_url, queues=("default", "slow")),
        ),
        auth=AuthConfig(),
    )
    client = await make_client(settings)
    await page.set_viewport_size({"width": 1400, "height": 900})
    await page.goto(f"{base_url(client)}/admin/jobs/work")

    scheduled = page.locator("#list-scheduled")
    blocked = scheduled.locator(f'tr[data-job-id="{child.id}"]')
    await expect(blocked).to_contain_text(f"waits for {parent.id}")
    await expect(blocked.locator(".badge")).to_have_text("blocked")
    await expect(scheduled.locator(f'tr[data-job-id="{retried.id}"]')).to_contain_text(
        "2 retries left"
    )
    completed = page.locator("#list-completed")
    row = completed.locator(f'tr[data-job-id="{done.id}"]')
    await expect(row.locator(".call code")).to_contain_text("tests.rq.tasks.sleep_then(0.2, 'ok')")
    await expect(row.locator("td.duration").first).to_contain_text(" ms")
    await expect(page.locator('[data-counter="blocked"]')).to_have_text("1")
    await expect(page.locator("th", has_text="Principal")).to_have_count(0)
    await expect(page.locator("#list-enqueued th", has_text="Finished At")).to_have_count(0)
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "rq-columns.png"), full_page=True)
