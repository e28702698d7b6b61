"""Pages that stay open, in headless Chromium: each list its own tab (mouse, keyboard, and
plain links without JavaScript), the visible list refreshing live (and holding still while the
reader works in it), the dark colour scheme, relative times, and a 390-pixel phone where the
overview is cards and nothing scrolls sideways unannounced.

Screenshots go to test-artifacts/ (CI keeps them).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from celery import Celery  # type: ignore[import-untyped]
from playwright.async_api import Browser, Page, expect

from jobbridge.dev.autumn_emulator import Autumn
from jobbridge.settings import SourceConfig
from tests.celery.celery_support import CeleryWorkerPool, send, wait_for_state
from tests.rq import tasks as rq_tasks
from tests.rq.rq_support import WorkerPool, enqueue, make_failed, sync_redis
from tests.web import seed
from tests.web.conftest import base_url, make_settings

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
PHONE = {"width": 390, "height": 844}
#: a poll quicker than the default 2 s, so the live tests wait less
POLL_S = 1.0
#: every horizontally scrolling element of the page, and how it announces itself
SCROLLERS_JS = """() => {
  const found = [];
  for (const el of document.querySelectorAll("body *")) {
    const style = getComputedStyle(el);
    if (!["auto", "scroll"].includes(style.overflowX)) continue;
    if (el.scrollWidth <= el.clientWidth + 1 || el.offsetParent === null) continue;
    const hint = el.previousElementSibling;
    found.push({
      id: el.id || el.className,
      role: el.getAttribute("role"),
      label: el.getAttribute("aria-label"),
      tabindex: el.getAttribute("tabindex"),
      hint: hint && hint.classList.contains("scroll-hint") && hint.offsetParent !== null
        ? hint.textContent : null,
    });
  }
  return found;
}"""


async def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / name), full_page=True)


async def phone_page(browser: Browser, problems: list[str], **kw: Any) -> Page:
    context = await browser.new_context(viewport=PHONE, **kw)
    tab = await context.new_page()
    tab.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    tab.on("pageerror", lambda error: problems.append(str(error)))
    return tab


async def assert_tab_selected(page: Page, name: str, names: list[str]) -> None:
    for other in names:
        selected = other == name
        tab = page.locator(f"#tab-{other}")
        await expect(tab).to_have_attribute("aria-selected", "true" if selected else "false")
        panel = page.locator(f"#panel-{other}")
        if selected:
            await expect(panel).to_be_visible()
            await expect(tab).not_to_have_attribute("tabindex", "-1")
        else:
            await expect(panel).to_be_hidden()
            await expect(tab).to_have_attribute("tabindex", "-1")


async def test_tabs_switch_by_click_and_keyboard_and_keep_their_place(
    client: Any, page: Page, autumn_emulator: Autumn
) -> None:
    mix = seed.mix(autumn_emulator)
    await page.goto(f"{base_url(client)}/admin/jobs/orders")
    tabs = page.locator('[role="tablist"] [role="tab"]')
    names = [await t.get_attribute("data-tab") for t in await tabs.all()]
    assert names == ["enqueued", "scheduled", "running", "completed", "failed"]
    for name in names:
        # each tab names its panel and shows that list's total
        tab = page.locator(f"#tab-{name}")
        await expect(tab).to_have_attribute("aria-controls", f"panel-{name}")
        total = await page.locator(f'[data-list="{name}"] .total').text_content()
        assert total is not None
        await expect(tab.locator(".tab-count")).to_have_text(total.split()[0])
    # The first list with jobs is selected; the others are hidden.
    await assert_tab_selected(page, "enqueued", names)

    await page.locator("#tab-failed").click()
    await assert_tab_selected(page, "failed", names)
    assert page.url.endswith("/admin/jobs/orders?tab=failed")
    await expect(page.locator(f'#panel-failed tr[data-job-id="{mix.failed}"]')).to_be_visible()

    # The keyboard: arrows move and select (wrapping), Home and End jump.
    await page.keyboard.press("ArrowRight")
    await assert_tab_selected(page, "enqueued", names)
    await page.keyboard.press("End")
    await assert_tab_selected(page, "failed", names)
    await page.keyboard.press("ArrowLeft")
    await assert_tab_selected(page, "completed", names)
    await page.keyboard.press("Home")
    await assert_tab_selected(page, "enqueued", names)
    assert await page.evaluate("document.activeElement.id") == "tab-enqueued"
    await page.keyboard.press("ArrowDown")
    await page.keyboard.press("ArrowDown")
    await assert_tab_selected(page, "running", names)
    await shot(page, "layout-tabs.png")

    # A reload keeps the tab (the address says which).
    await page.reload()
    await assert_tab_selected(page, "running", names)

    # The failed row's Retry, by keyboard alone: Tab from the selected tab into its panel.
    await page.locator("#tab-failed").click()
    button = page.locator(f'#panel-failed tr[data-job-id="{mix.failed}"] [data-action="retry"]')
    for _ in range(20):
        await page.keyboard.press("Tab")
        if await button.evaluate("b => b === document.activeElement"):
            break
    else:
        raise AssertionError("Tab never reached the Retry button")
    outline = await button.evaluate("b => getComputedStyle(b).outlineStyle")
    assert outline == "solid"  # the focus is visible
    await page.keyboard.press("Enter")
    await expect(page.locator(".flash-ok")).to_contain_text(f"Retried job {mix.failed}")
    # the action returns to the tab it was taken from
    assert "tab=failed" in page.url
    await assert_tab_selected(page, "failed", names)


async def test_tabs_are_links_without_javascript(
    client: Any, browser: Browser, autumn_emulator: Autumn
) -> None:
    mix = seed.mix(autumn_emulator)
    context = await browser.new_context(java_script_enabled=False)
    page = await context.new_page()
    try:
        await page.goto(f"{base_url(client)}/admin/jobs/orders")
        await expect(page.locator("#panel-failed")).to_be_hidden()
        await page.locator("#tab-failed").click()
        await expect(page.locator("#panel-failed")).to_be_visible()
        assert "tab=failed" in page.url
        await expect(page.locator(f'tr[data-job-id="{mix.failed}"]')).to_be_visible()
        # a pager link (Autumn's <list>_page) opens its own list's tab
        await page.goto(f"{base_url(client)}/admin/jobs/orders?completed_page=1")
        await expect(page.locator("#panel-completed")).to_be_visible()
        await expect(page.locator("#panel-enqueued")).to_be_hidden()
    finally:
        await context.close()


async def test_visible_list_shows_new_rows_without_reload(
    make_client: Any, page: Page, autumn_emulator: Autumn
) -> None:
    client = await make_client(poll_interval_s=POLL_S)
    first = seed.enqueue(autumn_emulator)
    fragments: list[str] = []
    page.on("request", lambda r: fragments.append(r.url) if "/lists/" in r.url else None)
    await page.goto(f"{base_url(client)}/admin/jobs/orders?per_page=5")
    panel = page.locator("#panel-enqueued")
    await expect(panel.locator("tbody tr[data-job-id]")).to_have_count(1)
    await page.evaluate("window.__marker = 'same page'")

    second = seed.enqueue(autumn_emulator)
    await expect(panel.locator(f'tr[data-job-id="{second}"]')).to_be_visible(timeout=8000)
    await expect(panel.locator(f'tr[data-job-id="{first}"]')).to_be_visible()
    await expect(page.locator("#tab-count-enqueued")).to_have_text("2")
    await expect(panel.locator(".total")).to_have_text("2 total")
    assert await page.evaluate("window.__marker") == "same page"  # no reload happened
    # Only the visible list is read, one page of it, with the page's own per_page.
    assert fragments
    assert all(re.search(r"/admin/jobs/orders/lists/enqueued\?per_page=5$", u) for u in fragments)

    # A job that fails meanwhile: the failed tab's count follows (the same fragment read).
    seed.fail(autumn_emulator)
    await expect(page.locator("#tab-count-failed")).to_have_text("1", timeout=8000)


async def test_live_list_holds_still_while_the_reader_works_in_it(
    make_client: Any, page: Page, autumn_emulator: Autumn
) -> None:
    client = await make_client(poll_interval_s=POLL_S)
    seed.fail(autumn_emulator, "Traceback (most recent call last):\nValueError: the first")
    await page.goto(f"{base_url(client)}/admin/jobs/orders?tab=failed")
    panel = page.locator("#panel-failed")
    rows = panel.locator("tbody tr[data-job-id]")
    await expect(rows).to_have_count(1)
    # Open the error (a <details>) by keyboard: the list pauses and says so.
    summary = panel.locator("details.error summary")
    await summary.focus()
    await page.keyboard.press("Enter")
    await expect(panel.locator("details.error[open] pre")).to_be_visible()
    await expect(page.locator("#live-note")).to_contain_text("Paused", timeout=8000)
    fragments: list[str] = []
    page.on("request", lambda r: fragments.append(r.url) if "/lists/" in r.url else None)
    seed.fail(autumn_emulator, "the second")
    # Three polls later, the open error and the focus are where the reader left them.
    await page.wait_for_timeout(3 * POLL_S * 1000)
    assert fragments == []
    await expect(rows).to_have_count(1)
    await expect(panel.locator("details.error[open] pre")).to_be_visible()
    assert await summary.evaluate("s => s === document.activeElement")
    # Closing it and leaving the list resumes the refresh.
    await page.keyboard.press("Enter")
    await page.locator("#tab-failed").focus()
    await expect(rows).to_have_count(2, timeout=8000)
    await expect(page.locator("#live-note")).to_contain_text("refreshes every 1s")


async def test_dark_scheme_and_relative_times(
    client: Any, page: Page, autumn_emulator: Autumn
) -> None:
    job = seed.fail(autumn_emulator)
    await page.emulate_media(color_scheme="light")
    await page.goto(f"{base_url(client)}/admin/jobs/orders?tab=failed")
    light = await page.evaluate("getComputedStyle(document.body).backgroundColor")
    await page.emulate_media(color_scheme="dark")
    dark = await page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert light == "rgb(246, 247, 249)"
    assert dark == "rgb(18, 21, 27)"
    # Text stays readable on its background in the dark (WCAG AA: 4.5).
    contrast = await page.evaluate(
        """() => {
          const rgb = s => s.match(/\\d+/g).slice(0, 3).map(Number);
          const lum = c => {
            const [r, g, b] = c.map(v => {
              v /= 255;
              return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
            });
            return 0.2126 * r + 0.7152 * g + 0.0722 * b;
          };
          const ratio = (a, b) => {
            const [x, y] = [lum(rgb(a)), lum(rgb(b))].sort((p, q) => q - p);
            return (x + 0.05) / (y + 0.05);
          };
          const body = getComputedStyle(document.body);
          const card = getComputedStyle(document.querySelector("#panel-failed .card"));
          const muted = getComputedStyle(document.querySelector(".sub"));
          const link = getComputedStyle(document.querySelector("#panel-failed a.job-id"));
          return {
            text: ratio(body.color, body.backgroundColor),
            muted: ratio(muted.color, card.backgroundColor),
            link: ratio(link.color, card.backgroundColor),
          };
        }"""
    )
    assert min(contrast.values()) >= 4.5, contrast
    # Times read "… ago", with the exact UTC time on hover and in datetime.
    finished = page.locator(f'tr[data-job-id="{job}"] time').last
    await expect(finished).to_have_text(re.compile(r"^(just now|\d+ s ago)$"))
    title = await finished.get_attribute("title")
    stamp = await finished.get_attribute("datetime")
    assert title and re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ", title)
    assert stamp and title.replace(" ", "T") == stamp
    await shot(page, "layout-source-dark.png")
    await page.goto(f"{base_url(client)}/admin/jobs")
    await shot(page, "layout-overview-dark.png")


async def test_phone_width_overview_is_cards_and_does_not_scroll_sideways(
    make_client: Any, redis_url: str, browser: Browser, autumn_emulator: Autumn, problems: list[str]
) -> None:
    rq_main = SourceConfig(name="rq-main", system="rq", redis_url=redis_url)
    client = await make_client(make_settings(redis_url, extra_sources=(rq_main,)))
    seed.mix(autumn_emulator)
    page = await phone_page(browser, problems)
    try:
        await page.goto(f"{base_url(client)}/admin/jobs")
        await expect(page.locator('table.sources tr[data-source="rq-main"]')).to_be_visible()
        assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        assert await page.evaluate(SCROLLERS_JS) == []  # nothing scrolls, not even inside
        # Each source is a card: the row is a block, each cell says what it is.
        row = page.locator('table.sources tr[data-source="rq-main"]')
        assert await row.evaluate("r => getComputedStyle(r).display") == "block"
        cell = row.locator('td[data-label="Enqueued"]')
        label = await cell.evaluate("c => getComputedStyle(c, '::before').content")
        assert label == '"Enqueued"'
        # "rq-main" is on one line, never "rq-" / "main".
        for name in await page.locator('.source-name:has-text("rq-main")').all():
            assert await name.evaluate("n => n.getClientRects().length") == 1
            height = await name.evaluate("n => n.getBoundingClientRect().height")
            line = await name.evaluate("n => parseFloat(getComputedStyle(n).lineHeight)")
            assert height < 1.5 * line, (height, line)
        # The comparison keeps its sort links above its cards.
        await expect(page.locator('th[data-column="depth"] a')).to_be_visible()
        await shot(page, "layout-overview-390.png")

        # The source page: only announced regions scroll sideways.
        await page.goto(f"{base_url(client)}/admin/jobs/orders?tab=failed")
        await expect(page.locator("#panel-failed")).to_be_visible()
        assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        scrollers = await page.evaluate(SCROLLERS_JS)
        assert scrollers, "a nine-column job table cannot fit 390 pixels"
        for region in scrollers:
            assert region["role"] == "region", region
            assert region["tabindex"] == "0", region
            assert region["label"] and "scrolls sideways" in region["label"], region
            assert region["hint"] and "Scroll sideways" in region["hint"], region
        # The region scrolls by keyboard.
        wrap = page.locator("#panel-failed .table-wrap")
        await wrap.focus()
        await page.keyboard.press("ArrowRight")
        await page.keyboard.press("ArrowRight")
        await page.wait_for_function(
            "() => document.querySelector('#panel-failed .table-wrap').scrollLeft > 0"
        )
        await shot(page, "layout-source-390.png")
    finally:
        await page.context.close()
    assert problems == []


async def test_rq_and_celery_source_pages_at_desktop_and_phone_width(
    make_client: Any,
    redis_url: str,
    browser: Browser,
    rq_workers: WorkerPool,
    celery_app: Celery,
    celery_workers: CeleryWorkerPool,
    problems: list[str],
) -> None:
    """The screenshots the issue's closing note wants, with the layout's promises checked on
    each: an RQ and a Celery source page, desktop and phone."""
    conn = sync_redis(redis_url)
    make_failed(conn, rq_workers, 2)
    for n in range(3):
        enqueue(conn, rq_tasks.add, n, 1)
    worker = celery_workers.start(("celery",))
    failed = send(celery_app, "fail", "layout boom").id
    wait_for_state(celery_app, failed, "FAILURE", workers=celery_workers)
    sources = (
        SourceConfig(name="rq-main", system="rq", redis_url=redis_url),
        SourceConfig(name="celery-main", system="celery", redis_url=redis_url),
    )
    settings = make_settings(redis_url, extra_sources=sources)
    client = await make_client(settings)
    for viewport, suffix in (({"width": 1400, "height": 1000}, "desktop"), (PHONE, "390")):
        context = await browser.new_context(viewport=viewport)
        page = await context.new_page()
        page.on("pageerror", lambda error: problems.append(str(error)))
        try:
            for source in ("rq-main", "celery-main"):
                await page.goto(f"{base_url(client)}/admin/jobs/{source}?tab=failed")
                await expect(page.locator("#panel-failed tbody tr[data-job-id]")).not_to_have_count(
                    0, timeout=15000
                )
                width = await page.evaluate("document.documentElement.scrollWidth")
                assert width <= viewport["width"], (source, suffix, width)
                name = page.locator("h1 .source-name")
                await expect(name).to_have_text(source)
                assert await name.evaluate("n => n.getClientRects().length") == 1
                for region in await page.evaluate(SCROLLERS_JS):
                    assert region["role"] == "region" and region["hint"], (source, region)
                await shot(page, f"layout-{source}-{suffix}.png")
        finally:
            await context.close()
    worker.assert_alive()
    assert problems == []
