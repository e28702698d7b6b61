"""HTML pages: overview, per-source dashboard (Autumn's layout), fragments, detail, audit."""

from __future__ import annotations

import re
from html import escape
from urllib.parse import urlencode

import pytest

from jobbridge.dev.autumn_emulator import Autumn
from tests.web import seed
from tests.web.conftest import csrf_token, make_settings

#: the breadcrumb separator
SEP = "\u203a"


def _section(html: str, list_name: str) -> str:
    start = html.index(f'data-list="{list_name}"')
    end = html.find("</section>", start)
    return html[start:end]


async def test_root_and_prefix_redirect_to_overview(client) -> None:
    for path in ("/", "/admin", "/admin/"):
        response = await client.get(path, allow_redirects=False)
        assert response.status == 302
        assert response.headers["Location"] == "/admin/jobs"


async def test_overview_lists_sources_queues_and_recent_failures(
    client, autumn_emulator: Autumn
) -> None:
    mix = seed.mix(autumn_emulator)
    response = await client.get("/admin/jobs")
    assert response.status == 200
    assert response.content_type == "text/html"
    html = await response.text()
    assert f'Admin</span> {SEP} <span aria-current="page">Jobs</span>' in html
    assert 'href="/admin/jobs/orders"' in html
    assert 'id="overview-counters"' in html
    assert 'hx-get="/admin/jobs/counters"' in html
    assert 'hx-trigger="load, every 2s"' in html
    # each queue is a row of the comparison, under its source
    assert 'data-kind="queue" data-source="orders" data-queue="default"' in html
    assert "Recent failures" in html
    assert mix.failed in html
    assert "disk full on /var/spool" in html
    assert '<span class="badge badge-ok">up</span>' in html


async def test_overview_counters_fragment(client, autumn_emulator: Autumn) -> None:
    seed.enqueue(autumn_emulator)
    response = await client.get("/admin/jobs/counters")
    assert response.status == 200
    html = await response.text()
    assert html.lstrip().startswith('<div id="overview-counters"')
    # Swapped-in copies poll without "load", so a swap does not trigger an instant request.
    assert 'hx-trigger="every 2s"' in html
    assert 'hx-swap="outerHTML"' in html
    assert "<html" not in html
    row = html[html.index('data-source="orders"') :]
    assert re.search(r'<td class="num"[^>]*>1</td>', row)


async def test_source_page_has_autumn_layout(client, autumn_emulator: Autumn) -> None:
    mix = seed.mix(autumn_emulator)
    response = await client.get("/admin/jobs/orders")
    assert response.status == 200
    html = await response.text()
    assert f'<span>Admin</span> {SEP} <a href="/admin/jobs">Jobs</a> {SEP} ' in html
    assert '<span aria-current="page">orders</span>' in html
    assert 'id="jobs-counters"' in html
    assert 'hx-get="/admin/jobs/orders/counters"' in html
    assert 'hx-trigger="load, every 2s"' in html
    assert 'hx-swap="outerHTML"' in html
    titles = re.findall(r"<h2>([^<]+)</h2>", html)
    # The charts (issue 17) sit between the counters and Autumn's lists.
    assert titles[0] == "Throughput" and 'hx-get="/admin/charts/orders"' in html
    # then the queue census card (issue 18), loaded by its own request
    assert titles[1] == "What is waiting" and 'hx-get="/admin/census/orders"' in html
    assert titles[2:8] == [
        "Enqueued",
        "Scheduled",
        "Running",
        "Completed (last 24h)",
        "Failed (last 7d)",
        "Recurring Schedules",
    ]
    assert html.count("1 total") == 4  # enqueued, running, completed, failed
    assert "2 total" in html  # scheduled + retrying
    for header in (
        "Job",
        "Enqueued At",
        "Started At",
        "Finished At",
        "Attempts",
        "Principal",
        "Correlation",
        "Last Error",
        "Actions",
    ):
        assert re.search(rf"<th[^>]*>{header}</th>", html), header
    assert "No recurring schedules stored by this system." in html
    assert "keeps the newest 1000 entries" in html

    failed = _section(html, "failed")
    assert mix.failed in failed
    assert "user-7" in failed and "req-1" in failed  # principal, correlation
    assert "1/1" in failed
    assert 'data-action="retry"' in failed and 'data-action="discard"' in failed
    assert 'data-action="cancel"' not in failed

    enqueued = _section(html, "enqueued")
    assert '<strong class="job-name">send_email</strong>' in enqueued
    assert 'queue <span class="queue">default</span>' in enqueued
    assert f'href="/admin/jobs/orders/{mix.enqueued}"' in enqueued
    assert 'data-action="cancel"' in enqueued and "42" in enqueued

    scheduled = _section(html, "scheduled")
    assert " · due <time" in scheduled
    assert "status-retrying" in scheduled and "status-scheduled" in scheduled
    assert scheduled.count('data-action="cancel"') == 2

    for name in ("running", "completed"):
        section = _section(html, name)
        assert "data-action=" not in section
        # no row of these lists has an action: no Actions column
        assert "actions-cell" not in section and ">Actions</th>" not in section
    assert "user-8" in _section(html, "completed")


async def test_failed_error_is_cut_at_80_with_full_text_in_details(client, autumn_emulator) -> None:
    message = "E" * 70 + " and then it went on and on: " + "x" * 200
    seed.fail(autumn_emulator, message)
    html = await (await client.get("/admin/jobs/orders")).text()
    cut = message[:79] + "…"
    assert f'<details class="error"><summary>{cut}</summary><pre>{message}</pre></details>' in html


async def test_retrying_error_is_cut_without_details(client, autumn_emulator) -> None:
    message = "R" * 100
    seed.retrying(autumn_emulator, message)
    section = _section(await (await client.get("/admin/jobs/orders")).text(), "scheduled")
    assert "R" * 79 + "…" in section
    assert "<details" not in section


async def test_corrupt_record_is_flagged(client, autumn_emulator, redis_client) -> None:
    await redis_client.set(f"{autumn_emulator.prefix}:record:bad-1", b"{not json")
    await redis_client.lpush(f"{autumn_emulator.prefix}:queue", b"bad-1")
    html = await (await client.get("/admin/jobs/orders")).text()
    section = _section(html, "enqueued")
    assert '<span class="badge badge-corrupt">corrupt</span>' in section
    assert "record is not valid JSON" in section
    assert "row-corrupt" in section


async def test_pager_only_with_more_than_one_page_and_keeps_per_page(
    client, autumn_emulator
) -> None:
    for _ in range(5):
        seed.enqueue(autumn_emulator)
    html = await (await client.get("/admin/jobs/orders")).text()
    assert 'class="pager"' not in html
    html = await (await client.get("/admin/jobs/orders?per_page=2&enqueued_page=2")).text()
    section = _section(html, "enqueued")
    assert "Page 2 of 3" in section
    assert 'href="/admin/jobs/orders?enqueued_page=3&amp;per_page=2" rel="next"' in section
    assert 'href="/admin/jobs/orders?enqueued_page=1&amp;per_page=2" rel="prev"' in section
    assert section.count('class="row-enqueued"') == 2
    # Other lists have one page or none: no pager.
    assert 'class="pager"' not in _section(html, "failed")


async def test_bad_query_values_are_clamped_not_errors(client, autumn_emulator) -> None:
    seed.enqueue(autumn_emulator)
    for query in (
        "per_page=0",
        "per_page=10000",
        "per_page=abc",
        "enqueued_page=-4",
        "enqueued_page=1e9",
        "enqueued_page=" + "9" * 40,
        "failed_page=%00",
    ):
        response = await client.get(f"/admin/jobs/orders?{query}")
        assert response.status == 200, query


async def test_source_counters_fragment(client, autumn_emulator) -> None:
    seed.fail(autumn_emulator)
    seed.enqueue(autumn_emulator)
    response = await client.get("/admin/jobs/orders/counters")
    assert response.status == 200
    html = await response.text()
    assert html.lstrip().startswith('<div id="jobs-counters"')
    assert 'hx-get="/admin/jobs/orders/counters"' in html
    assert 'hx-trigger="every 2s"' in html
    assert 'data-counter="enqueued">1<' in html
    assert 'data-counter="failed_7d">1<' in html
    for label in (
        "Enqueued",
        "Scheduled",
        "Running",
        "Completed 24h",
        "Failed 7d",
        "Blocked",
        "Oldest enqueued",
    ):
        assert f'<span class="label">{label}</span>' in html
    assert "HX-Refresh" not in response.headers


async def test_overdue_running_jobs_are_marked(client, autumn_emulator) -> None:
    stuck = seed.stuck(autumn_emulator)
    seed.running(autumn_emulator)
    html = await (await client.get("/admin/jobs/orders")).text()
    assert html.count('class="badge badge-overdue"') == 1
    assert 'data-counter="running_overdue"' in html and "1 overdue" in html
    overview = await (await client.get("/admin/jobs")).text()
    assert "(1 overdue)" in overview
    detail = await (await client.get(f"/admin/jobs/orders/{stuck}")).text()
    assert "Overdue since" in detail
    body = await (await client.get("/admin/api/counters")).json()
    assert body["sources"][0]["counters"]["running_overdue"] == 1
    snapshot = await (await client.get("/admin/api/sources/orders/snapshot")).json()
    overdue = {j["id"]: j["overdue_since"] for j in snapshot["lists"]["running"]["items"]}
    assert overdue[stuck] is not None and list(overdue.values()).count(None) == 1


@pytest.mark.parametrize("job_id", ["counters", "job", ".", "..", "a/b"])
async def test_ids_that_cannot_be_a_path_segment_still_work(
    client, autumn_emulator, job_id
) -> None:
    autumn_emulator.enqueue("noop", {}, job_id=job_id)
    html = await (await client.get("/admin/jobs/orders")).text()
    url = f"/admin/jobs/orders/job?{urlencode({'id': job_id})}"
    assert f'href="{escape(url)}"' in html
    detail = await client.get(url)
    assert detail.status == 200
    assert f"<code>{escape(job_id)}</code>" in await detail.text()
    action = url.replace("?", "/cancel?") if "?" in url else url + "/cancel"
    assert f'action="{escape(action)}"' in html
    response = await client.post(
        action, data={"_csrf": await csrf_token(client)}, allow_redirects=False
    )
    assert response.status == 303
    assert autumn_emulator.queue_ids() == []
    api = await client.get(f"/admin/api/sources/orders/jobs/job?{urlencode({'id': job_id})}")
    body = await api.json()
    assert (body["id"], body["status"]) == (job_id, "canceled")


async def test_find_a_job_by_id(client, autumn_emulator) -> None:
    job = seed.enqueue(autumn_emulator)
    html = await (await client.get("/admin/jobs/orders")).text()
    assert '<form class="find-job" method="get" action="/admin/jobs/orders/job"' in html
    assert 'name="find"' in html
    # The find form's text is pasted from log lines: trimmed. An ``id`` never is.
    found = await client.get("/admin/jobs/orders/job", params={"find": f"  {job}\t"})
    assert found.status == 200 and f"<code>{job}</code>" in await found.text()
    assert (await client.get("/admin/jobs/orders/job", params={"id": f" {job}"})).status == 404
    # an id this source lacks is looked for in every source: here the search finds nothing
    missing = await client.get("/admin/jobs/orders/job", params={"find": "<nope>"})
    assert missing.status == 200 and missing.url.path == "/admin/search"
    text = await missing.text()
    assert "&lt;nope&gt;" in text and "<nope>" not in text and "No job matches" in text
    assert (await client.get("/admin/jobs/orders/job", params={"find": " "})).status == 404


async def test_counters_change_without_reload(client, autumn_emulator) -> None:
    first = await (await client.get("/admin/jobs/orders/counters")).text()
    assert 'data-counter="enqueued">0<' in first
    seed.enqueue(autumn_emulator)
    second = await (await client.get("/admin/jobs/orders/counters")).text()
    assert 'data-counter="enqueued">1<' in second


async def test_job_detail_page(client, autumn_emulator) -> None:
    job_id = seed.fail(
        autumn_emulator, "Traceback:\n  line 1\nValueError: nope", principal_id="p-1"
    )
    response = await client.get(f"/admin/jobs/orders/{job_id}")
    assert response.status == 200
    html = await response.text()
    assert f"<code>{job_id}</code>" in html
    assert '<pre class="error-full">Traceback:\n  line 1\nValueError: nope</pre>' in html
    assert 'Payload <span class="muted">· json</span>' in html
    assert "&#34;principal_id&#34;: &#34;p-1&#34;" in html  # payload, pretty JSON, escaped
    assert '<pre class="raw">' in html and "always_fail" in html
    assert "(stored as dead)" in html
    assert 'data-action="retry"' in html and 'data-action="discard"' in html
    assert "No operator has canceled, retried or discarded this job." in html


async def test_job_detail_after_retry_links_new_job_and_shows_audit(
    client, autumn_emulator
) -> None:
    job_id = seed.fail(autumn_emulator)
    token = await csrf_token(client)
    response = await client.post(
        f"/admin/jobs/orders/{job_id}/retry", data={"_csrf": token}, allow_redirects=False
    )
    assert response.status == 303
    html = await (await client.get(f"/admin/jobs/orders/{job_id}")).text()
    new_ids = re.findall(r"Retried job [^ ]+ as ([0-9a-f-]{36})", html)
    assert new_ids, html
    new_id = new_ids[0]
    assert f'href="/admin/jobs/orders/{new_id}"' in html  # lifecycle / audit link
    assert "status-retried" in html
    assert "anonymous@127.0.0.1" in html  # audit actor
    new_page = await client.get(f"/admin/jobs/orders/{new_id}")
    assert new_page.status == 200
    assert "status-enqueued" in await new_page.text()


async def test_unknown_source_and_job_are_404_pages(client, autumn_emulator) -> None:
    for path in (
        "/admin/jobs/nope",
        "/admin/jobs/nope/counters",
        "/admin/jobs/orders/no-such-id",
        "/admin/jobs/nope/some-id",
        "/admin/jobs/orders/" + "x" * 201,
        "/admin/does-not-exist",
    ):
        response = await client.get(path)
        assert response.status == 404, path
        assert response.content_type == "text/html"
        html = await response.text()
        assert "404 · Not found" in html
        assert "Traceback" not in html


async def test_unknown_source_name_is_escaped_in_404(client) -> None:
    response = await client.get("/admin/jobs/%3Cscript%3Ealert(1)%3C%2Fscript%3E")
    assert response.status == 404
    html = await response.text()
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


async def test_audit_page_filters_by_source_and_limit(client, autumn_emulator) -> None:
    ids = [seed.fail(autumn_emulator, f"e{i}") for i in range(3)]
    token = await csrf_token(client)
    for job_id in ids:
        await client.post(f"/admin/jobs/orders/{job_id}/discard", data={"_csrf": token})
    html = await (await client.get("/admin/audit")).text()
    assert "Audit log" in html
    positions = [html.index(job_id) for job_id in ids]
    assert positions == sorted(positions, reverse=True)  # newest first
    assert '<option value="orders">orders</option>' in html
    html = await (await client.get("/admin/audit?source=orders&limit=1")).text()
    assert ids[2] in html and ids[0] not in html
    assert '<option value="orders" selected>' in html
    assert (await client.get("/admin/audit?source=nope")).status == 404
    assert (await client.get("/admin/audit?limit=zero")).status == 200


async def test_static_files_are_served_and_cacheable(client) -> None:
    for name, kind in (
        ("htmx.min.js", "javascript"),
        ("app.js", "javascript"),
        ("app.css", "css"),
        ("htmx.LICENSE", ""),
    ):
        response = await client.get(f"/admin/static/{name}")
        assert response.status == 200, name
        assert kind in response.headers["Content-Type"]
        assert response.headers["Cache-Control"].startswith("public")
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    page = await (await client.get("/admin/jobs")).text()
    assert re.search(r'<script src="/admin/static/htmx\.min\.js\?v=[^"]+" defer></script>', page)
    assert "<script>" not in page  # no inline script anywhere


async def test_app_js_sends_csrf_header_for_htmx(client) -> None:
    js = await (await client.get("/admin/static/app.js")).text()
    assert "htmx:configRequest" in js and "X-CSRF-Token" in js


async def test_root_prefix(make_client, redis_url, autumn_emulator) -> None:
    seed.enqueue(autumn_emulator)
    client = await make_client(make_settings(redis_url, prefix=""))
    assert (await client.get("/jobs")).status == 200
    html = await (await client.get("/jobs/orders")).text()
    assert 'hx-get="/jobs/orders/counters"' in html
    assert (await client.get("/api/sources")).status == 200
    assert (await client.get("/static/app.css")).status == 200
    response = await client.get("/", allow_redirects=False)
    assert response.headers["Location"] == "/jobs"


async def test_custom_prefix(make_client, redis_url) -> None:
    client = await make_client(make_settings(redis_url, prefix="/ops/queues"))
    assert (await client.get("/ops/queues/jobs")).status == 200
    assert (await client.get("/admin/jobs")).status == 404
    assert (await client.get("/healthz")).status == 200


async def test_html_actions_redirect_with_flash(client, autumn_emulator) -> None:
    failed = seed.fail(autumn_emulator)
    waiting = seed.enqueue(autumn_emulator)
    token = await csrf_token(client, "/admin/jobs/orders")
    response = await client.post(
        f"/admin/jobs/orders/{waiting}/cancel",
        data={"_csrf": token, "next": "/admin/jobs/orders?per_page=5"},
        allow_redirects=False,
    )
    assert response.status == 303
    assert response.headers["Location"] == "/admin/jobs/orders?per_page=5"
    html = await (await client.get(response.headers["Location"])).text()
    assert f'<div class="flash flash-ok" role="status">Canceled job {waiting}.</div>' in html
    assert autumn_emulator.queue_ids() == []

    response = await client.post(
        f"/admin/jobs/orders/{failed}/discard",
        data={"_csrf": token, "next": "https://evil.example/admin/jobs"},
        allow_redirects=False,
    )
    assert response.headers["Location"] == "/admin/jobs/orders"
    html = await (await client.get("/admin/jobs/orders")).text()
    assert f"Discarded job {failed}." in html


async def test_html_action_refusal_is_an_error_flash(client, autumn_emulator) -> None:
    token = await csrf_token(client)
    response = await client.post(
        "/admin/jobs/orders/no-such-job/retry", data={"_csrf": token}, allow_redirects=False
    )
    assert response.status == 303
    assert response.headers["Location"] == "/admin/jobs/orders"
    html = await (await client.get("/admin/jobs/orders")).text()
    assert 'class="flash flash-error"' in html
    assert "Job no-such-job is not in the failed list." in html


async def test_html_action_on_unknown_source_is_404(client) -> None:
    token = await csrf_token(client)
    response = await client.post("/admin/jobs/nope/x/retry", data={"_csrf": token})
    assert response.status == 404


async def test_requests_outside_the_cookie_path_never_set_the_session(client) -> None:
    await csrf_token(client)
    for path in ("/favicon.ico", "/healthz", "/metrics"):
        response = await client.get(path)
        assert "Set-Cookie" not in response.headers, path


async def test_per_page_above_the_cap_is_clamped_and_said(client, autumn_emulator) -> None:
    seed.enqueue(autumn_emulator)
    capped = await (await client.get("/admin/jobs/orders?per_page=500")).text()
    assert "Showing 100 per page, the most." in capped
    within = await (await client.get("/admin/jobs/orders?per_page=100")).text()
    assert "per page, the most" not in within
