"""A Celery source page in headless Chromium, with a real ``celery worker``: waiting messages
newest first, a completed and a failed task (with its Retry and Discard buttons), the Workers
panel naming the live worker with its pool once jobbridge has inspected it, and a cancel
through the page's own form that Celery then reads as REVOKED."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from celery import Celery  # type: ignore[import-untyped]
from playwright.async_api import Page, expect

from examples.celery_app import MAIL_QUEUE
from jobbridge.settings import AuthConfig, ServerConfig, Settings, SourceConfig
from tests.celery.celery_support import (
    CeleryWorkerPool,
    send,
    state_of,
    wait_for_state,
)
from tests.web.conftest import base_url

pytestmark = [pytest.mark.browser, pytest.mark.redis]

#: how long the Workers panel may take to show the pool: the worker watch inspects a new
#: worker at once, then every 10 s (jobbridge/adapters/celery/workers.py)
INSPECTED_WITHIN_S = 35.0


async def reload_until(
    page: Page, ready: Callable[[], Awaitable[bool]], what: str, timeout: float = 15.0
) -> None:
    """Reload the page until ``ready()`` holds (the page is a snapshot of its load time)."""
    deadline = time.monotonic() + timeout
    while not await ready():
        if time.monotonic() > deadline:
            raise AssertionError(f"the page did not show {what} within {timeout}s")
        await page.wait_for_timeout(300)
        await page.reload()


async def test_celery_source_page_shows_rows_workers_and_cancels(
    make_client: Any,
    redis_url: str,
    page: Page,
    celery_app: Celery,
    celery_workers: CeleryWorkerPool,
    sync_redis,
) -> None:
    settings = Settings(
        server=ServerConfig(cache_ttl_s=0.0),
        sources=(SourceConfig(name="work", system="celery", redis_url=redis_url),),
        auth=AuthConfig(),
    )
    client = await make_client(settings)
    # A live worker on "celery" only: it runs these two, and leaves the mail queue waiting.
    worker = celery_workers.start(("celery",), pool="prefork", concurrency=2)
    # Only ids are kept: an AsyncResult collected after the test (a reference cycle through
    # a frame) would unsubscribe from a Redis that is gone.
    done = send(celery_app, "add", 2, 3).id
    failed = send(celery_app, "fail", "browser boom").id
    mails = [send(celery_app, "send_email", f"u{n}@example.com").id for n in range(3)]
    wait_for_state(celery_app, done, "SUCCESS", workers=celery_workers)
    wait_for_state(celery_app, failed, "FAILURE", workers=celery_workers)

    await page.goto(f"{base_url(client)}/admin/jobs/work")
    enqueued = page.locator("#list-enqueued")

    async def listed() -> list[str | None]:
        return [
            await r.get_attribute("data-job-id") for r in await enqueued.locator("tbody tr").all()
        ]

    async def all_waiting() -> bool:
        # the mail queue shows once discovery has read its binding (a background SCAN)
        return len(await listed()) == len(mails)

    await reload_until(page, all_waiting, "the waiting mails")
    # Newest first: the last one sent heads the list.
    ids = await listed()
    assert ids == mails[::-1], ids
    await expect(enqueued.locator(f'tr[data-job-id="{mails[0]}"]')).to_contain_text(MAIL_QUEUE)

    completed = page.locator(f'#list-completed tr[data-job-id="{done}"]')
    failed_row = page.locator(f'#list-failed tr[data-job-id="{failed}"]')

    async def finished_rows() -> bool:
        return await completed.count() == 1 and await failed_row.count() == 1

    await reload_until(page, finished_rows, "the completed and failed tasks")
    await expect(failed_row).to_contain_text("browser boom")
    await page.locator("#tab-failed").click()  # each list is a tab
    await expect(failed_row.locator('button[data-action="retry"]')).to_be_visible()
    # Celery's discard only hides the task from jobbridge: a confirmation step says so.
    await expect(failed_row.locator('summary[data-action="discard"]')).to_have_text(
        "Hide from jobbridge\u2026"
    )
    await expect(completed.locator("button")).to_have_count(0)

    panel = page.locator(f'#workers tr[data-worker="{worker.hostname}"]')

    async def inspected() -> bool:
        # the panel shows "<pool> \u00d7 <concurrency>" (a multiplication sign)
        shown = await panel.inner_text() if await panel.count() == 1 else ""
        return "prefork \u00d7 2" in shown

    await reload_until(page, inspected, "the worker's pool", INSPECTED_WITHIN_S)
    await expect(panel).to_contain_text("celery")
    await expect(panel).not_to_contain_text(MAIL_QUEUE)

    # Cancel the middle mail through the page's own form.
    target = mails[1]
    await page.locator("#tab-enqueued").click()
    row = page.locator(f'#list-enqueued tr[data-job-id="{target}"]')
    await row.locator('button[data-action="cancel"]').click()
    await expect(page.locator(".flash")).to_contain_text(f"Canceled job {target}")
    await expect(page.locator(f'#list-enqueued tr[data-job-id="{target}"]')).to_have_count(0)
    assert state_of(celery_app, target) == "REVOKED"
    # Exactly that message left the mail queue; the others still wait, in order.
    waiting = [json.loads(raw)["headers"]["id"] for raw in sync_redis.lrange(MAIL_QUEUE, 0, -1)]
    assert waiting == [mails[2], mails[0]]
    worker.assert_alive()
