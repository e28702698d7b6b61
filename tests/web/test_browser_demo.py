"""The README's screenshot, and what it promises: ``jobbridge demo`` in headless Chromium.

The overview compares the demo's three systems, draws their charts and redraws them as jobs
finish, and the header's search box finds one checkout request in all three. The test saves
the screenshot under test-artifacts/; with ``JOBBRIDGE_UPDATE_SCREENSHOTS=1`` it also writes
the README's copy, docs/images/overview.png.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from tests.conftest import UPDATE_SCREENSHOTS
from tests.test_demo import Demo, _snapshot_ids, _start, _stop, _wait_for_history, demo_cleanup

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
README_SHOT = ROOT / "docs" / "images" / "overview.png"
#: the demo's sources and their systems (jobbridge/demo)
SOURCES = {"orders": "autumn", "reports": "rq", "emails": "celery"}


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    running = _start(tmp_path)
    with demo_cleanup(running):
        yield running


def _checkout(demo: Demo) -> str:
    """A correlation id that the demo's producer gave to an Autumn, an RQ and a Celery job."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        shared = None
        for source in SOURCES:
            found = _snapshot_ids(demo, source)[2]
            shared = found if shared is None else shared & found
        if shared:
            return sorted(shared)[0]
        time.sleep(1)
    raise AssertionError("no checkout request seen in all three systems within 60 s")


async def test_the_demo_overview_compares_charts_and_searches_three_systems(
    demo: Demo, page: Page
) -> None:
    await asyncio.to_thread(_wait_for_history, demo)
    await page.set_viewport_size({"width": 1400, "height": 1500})
    await page.goto(f"{demo.base}/jobs")
    table = page.locator("table.compare")
    for source in SOURCES:
        await expect(
            table.locator(f'tr[data-kind="source"][data-source="{source}"]')
        ).to_have_count(1)
    charts = page.locator("#overview-charts")
    for source in SOURCES:
        svg = charts.locator(f'figure.chart[data-source="{source}"] svg.chart-svg')
        await expect(svg).to_have_count(1, timeout=15_000)
    # Every system's chart shows finished jobs, and a chart is redrawn as more finish.
    bars = charts.locator("rect.bar-completed")
    await expect(bars.first).to_be_visible(timeout=30_000)
    for source in SOURCES:
        figure = charts.locator(f'figure.chart[data-source="{source}"]')
        await expect(figure.locator("rect.bar-completed, rect.bar-failed").first).to_be_attached(
            timeout=60_000
        )
    label = charts.locator('figure.chart[data-source="orders"] svg.chart-svg')
    before = await label.get_attribute("aria-label")
    await expect(label).not_to_have_attribute("aria-label", before or "", timeout=90_000)

    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "overview-demo.png"), full_page=False)
    if UPDATE_SCREENSHOTS:
        README_SHOT.parent.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(README_SHOT), full_page=False)

    # One request fanned out to all three systems, found from the header on any page.
    correlation = await asyncio.to_thread(_checkout, demo)
    await page.goto(f"{demo.base}/jobs/reports")
    await page.locator("form.search-box input[name=q]").fill(correlation)
    await page.locator("form.search-box button[type=submit]").click()
    await expect(page).to_have_url(f"{demo.base}/search?q={correlation}")
    results = page.locator("table.jobs").first
    for source in SOURCES:
        await expect(results.locator(f'tr[data-source="{source}"]').first).to_be_visible()
    await results.locator('tr[data-source="emails"] a.job-id').first.click()
    await expect(page.locator("h1")).to_be_visible()
    assert "/jobs/emails/" in page.url
    assert _stop(demo) == 0
