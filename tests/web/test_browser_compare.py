"""The overview's comparison in headless Chromium: a header click sorts the table (a plain
link, no script), and the 2-second refresh keeps that order while it updates the numbers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, expect

from jobbridge.dev.autumn_emulator import Autumn
from jobbridge.settings import AuthConfig, ServerConfig, Settings, SourceConfig
from tests.web import seed
from tests.web.conftest import base_url

pytestmark = pytest.mark.browser

QUEUES = ("default", "bulk", "mail")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


async def test_sorting_by_a_column_survives_the_refresh(
    make_client: Any, redis_url: str, page: Page, autumn_emulator: Autumn
) -> None:
    for queue, depth in (("default", 1), ("bulk", 3), ("mail", 2)):
        for n in range(depth):
            seed.enqueue(autumn_emulator, queue=queue, payload={"n": n})
    client = await make_client(
        Settings(
            server=ServerConfig(cache_ttl_s=0.0),
            sources=(
                SourceConfig(name="orders", system="autumn", redis_url=redis_url, queues=QUEUES),
            ),
            auth=AuthConfig(),
        )
    )
    await page.goto(f"{base_url(client)}/admin/jobs")
    queues = page.locator('#overview-counters tr[data-kind="queue"]')
    await expect(page.locator("#compare")).to_be_visible()
    await page.locator('th[data-column="depth"] a').click()
    await page.wait_for_url("**/admin/jobs?sort=depth&dir=desc")
    await expect(queues).to_have_count(3)
    assert [await q.get_attribute("data-queue") for q in await queues.all()] == [
        "bulk",
        "mail",
        "default",
    ]
    # Again: the other way.
    await page.locator('th[data-column="depth"] a').click()
    await page.wait_for_url("**/admin/jobs?sort=depth&dir=asc")
    await expect(page.locator('th[data-column="depth"]')).to_have_attribute(
        "aria-sort", "ascending"
    )
    await page.evaluate("window.__marker = 'same page'")
    # "default" grows past the others; the refreshed table re-sorts in the same order.
    for n in range(5):
        seed.enqueue(autumn_emulator, queue="default", payload={"more": n})
    default_depth = page.locator(
        '#overview-counters tr[data-queue="default"] td[data-cell="depth"]'
    )
    await expect(default_depth).to_have_text("6", timeout=6000)
    assert [await q.get_attribute("data-queue") for q in await queues.all()] == [
        "mail",
        "bulk",
        "default",
    ]
    assert await page.evaluate("window.__marker") == "same page"
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "overview-compare.png"), full_page=True)
