"""Source pages' filtered lists and bulk controls (issue 19): filters narrow the failed,
enqueued and scheduled lists, are kept by pager, tab and live links, are bounded, and invalid
values are form errors."""

from __future__ import annotations

import re
from html import unescape

import pytest

from jobbridge.dev.autumn_emulator import Autumn
from jobbridge.web import filtered_lists
from tests.web import seed
from tests.web.conftest import OPERATOR_TOKEN, VIEWER_TOKEN, auth_config, bearer


def _section(html: str, list_name: str) -> str:
    start = html.index(f'data-list="{list_name}"')
    end = html.find("</section>", start)
    return html[start:end]


def _ids(section: str) -> set[str]:
    return set(re.findall(r'data-job-id="([^"]+)"', section))


async def test_failed_filter_narrows_by_error_and_name(client, autumn_emulator: Autumn) -> None:
    wanted = {seed.fail(autumn_emulator, "ConnectionError: refused") for _ in range(3)}
    others = {seed.fail(autumn_emulator, "ValueError: bad") for _ in range(2)}
    html = await (await client.get("/admin/jobs/orders?failed_error_contains=connection")).text()
    section = _section(html, "failed")
    assert _ids(section) == wanted
    assert not _ids(section) & others
    assert "3 of 5 failed jobs match." in section
    assert "error~connection" in unescape(section)
    # the form keeps the value; the bulk form carries the filter un-namespaced
    assert 'name="failed_error_contains" value="connection"' in section
    assert 'name="error_contains" value="connection"' in section
    html = await (await client.get("/admin/jobs/orders?failed_name=nothing-like-it")).text()
    assert _ids(_section(html, "failed")) == set()


async def test_enqueued_and_scheduled_filters_by_queue_and_name(
    client, autumn_emulator: Autumn
) -> None:
    report = seed.enqueue(autumn_emulator, "build_report", queue="reports")
    mail = seed.enqueue(autumn_emulator, "send_email", queue="default")
    html = await (await client.get("/admin/jobs/orders?enqueued_queue=reports")).text()
    section = _section(html, "enqueued")
    assert _ids(section) == {report}
    assert '<option value="reports" selected>' in section
    later = seed.schedule(autumn_emulator, "send_email")
    seed.schedule(autumn_emulator, "noop")
    html = await (await client.get("/admin/jobs/orders?scheduled_name=EMAIL&tab=scheduled")).text()
    assert _ids(_section(html, "scheduled")) == {later}
    # one list's filter leaves the others alone
    assert mail in _ids(_section(html, "enqueued"))


async def test_invalid_filter_is_a_form_error_not_a_500(client, autumn_emulator: Autumn) -> None:
    job = seed.fail(autumn_emulator)
    response = await client.get("/admin/jobs/orders?failed_since=yesterday-ish")
    assert response.status == 200
    section = _section(await response.text(), "failed")
    assert 'class="form-error"' in section
    assert "is not a time" in unescape(section)
    assert job in _ids(section)  # the list itself unfiltered
    fragment = await client.get("/admin/jobs/orders/lists/failed?failed_since=%00nope")
    assert fragment.status == 200
    assert 'class="form-error"' in await fragment.text()


async def test_filter_is_kept_by_pager_tabs_and_live_refresh(
    client, autumn_emulator: Autumn
) -> None:
    for _ in range(5):
        seed.enqueue(autumn_emulator, "send_email")
    seed.enqueue(autumn_emulator, "noop")
    html = await (await client.get("/admin/jobs/orders?per_page=2&enqueued_name=send")).text()
    section = _section(html, "enqueued")
    assert "Page 1 of 3" in section
    assert (
        'href="/admin/jobs/orders?enqueued_name=send&amp;enqueued_page=2&amp;per_page=2" '
        'rel="next"' in section
    )
    # tab links and the live refresh carry it
    tab = 'href="/admin/jobs/orders?per_page=2&amp;enqueued_name=send&amp;tab=failed#lists"'
    assert tab in html
    assert 'hx-get="/admin/jobs/orders/lists/enqueued?per_page=2&amp;enqueued_name=send"' in html
    # the live fragment filters and pages the same way
    fragment = await (
        await client.get("/admin/jobs/orders/lists/enqueued?page=3&per_page=2&enqueued_name=send")
    ).text()
    assert "Page 3 of 3" in fragment
    assert len(_ids(fragment)) == 1
    assert "enqueued_name=send" in fragment  # its pager and forms return to the filtered page


async def test_bounded_look_back_says_how_far_it_looked(
    client, autumn_emulator: Autumn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(filtered_lists, "LOOK_BACK", 4)
    monkeypatch.setattr(filtered_lists.filtered_page, "__kwdefaults__", {"look_back": 4})
    for i in range(7):
        seed.fail(autumn_emulator, "Timeout" if i % 2 else "other")
    html = await (await client.get("/admin/jobs/orders?failed_error_contains=timeout")).text()
    section = _section(html, "failed")
    assert "Looked at the newest 4 of 7 failed jobs: 2 match." in section
    assert len(_ids(section)) == 2


async def test_row_ticks_and_bulk_buttons_by_role(make_client, autumn_emulator: Autumn) -> None:
    job = seed.fail(autumn_emulator)
    seed.enqueue(autumn_emulator, queue="reports")
    client = await make_client(auth=auth_config())
    html = await (await client.get("/admin/jobs/orders", headers=bearer(OPERATOR_TOKEN))).text()
    failed = _section(html, "failed")
    assert f'name="ids" value="{job}" form="bulk-failed"' in failed
    assert 'value="retry:selected"' in failed and 'value="discard:matches"' in failed
    enqueued = _section(html, "enqueued")
    assert 'value="cancel:queue"' in enqueued and '<option value="reports"' in enqueued
    html = await (await client.get("/admin/jobs/orders", headers=bearer(VIEWER_TOKEN))).text()
    failed = _section(html, "failed")
    # a viewer may ask for a dry run of every match, but ticks no rows
    assert 'name="ids"' not in failed and "retry:selected" not in failed
    assert 'value="retry:matches"' in failed
