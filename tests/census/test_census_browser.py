"""The census card in headless Chromium: "Count by name" on an RQ source page starts a census
through htmx (no reload), its progress is polled, and the counts replace it; no CSP
violation or script error on the way, and a hostile queue name stays text."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import Page, expect

from jobbridge.settings import AuthConfig, ServerConfig, Settings, SourceConfig
from tests.census.seed import seed_rq_queue
from tests.census.test_census_web import wait_listed
from tests.web.conftest import base_url

pytestmark = pytest.mark.browser

HOSTILE = '<img src=x onerror=alert(1)>"q'


async def test_count_by_name_from_the_source_page(
    make_client: Any, redis_url: str, sync_redis: Any, page: Page
) -> None:
    seed_rq_queue(sync_redis, 20_000, queue=HOSTILE)
    settings = Settings(
        server=ServerConfig(cache_ttl_s=0.0),
        sources=(SourceConfig(name="work", system="rq", redis_url=redis_url),),
        auth=AuthConfig(),
    )
    client = await make_client(settings)
    await wait_listed(client, HOSTILE, source="work")
    await page.goto(f"{base_url(client)}/admin/jobs/work")
    card = page.locator("#census")
    queue = card.locator(".census-queue")
    await expect(queue.locator("strong.queue")).to_have_text(HOSTILE)
    await expect(queue).to_have_attribute("data-state", "none")
    url_before = page.url
    await queue.locator('button[data-action="census"]').click()
    await expect(card.locator(".census-queue")).to_have_attribute(
        "data-state", "done", timeout=30_000
    )
    names = card.locator("table.census-names tbody tr")
    await expect(names.first).to_contain_text("app.tasks.send_email")
    await expect(names.first.locator("td.num")).to_have_text("10000")
    await expect(card).to_contain_text("20000 jobs counted of 20000 waiting at the start")
    await expect(card.locator('button[data-action="census"]')).to_have_text("Count again")
    assert page.url == url_before  # swapped in place by htmx, no reload
