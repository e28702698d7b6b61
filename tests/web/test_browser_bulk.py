"""A bulk retry in headless Chromium (issue 19): filter the failed list, ask for every match,
read the dry run, confirm the count, watch the progress bar finish without a reload, read the
summary. No script error or CSP violation on the way (the ``page`` fixture)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, expect

from jobbridge.dev.autumn_emulator import Autumn
from tests.web import seed
from tests.web.conftest import base_url, make_settings

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


async def test_filter_dry_run_confirm_progress_summary(
    make_client: Any, redis_url: str, autumn_emulator: Autumn, page: Page
) -> None:
    for _ in range(40):
        seed.fail(autumn_emulator, "ConnectionError: refused")
    for _ in range(5):
        seed.fail(autumn_emulator, "ValueError: bad input")
    client = await make_client(make_settings(redis_url, poll_interval_s=0.5))
    root = base_url(client)
    await page.goto(f"{root}/admin/jobs/orders?tab=failed")

    form = page.locator('form[data-filter-list="failed"]')
    await form.locator('input[name="failed_error_contains"]').fill("ConnectionError")
    await form.locator('[data-filter-apply="failed"]').click()
    await expect(page).to_have_url(re.compile(r"failed_error_contains=ConnectionError"))
    section = page.locator("#list-failed")
    await expect(section.locator(".filter-looked")).to_have_text("40 of 45 failed jobs match.")
    # ticking a row holds the live refresh (it would untick it)
    first = section.locator("input[data-bulk-tick]").first
    await first.check()
    await expect(page.locator("#live-note")).to_contain_text("Paused")
    await first.uncheck()

    ARTIFACTS.mkdir(exist_ok=True)
    await section.screenshot(path=str(ARTIFACTS / "bulk-filtered-list.png"))
    await section.locator('[data-bulk="retry-matches"]').click()
    run = page.locator("#bulk-run")
    await expect(run).to_have_attribute("data-bulk-state", "matched")
    await expect(page.locator("[data-bulk-count]")).to_have_text("40")
    await expect(page.locator("[data-bulk-plan]")).to_contain_text("Retry 40 failed jobs")
    await expect(page.locator("[data-bulk-filter]")).to_have_text("error~ConnectionError")
    assert len(autumn_emulator.dead_raw()) == 45  # the dry run changed nothing

    url = page.url
    await page.locator("[data-bulk-confirm]").click()
    # the progress fragment polls in place until the run is done: no reload
    await page.evaluate("window.__bulkMarker = 1")
    await expect(run).to_have_attribute("data-bulk-state", "done", timeout=30_000)
    assert await page.evaluate("window.__bulkMarker") == 1
    assert page.url == url
    bar = page.locator("[data-bulk-progress]")
    await expect(bar).to_have_attribute("value", "40")
    await expect(bar).to_have_attribute("max", "40")
    await expect(page.locator('[data-outcome="done"]')).to_contain_text("40")
    await page.screenshot(path=str(ARTIFACTS / "bulk-retry.png"), full_page=True)

    await page.get_by_role("link", name="Back to the failed list").click()
    await expect(page.locator("#tab-failed")).to_have_attribute("aria-selected", "true")
