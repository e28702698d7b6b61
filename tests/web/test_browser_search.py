"""A search from the page header in headless Chromium: typed into the box of the overview,
it opens the results of every source, and a result opens its job page. A hostile name stays
text (the ``page`` fixture fails on any script error or alert)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from playwright.async_api import Page, expect

from jobbridge.settings import ServerConfig, Settings
from tests.autumn.harness import AutumnHarness
from tests.contract.harness import State
from tests.rq.harness import RqHarness
from tests.web.conftest import base_url

pytestmark = pytest.mark.browser


async def test_a_search_from_the_header_finds_jobs_of_two_systems(
    make_client: Any, redis_url: str, page: Page
) -> None:
    autumn, rq = AutumnHarness(redis_url), RqHarness(redis_url)
    try:
        correlation = f"req-{uuid.uuid4().hex}"
        (autumn_id,) = autumn.seed_tagged(
            State.FAILED, 1, correlation_id=correlation, principal_id="u"
        )
        (rq_id,) = rq.seed_tagged(State.ENQUEUED, 1, correlation_id=correlation, principal_id="u")
        autumn.autumn.enqueue('<img src=x onerror="alert(1)">', {"correlation_id": correlation})
        settings = Settings(
            server=ServerConfig(cache_ttl_s=0.0),
            sources=(autumn.source("orders"), rq.source("mail")),
        )
        client = await make_client(settings)
        await page.goto(f"{base_url(client)}/admin/jobs")
        box = page.locator("form.search-box input[name=q]")
        await box.fill(correlation)
        await box.press("Enter")

        results = page.locator("#search-results")
        await expect(results.locator("tbody tr")).to_have_count(3)
        await expect(results.locator(f'tr[data-job-id="{rq_id}"]')).to_contain_text("mail")
        await expect(results).to_contain_text('<img src=x onerror="alert(1)">')
        await expect(page.locator("#search-covered")).to_contain_text("orders")

        await results.locator(f'tr[data-job-id="{autumn_id}"] a.job-id').click()
        await expect(page).to_have_url(f"{base_url(client)}/admin/jobs/orders/{autumn_id}")
    finally:
        autumn.close()
        rq.close()
