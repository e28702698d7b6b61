"""The dashboard in headless Chromium (Debian's, driven by Playwright): htmx under the strict
CSP, live counters, the error <details>, Retry with its flash, XSS as text, CSRF refusal.

A browser test that cannot find Chromium fails rather than skips (see scripts/install-chromium).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, expect

from jobbridge.dev.autumn_emulator import Autumn
from tests.web import seed
from tests.web.conftest import base_url

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
XSS_ERROR = "<script>window.__xss = 1</script>"
XSS_PAYLOAD = "<img src=x onerror=window.__xss=2>"


async def test_dashboard_loads_and_counters_update_without_reload(
    client: Any, page: Page, autumn_emulator: Autumn
) -> None:
    seed.mix(autumn_emulator)
    seed.stuck(autumn_emulator, queue="reports")  # its own queue: no other job is claimed first
    counter_requests: list[str] = []
    page.on("request", lambda r: counter_requests.append(r.url) if "/counters" in r.url else None)
    await page.goto(f"{base_url(client)}/admin/jobs/orders")
    await expect(page.locator("h1")).to_contain_text("orders")
    enqueued = page.locator('#jobs-counters [data-counter="enqueued"]')
    await expect(enqueued).to_have_text("1")
    await page.locator("#tab-running").click()  # each list is a tab
    await expect(page.locator('[data-list="running"] .badge-overdue')).to_be_visible()
    await expect(page.locator('[data-counter="running_overdue"]')).to_have_text("1 overdue")
    await page.evaluate("window.__marker = 'same page'")
    seed.enqueue(autumn_emulator)
    seed.enqueue(autumn_emulator)
    await expect(enqueued).to_have_text("3", timeout=6000)
    assert await page.evaluate("window.__marker") == "same page"  # no reload happened
    # Polling is every 2 s, not a request storm after each swap.
    before = len(counter_requests)
    await asyncio.sleep(2.5)
    assert len(counter_requests) - before <= 3
    await page.reload()
    await expect(page.locator('[data-list="enqueued"] .total')).to_have_text("3 total")
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
    await page.emulate_media(color_scheme="dark")
    await page.screenshot(path=str(ARTIFACTS / "dashboard-dark.png"), full_page=True)


async def test_failed_error_expands_in_place(
    client: Any, page: Page, autumn_emulator: Autumn
) -> None:
    message = "Traceback (most recent call last): " + "frame " * 30 + "ValueError: the end"
    seed.fail(autumn_emulator, message)
    await page.goto(f"{base_url(client)}/admin/jobs/orders")
    details = page.locator('[data-list="failed"] details.error')
    full = details.locator("pre")
    await expect(full).to_be_hidden()
    await details.locator("summary").click()
    await expect(full).to_be_visible()
    await expect(full).to_contain_text("ValueError: the end")
    assert page.url.endswith("/admin/jobs/orders")


async def test_retry_shows_flash_and_row_leaves_failed_list(
    client: Any, page: Page, autumn_emulator: Autumn
) -> None:
    job_id = seed.fail(autumn_emulator)
    await page.goto(f"{base_url(client)}/admin/jobs/orders")
    failed = page.locator('[data-list="failed"]')
    await expect(failed.locator(f'tr[data-job-id="{job_id}"]')).to_have_count(1)
    await failed.locator(f'tr[data-job-id="{job_id}"] button[data-action="retry"]').click()
    await expect(page.locator(".flash-ok")).to_contain_text(f"Retried job {job_id} as ")
    await expect(failed.locator(f'tr[data-job-id="{job_id}"]')).to_have_count(0)
    await expect(page.locator('[data-list="enqueued"] tbody tr.row-enqueued')).to_have_count(1)
    assert autumn_emulator.dead_raw() == []


async def test_xss_payloads_render_as_text(
    client: Any, page: Page, autumn_emulator: Autumn
) -> None:
    job_id = seed.fail(autumn_emulator, XSS_ERROR, note=XSS_PAYLOAD, principal_id=XSS_PAYLOAD)
    for path in ("/admin/jobs/orders", f"/admin/jobs/orders/{job_id}", "/admin/jobs"):
        await page.goto(f"{base_url(client)}{path}")
        await expect(page.locator("body")).to_contain_text(XSS_ERROR[:20])
        assert await page.evaluate("window.__xss") is None
        assert await page.locator("img").count() == 0
    await expect(page.locator("body")).to_contain_text("window.__xss")


async def test_form_post_without_csrf_token_is_refused(
    client: Any, page: Page, autumn_emulator: Autumn, problems: list[str]
) -> None:
    job_id = seed.fail(autumn_emulator)
    await page.goto(f"{base_url(client)}/admin/jobs/orders")
    form = page.locator(f'tr[data-job-id="{job_id}"] form:has(button[data-action="discard"])')
    await form.locator('input[name="_csrf"]').evaluate("input => input.remove()")
    await form.locator("button").click()
    await expect(page.locator("h1")).to_contain_text("403")
    await expect(page.locator("body")).to_contain_text("security token")
    assert len(autumn_emulator.dead_raw()) == 1
    # The refused POST is the one expected console error.
    assert problems == [
        "Failed to load resource: the server responded with a status of 403 (Forbidden)"
    ]
    problems.clear()


async def test_find_a_job_by_pasting_its_id(
    client: Any, page: Page, autumn_emulator: Autumn
) -> None:
    job = seed.fail(autumn_emulator, "the one we are looking for")
    await page.goto(f"{base_url(client)}/admin/jobs/orders")
    await page.locator("#find-job-id").fill(f"  {job} ")
    await page.locator("#find-job-id").press("Enter")
    await expect(page.locator("h1")).to_contain_text("always_fail")
    await expect(page.locator("pre.error-full")).to_contain_text("the one we are looking for")
