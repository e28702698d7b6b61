"""A source whose Redis refuses us (ACLs) or is no Redis at all, next to a healthy one: every
endpoint that gathers across sources names the broken one, none answers 500."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from markupsafe import escape

from jobbridge.dev.autumn_emulator import Autumn
from jobbridge.settings import SourceConfig
from jobbridge.text import clean
from tests.integration.test_redis_errors import NO_PERMISSIONS, READ_ONLY, acl_user, not_redis
from tests.web import seed
from tests.web.conftest import csrf_token, make_settings

pytestmark = pytest.mark.redis

#: how each broken source's reason begins, by the fixture that breaks it
KINDS = {
    "noperm": "permission denied: NOPERM this user has no permissions",
    "not_redis": "not a Redis server (invalid response",
}


@pytest.fixture(params=list(KINDS))
async def broken(request, redis_client, redis_server) -> AsyncIterator[tuple[str, str]]:
    """(URL of a broken Redis, the start of the reason it is reported unavailable)."""
    if request.param == "noperm":
        async with acl_user(redis_client, redis_server, 0, *NO_PERMISSIONS) as url:
            yield url, KINDS["noperm"]
    else:
        async with not_redis() as url:
            yield url, KINDS["not_redis"]


@pytest.fixture
async def client(make_client, redis_url, broken, autumn_emulator: Autumn):
    seed.enqueue(autumn_emulator)
    billing = SourceConfig(name="billing", system="autumn", redis_url=broken[0])
    return await make_client(make_settings(redis_url, extra_sources=(billing,)))


async def test_api_counters_name_the_broken_source(client, broken) -> None:
    response = await client.get("/admin/api/counters")
    assert response.status == 200
    rows = {row["name"]: row for row in (await response.json())["sources"]}
    assert rows["orders"]["up"] is True
    assert rows["orders"]["counters"]["enqueued"] == 1
    assert rows["billing"]["up"] is False
    assert rows["billing"]["counters"] is None
    assert rows["billing"]["error"].startswith(f"Redis unavailable ({broken[1]}")


async def test_readyz_metrics_actuator_name_the_broken_source(client) -> None:
    ready = await client.get("/readyz")
    assert ready.status == 503
    assert (await ready.json())["sources"] == {
        "orders": {"ready": True, "error": None},
        "billing": {"ready": False, "error": "unavailable"},
    }
    metrics = await client.get("/metrics")
    assert metrics.status == 200
    text = await metrics.text()
    assert 'jobbridge_source_up{source="billing",system="autumn"} 0.0' in text
    assert 'jobbridge_source_up{source="orders",system="autumn"} 1.0' in text
    assert 'jobbridge_jobs_enqueued{source="orders"} 1.0' in text
    actuator = await client.get("/actuator/jobs")
    assert actuator.status == 200
    sources = (await actuator.json())["sources"]
    assert sources["billing"] == {"system": "autumn", "up": False, "error": "unavailable"}
    assert sources["orders"]["up"] is True
    assert sources["orders"]["totals"]["enqueued"] == 1


async def test_overview_pages_show_the_broken_source_down(client) -> None:
    for path in ("/admin/jobs", "/admin/jobs/counters"):
        response = await client.get(path)
        assert response.status == 200, path
        html = await response.text()
        assert "badge-ok" in html and "badge-down" in html, path
    assert (await client.get("/admin/jobs/orders")).status == 200


async def test_every_read_across_sources_words_the_broken_source_the_same_way(
    client, broken
) -> None:
    """One read of every source (``JobService.read_every_source``), one wording: the overview,
    its refresh and the API show it whole; readiness, /metrics and /actuator/jobs tell
    unauthenticated probes the same verdict without Redis's words."""
    body = await (await client.get("/admin/api/counters")).json()
    rows = {row["name"]: row for row in body["sources"]}
    wording = rows["billing"]["error"]
    assert wording.startswith(f"Redis unavailable ({broken[1]}")
    assert (rows["billing"]["up"], rows["billing"]["slow"]) == (False, False)
    shown = str(escape(clean(wording, 300)))
    for path in ("/admin/jobs", "/admin/jobs/counters"):
        html = await (await client.get(path)).text()
        billing = html[html.index('data-source="billing"') :]
        row = billing[: billing.index("</tr>")]
        assert f'<td colspan="6" class="muted">{shown}</td>' in row, path
        assert '<span class="badge badge-down">unavailable</span>' in row, path
    overview = await (await client.get("/admin/jobs")).text()
    compared = overview[overview.index('data-kind="source" data-source="billing"') :]
    compared = compared[: compared.index("</tr>")]
    unavailable = '<span class="badge badge-down">unavailable</span>'
    assert f'<td colspan="8" class="muted">{shown} {unavailable}</td>' in compared
    ready = await (await client.get("/readyz")).json()
    assert ready["sources"]["billing"] == {"ready": False, "error": "unavailable"}
    actuator = await (await client.get("/actuator/jobs")).json()
    assert actuator["sources"]["billing"] == {
        "system": "autumn",
        "up": False,
        "error": "unavailable",
    }
    metrics = await (await client.get("/metrics")).text()
    assert 'jobbridge_source_up{source="billing",system="autumn"} 0.0' in metrics
    assert 'jobbridge_source_timed_out{source="billing"} 0.0' in metrics


async def test_the_broken_sources_own_pages_are_503_naming_it(client, broken) -> None:
    response = await client.get("/admin/api/sources/billing/snapshot")
    assert response.status == 503
    body = await response.json()
    assert body["error"] == "unavailable"
    assert body["message"].startswith(f"The Redis of source 'billing' is unavailable ({broken[1]}")
    page = await client.get("/admin/jobs/billing")
    assert page.status == 503
    html = await page.text()
    assert "The Redis of source &#39;billing&#39; is unavailable" in html
    assert "Traceback" not in html
    fragment = await client.get("/admin/jobs/billing/counters")
    assert fragment.status == 200
    assert 'data-state="unavailable"' in await fragment.text()


async def test_actions_as_a_read_only_acl_user_are_503_and_change_nothing(
    make_client, redis_client, redis_server, redis_url, autumn_emulator: Autumn
) -> None:
    job = seed.fail(autumn_emulator)
    db = int(redis_url.rsplit("/", 1)[1])
    async with acl_user(redis_client, redis_server, db, *READ_ONLY) as url:
        client = await make_client(make_settings(url))
        counters = await (await client.get("/admin/api/counters")).json()
        assert counters["sources"][0]["counters"]["failed_7d"] == 1
        token = await csrf_token(client)
        response = await client.post(
            f"/admin/api/sources/orders/jobs/{job}/retry", headers={"X-CSRF-Token": token}
        )
        assert response.status == 503
        body = await response.json()
        assert body["error"] == "unavailable"
        assert "permission denied: NOPERM" in body["message"]
    assert autumn_emulator.dead_record_raw(job) is not None
