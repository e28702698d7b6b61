"""The source page's tabs and live-list fragment, and relative times, as HTML (the browser
side is tests/web/test_browser_layout.py)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from jobbridge.dev.autumn_emulator import Autumn
from jobbridge.settings import SourceConfig
from jobbridge.web.formatting import relative_time
from tests.web import seed
from tests.web.conftest import make_settings


def test_relative_time_words() -> None:
    now = datetime(2026, 12, 4, 12, 0, 0, tzinfo=UTC)
    cases = {
        timedelta(0): "just now",
        timedelta(seconds=4): "just now",
        timedelta(seconds=42): "42 s ago",
        timedelta(minutes=3, seconds=59): "3 min ago",
        timedelta(hours=2, minutes=5): "2 h ago",
        timedelta(days=5, hours=23): "5 d ago",
        timedelta(minutes=-3): "in 3 min",
        timedelta(days=61): "2026-10-04",
    }
    for ago, words in cases.items():
        assert relative_time(now - ago, now) == words, ago
    assert relative_time(None, now) == "—"


async def test_source_page_renders_tabs_and_selects_one(client, autumn_emulator: Autumn) -> None:
    seed.fail(autumn_emulator)
    html = await (await client.get("/admin/jobs/orders")).text()
    assert '<div class="tablist" role="tablist" aria-label="Job lists">' in html
    tabs = re.findall(r'<a class="tab" role="tab" id="tab-(\w+)"[^>]*aria-selected="(\w+)"', html)
    # only the failed list has a job: it is the one shown
    assert tabs == [
        ("enqueued", "false"),
        ("scheduled", "false"),
        ("running", "false"),
        ("completed", "false"),
        ("failed", "true"),
    ]
    assert 'href="/admin/jobs/orders?tab=enqueued#lists"' in html
    assert re.search(
        r'id="panel-failed" aria-labelledby="tab-failed" data-live-list="failed"\s', html
    )
    assert re.search(r'id="panel-enqueued" aria-labelledby="tab-enqueued"[^>]* hidden', html)
    assert 'hx-get="/admin/jobs/orders/lists/failed"' in html
    # the tab and the pager keep the page's paging; the fragment reads the same page
    html = await (await client.get("/admin/jobs/orders?per_page=5&enqueued_page=2")).text()
    assert 'href="/admin/jobs/orders?per_page=5&amp;enqueued_page=2&amp;tab=failed#lists"' in html
    assert 'hx-get="/admin/jobs/orders/lists/enqueued?page=2&amp;per_page=5"' in html
    assert re.search(r'id="tab-enqueued"[^>]*aria-selected="true"', html)  # its pager's tab
    html = await (await client.get("/admin/jobs/orders?tab=running&enqueued_page=2")).text()
    assert re.search(r'id="tab-running"[^>]*aria-selected="true"', html)


async def test_list_fragment_is_one_list_page_with_every_tab_count(
    client, autumn_emulator: Autumn
) -> None:
    failed = seed.fail(autumn_emulator)
    waiting = [seed.enqueue(autumn_emulator) for _ in range(3)]
    response = await client.get("/admin/jobs/orders/lists/enqueued?page=2&per_page=2")
    assert response.status == 200
    html = await response.text()
    assert "<html" not in html
    assert 'data-list="enqueued"' in html and 'data-list="failed"' not in html
    assert failed not in html
    rows = re.findall(r'<tr class="row-enqueued" data-job-id="([^"]+)"', html)
    assert rows == [waiting[0]]  # newest first: page 2 of 2 holds the oldest
    assert "3 total" in html
    # every tab's count, out of band, from the same bounded read
    counts = dict(re.findall(r'id="tab-count-(\w+)"[^>]*hx-swap-oob="true">(\d+)<', html))
    assert counts == {
        "enqueued": "3",
        "scheduled": "0",
        "running": "0",
        "completed": "0",
        "failed": "1",
    }
    # the rows' forms return to the page with this tab and paging, not to the fragment
    assert (
        'name="next" value="/admin/jobs/orders?enqueued_page=2&amp;per_page=2&amp;tab=enqueued"'
        in html
    )
    # the pager links to the page, not the fragment
    assert 'href="/admin/jobs/orders?enqueued_page=1&amp;per_page=2" rel="prev"' in html


async def test_list_fragment_refuses_unknown_lists_and_sources(client) -> None:
    for path in (
        "/admin/jobs/orders/lists/everything",
        "/admin/jobs/orders/lists/%3Cscript%3E",
        "/admin/jobs/nowhere/lists/failed",
    ):
        response = await client.get(path)
        assert response.status == 404, path
        assert "<script>" not in await response.text()
    # Autumn keeps no canceled list: nothing to show
    assert (await client.get("/admin/jobs/orders/lists/canceled")).status == 404


async def test_list_fragment_of_an_unavailable_source_swaps_nothing(
    make_client, redis_url: str, dead_url: str
) -> None:
    gone = SourceConfig(name="gone", system="autumn", redis_url=dead_url)
    client = await make_client(make_settings(redis_url, extra_sources=(gone,)))
    response = await client.get("/admin/jobs/gone/lists/failed")
    # as the counters beside it: a normal state, and htmx keeps the rows it has on a 204
    assert response.status == 204
    assert await response.text() == ""
