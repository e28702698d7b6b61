"""The workers card of an RQ source page in headless Chromium, with real ``rq worker``s: a busy
and an idle worker, and per queue its consumers and how many are busy; screenshots at desktop
and phone width (test-artifacts/workers-*.png)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, expect

from jobbridge.settings import AuthConfig, ServerConfig, Settings, SourceConfig
from tests.rq import tasks as rq_tasks
from tests.rq.rq_support import WorkerPool, enqueue, status_of, sync_redis, wait_for
from tests.web.conftest import base_url

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


async def test_workers_card_counts_consumers_and_busy_per_queue(
    make_client: Any, redis_url: str, page: Page, rq_workers: WorkerPool
) -> None:
    conn = sync_redis(redis_url)
    busy = rq_workers.start(("default", "high"))
    idle = rq_workers.start(("high",))
    busy.wait_registered(conn)
    idle.wait_registered(conn)
    job = enqueue(conn, rq_tasks.sleep, 60)
    wait_for(lambda: status_of(conn, job.id) == "started", "the job to start", 30)
    settings = Settings(
        server=ServerConfig(cache_ttl_s=0.0),
        sources=(SourceConfig(name="work", system="rq", redis_url=redis_url),),
        auth=AuthConfig(),
    )
    client = await make_client(settings)
    await page.goto(f"{base_url(client)}/admin/jobs/work")

    card = page.locator("#workers")
    await expect(card.locator(".card-head .total")).to_have_text("2 registered · 1 busy")
    busy_row = card.locator(f'tr[data-worker="{busy.name}"]')
    await expect(busy_row).to_have_attribute("data-busy", "busy")
    await expect(busy_row.locator(".worker-current")).to_contain_text(job.id)
    await expect(busy_row.locator('[data-count="heartbeat"]')).to_contain_text(" ago")
    await expect(card.locator(f'tr[data-worker="{idle.name}"]')).to_have_attribute(
        "data-busy", "idle"
    )
    for queue, expected in (("default", ("1", "1", "0")), ("high", ("2", "1", "1"))):
        row = card.locator(f'table.queue-workers tr[data-queue="{queue}"]')
        shown = [
            await row.locator(f'[data-count="{c}"]').inner_text()
            for c in ("workers", "busy", "idle")
        ]
        assert tuple(shown) == expected, (queue, shown)
    ARTIFACTS.mkdir(exist_ok=True)
    await card.screenshot(path=str(ARTIFACTS / "workers-rq-desktop.png"))
    await page.set_viewport_size({"width": 390, "height": 844})
    await card.screenshot(path=str(ARTIFACTS / "workers-rq-phone.png"))
    busy.assert_alive()
    idle.assert_alive()
