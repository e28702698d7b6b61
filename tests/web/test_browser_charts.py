"""The charts in headless Chromium: drawn on the overview and the source page under the
strict CSP (no console error, no CSP violation), and updated by polling as jobs finish."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, expect

from jobbridge.dev.autumn_emulator import Autumn
from tests.web import seed
from tests.web.conftest import base_url

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


async def test_charts_draw_and_update_as_jobs_finish(
    client: Any, page: Page, autumn_emulator: Autumn
) -> None:
    mix = seed.mix(autumn_emulator)
    assert mix.failed
    await page.goto(f"{base_url(client)}/admin/jobs")
    chart = page.locator('#overview-charts figure[data-source="orders"] svg')
    await expect(chart).to_be_visible(timeout=6000)
    caption = page.locator('#overview-charts figure[data-source="orders"] figcaption')
    # The mix's jobs are counted by the first follower steps (one of them failed).
    await expect(caption).to_contain_text("1 failed", timeout=8000)
    label = await chart.get_attribute("aria-label")
    assert label is not None and "orders, last hour:" in label
    completed = int(label.split(": ")[1].split(" completed")[0])
    # More jobs finish: the chart's numbers change without a reload.
    await page.evaluate("window.__marker = 'same page'")
    for _ in range(3):
        seed.complete(autumn_emulator)
    await expect(caption).to_contain_text(f"{completed + 3} completed", timeout=8000)
    assert await page.evaluate("window.__marker") == "same page"
    assert await page.locator("#overview-charts rect.bar-completed").count() >= 1
    # The source page draws both windows.
    await page.goto(f"{base_url(client)}/admin/jobs/orders")
    await expect(page.locator("#source-charts svg")).to_have_count(2, timeout=6000)
    await expect(page.locator("#source-charts")).to_contain_text("last 24 hours")
    ARTIFACTS.mkdir(exist_ok=True)
    await page.locator("#source-charts").screenshot(path=str(ARTIFACTS / "charts.png"))
