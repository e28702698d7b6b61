"""Source pages' filtered lists and bulk controls (issue 19): filters narrow the failed,
enqueued and scheduled lists, are kept by pager, tab and live links, are bounded, and invalid
values are form errors."""

from __future__ import annotations

import asyncio
import re
from html import unescape

import pytest

from jobbridge.dev.autumn_emulator import Autumn
from jobbridge.web import filtered_lists
from tests.web import seed
from tests.web.conftest import OPERATOR_TOKEN, VIEWER_TOKEN, auth_config, bearer, csrf_token


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
    # the queue select lists the queues the source's background discovery has found
    for _ in range(100):
        page = await client.get("/admin/jobs/orders", headers=bearer(OPERATOR_TOKEN))
        html = await page.text()
        if '<option value="reports"' in html:
            break
        await asyncio.sleep(0.05)
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


# ------------------------------------------------------------------ bulk pages


async def _start(client, data: dict[str, object], headers: dict[str, str] | None = None) -> str:
    """POST the bulk form; the run page it redirects to."""
    response = await client.post(
        "/admin/bulk/orders", data=data, headers=headers or {}, allow_redirects=False
    )
    assert response.status == 303, await response.text()
    location = response.headers["Location"]
    assert location.startswith("/admin/bulk/orders/")
    return location


async def _until(client, url: str, state: str, headers: dict[str, str] | None = None) -> str:
    """The run page once the run is in ``state`` (the background work ends on its own)."""
    for _ in range(400):
        html = await (await client.get(url, headers=headers or {})).text()
        if f'data-bulk-state="{state}"' in html:
            return html
        assert 'data-bulk-state="failed"' not in html, html
        await asyncio.sleep(0.05)
    raise AssertionError(f"run never reached {state}: {html}")


async def test_bulk_retry_of_every_match_dry_run_then_confirm(
    client, autumn_emulator: Autumn
) -> None:
    wanted = {seed.fail(autumn_emulator, "ConnectionError: refused") for _ in range(3)}
    others = {seed.fail(autumn_emulator, "ValueError: bad") for _ in range(2)}
    token = await csrf_token(client, "/admin/jobs/orders")
    data = {"_csrf": token, "list": "failed", "error_contains": "connection"}
    run = await _start(client, {**data, "bulk": "retry:matches"})
    html = unescape(await _until(client, run, "matched"))
    assert "error~connection" in html
    assert "<strong data-bulk-count>3</strong> jobs match" in html
    assert "Retry 3 failed jobs: each is enqueued again under a new id" in html
    assert 'name="count" value="3"' in html and "data-bulk-confirm" in html
    assert set(re.findall(r'data-job-id="([^"]+)"', html)) == wanted  # the sample
    # a dry run changes nothing
    assert len(autumn_emulator.dead_raw()) == 5
    assert all(autumn_emulator.dead_record_raw(j) for j in wanted | others)
    # a count that is not the dry run's is refused
    wrong = await client.post(f"{run}/confirm", data={"_csrf": token, "count": "4"})
    assert wrong.status == 409
    confirmed = await client.post(
        f"{run}/confirm", data={"_csrf": token, "count": "3"}, allow_redirects=False
    )
    assert confirmed.status == 303 and confirmed.headers["Location"] == run
    html = unescape(await _until(client, run, "done"))
    assert "<progress" in html and 'value="3"' in html
    assert re.search(r'data-outcome="done"><td>done</td><td class="num">3<', html), html
    assert "3 of 3</span> jobs acted on (100%)" in html
    assert 'href="/admin/jobs/orders?tab=failed"' in html


async def test_ticked_rows_and_empty_queue(client, autumn_emulator: Autumn) -> None:
    failed = [seed.fail(autumn_emulator) for _ in range(3)]
    # (queued before the first read: a source discovers its queues now and then, not per read)
    reports = {seed.enqueue(autumn_emulator, queue="reports") for _ in range(2)}
    kept = seed.enqueue(autumn_emulator)
    token = await csrf_token(client, "/admin/jobs/orders")
    run = await _start(
        client,
        {"_csrf": token, "list": "failed", "bulk": "discard:selected", "ids": failed[0]},
    )
    html = unescape(await _until(client, run, "matched"))
    assert "1 ticked row" in html and "Discard 1 failed jobs" in html
    missing = await client.post(
        "/admin/bulk/orders", data={"_csrf": token, "list": "failed", "bulk": "retry:selected"}
    )
    assert missing.status == 400 and "Tick at least one row" in await missing.text()
    run = await _start(
        client,
        {"_csrf": token, "list": "enqueued", "bulk": "cancel:queue", "empty_queue": "reports"},
    )
    html = unescape(await _until(client, run, "matched"))
    main = html[html.index("<main") :]
    assert "queue=reports" in main and "Cancel 2 enqueued jobs" in main, main
    await client.post(f"{run}/confirm", data={"_csrf": token, "count": "2"})
    await _until(client, run, "done")
    page = await (await client.get("/admin/jobs/orders")).text()
    assert _ids(_section(page, "enqueued")) == {kept}
    assert not _ids(_section(page, "enqueued")) & reports


async def test_bad_bulk_forms_are_400_not_500(client, autumn_emulator: Autumn) -> None:
    token = await csrf_token(client, "/admin/jobs/orders")
    for data in (
        {"list": "completed", "bulk": "retry:matches"},
        {"list": "failed", "bulk": "cancel:matches"},
        {"list": "failed", "bulk": "retry:everything"},
        {"list": "failed", "bulk": "retry:matches", "since": "not a time"},
        {"list": "failed", "bulk": "cancel:queue", "empty_queue": "x"},
    ):
        response = await client.post("/admin/bulk/orders", data={"_csrf": token, **data})
        assert response.status == 400, data
    missing = await client.get("/admin/bulk/orders/no-such-run")
    assert missing.status == 404


async def test_viewer_sees_the_dry_run_but_may_not_confirm(
    make_client, autumn_emulator: Autumn
) -> None:
    seed.fail(autumn_emulator)
    client = await make_client(auth=auth_config())
    viewer = bearer(VIEWER_TOKEN)
    run = await _start(client, {"list": "failed", "bulk": "retry:matches"}, viewer)
    html = await _until(client, run, "matched", viewer)
    assert "data-bulk-confirm" not in html and "may look at a dry run" in html
    refused = await client.post(f"{run}/confirm", data={"count": "1"}, headers=viewer)
    assert refused.status == 403
    assert len(autumn_emulator.dead_raw()) == 1
    html = await _until(client, run, "matched", bearer(OPERATOR_TOKEN))
    assert "data-bulk-confirm" in html


async def test_read_only_mode_shows_the_dry_run_and_refuses_the_action(
    make_client, autumn_emulator: Autumn
) -> None:
    seed.fail(autumn_emulator)
    client = await make_client(read_only=True)
    token = await csrf_token(client, "/admin/jobs/orders")
    run = await _start(client, {"_csrf": token, "list": "failed", "bulk": "retry:matches"})
    html = await _until(client, run, "matched")
    assert "Read-only mode: actions are off" in html and "data-bulk-confirm" not in html
    refused = await client.post(f"{run}/confirm", data={"_csrf": token, "count": "1"})
    assert refused.status == 403
    assert len(autumn_emulator.dead_raw()) == 1


async def test_bulk_posts_need_the_csrf_token(client, autumn_emulator: Autumn) -> None:
    seed.fail(autumn_emulator)
    token = await csrf_token(client, "/admin/jobs/orders")
    refused = await client.post(
        "/admin/bulk/orders", data={"list": "failed", "bulk": "retry:matches"}
    )
    assert refused.status == 403 and "security token" in await refused.text()
    run = await _start(client, {"_csrf": token, "list": "failed", "bulk": "retry:matches"})
    await _until(client, run, "matched")
    for tail in ("confirm", "cancel"):
        response = await client.post(f"{run}/{tail}", data={"count": "1"})
        assert response.status == 403, tail
    assert len(autumn_emulator.dead_raw()) == 1


async def test_an_operator_drops_a_dry_run_a_viewer_may_not(
    make_client, autumn_emulator: Autumn
) -> None:
    seed.fail(autumn_emulator)
    seed.fail(autumn_emulator)
    client = await make_client(auth=auth_config())
    viewer, operator = bearer(VIEWER_TOKEN), bearer(OPERATOR_TOKEN)
    run = await _start(client, {"list": "failed", "bulk": "discard:matches"}, operator)
    html = await _until(client, run, "matched", operator)
    assert "data-bulk-drop" in html
    refused = await client.post(f"{run}/cancel", headers=viewer)
    assert refused.status == 403
    dropped = await client.post(f"{run}/cancel", headers=operator, allow_redirects=False)
    assert dropped.status == 303 and dropped.headers["Location"] == run
    html = unescape(await _until(client, run, "canceled", operator))
    assert "Canceled by token:ops-bot: 0 jobs were acted on, the other 2 untouched." in html, html[
        html.index("<main") :
    ]
    assert "data-bulk-confirm" not in html
    late = await client.post(f"{run}/confirm", data={"count": "2"}, headers=operator)
    assert late.status == 409
    assert len(autumn_emulator.dead_raw()) == 2


async def test_hostile_filter_values_stay_text(client, autumn_emulator: Autumn) -> None:
    seed.fail(autumn_emulator)
    hostile = '"><script>alert(1)</script>'
    response = await client.get(
        "/admin/jobs/orders", params={"failed_name": hostile, "enqueued_queue": hostile}
    )
    assert response.status == 200
    html = await response.text()
    assert "<script>alert(1)" not in html
    assert "&#34;&gt;&lt;script&gt;" in html or "&quot;&gt;&lt;script&gt;" in html
    response = await client.get("/admin/jobs/orders", params={"failed_worker": "w" * 300})
    section = _section(await response.text(), "failed")
    assert "longer than 200 characters" in section
