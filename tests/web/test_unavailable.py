"""A source whose Redis is down: 503s naming it, counters saying so, and recovery."""

from __future__ import annotations

import asyncio

import pytest

from jobbridge.dev.autumn_emulator import Autumn
from jobbridge.dev.private_redis import start_redis_server
from jobbridge.settings import ServerConfig, Settings, SourceConfig
from tests.web import seed
from tests.web.conftest import csrf_token, make_settings


@pytest.fixture
async def down(make_client, dead_url):
    settings = Settings(
        server=ServerConfig(cache_ttl_s=0),
        sources=(SourceConfig(name="orders", system="autumn", redis_url=dead_url),),
    )
    return await make_client(settings)


async def test_source_page_is_503_naming_the_source(down) -> None:
    response = await down.get("/admin/jobs/orders")
    assert response.status == 503
    html = await response.text()
    assert "503 · Unavailable" in html
    assert "The Redis of source &#39;orders&#39; is unavailable" in html
    assert "Traceback" not in html
    # The page polls the source and reloads itself once Redis answers again.
    assert 'hx-get="/admin/jobs/orders/counters?reload=1"' in html
    assert 'hx-trigger="load, every 2s"' in html


async def test_counters_fragment_says_unavailable_and_keeps_polling(down) -> None:
    response = await down.get("/admin/jobs/orders/counters")
    assert response.status == 200  # a normal state for the fragment: htmx swaps it in
    html = await response.text()
    assert 'data-state="unavailable"' in html
    assert '<span class="value unavailable">unavailable</span>' in html
    assert 'hx-get="/admin/jobs/orders/counters?reload=1"' in html
    assert 'hx-trigger="every 2s"' in html
    assert "HX-Refresh" not in response.headers


async def test_api_is_503_json(down) -> None:
    for path in (
        "/admin/api/sources/orders/snapshot",
        "/admin/api/sources/orders/jobs/x",
        "/admin/api/audit?source=orders",
    ):
        response = await down.get(path)
        assert response.status == 503, path
        body = await response.json()
        assert body["error"] == "unavailable"
        assert "orders" in body["message"]


async def test_actions_are_503(down) -> None:
    token = await csrf_token(down)
    api = await down.post("/admin/api/sources/orders/jobs/x/retry", headers={"X-CSRF-Token": token})
    assert api.status == 503
    assert (await api.json())["error"] == "unavailable"
    page = await down.post("/admin/jobs/orders/x/cancel", data={"_csrf": token})
    assert page.status == 503
    assert "orders" in await page.text()


async def test_job_page_is_503(down) -> None:
    response = await down.get("/admin/jobs/orders/some-id")
    assert response.status == 503


async def test_overview_and_counters_show_the_source_down(down) -> None:
    html = await (await down.get("/admin/jobs")).text()
    assert '<span class="badge badge-down">unavailable</span>' in html
    fragment = await (await down.get("/admin/jobs/counters")).text()
    assert "badge-down" in fragment
    body = await (await down.get("/admin/api/counters")).json()
    assert body["sources"][0]["up"] is False
    assert body["sources"][0]["counters"] is None
    assert "unavailable" in body["sources"][0]["error"]


async def test_readyz_metrics_actuator_when_down(down) -> None:
    ready = await down.get("/readyz")
    assert ready.status == 503
    assert await ready.json() == {
        "ready": False,
        "sources": {"orders": {"ready": False, "error": "unavailable"}},
    }
    assert (await down.get("/healthz")).status == 200
    metrics = await (await down.get("/metrics")).text()
    assert 'jobbridge_source_up{source="orders",system="autumn"} 0.0' in metrics
    actuator = await (await down.get("/actuator/jobs")).json()
    assert actuator["sources"]["orders"] == {
        "system": "autumn",
        "up": False,
        "error": "unavailable",
    }


async def test_one_source_down_does_not_hide_the_others(
    make_client, redis_url, dead_url, autumn_emulator: Autumn
) -> None:
    seed.enqueue(autumn_emulator)
    broken = SourceConfig(name="billing", system="autumn", redis_url=dead_url)
    client = await make_client(make_settings(redis_url, extra_sources=(broken,)))
    html = await (await client.get("/admin/jobs")).text()
    assert "badge-ok" in html and "badge-down" in html
    assert (await client.get("/admin/jobs/orders")).status == 200
    assert (await client.get("/admin/jobs/billing")).status == 503
    ready = await (await client.get("/readyz")).json()
    assert ready["sources"] == {
        "orders": {"ready": True, "error": None},
        "billing": {"ready": False, "error": "unavailable"},
    }


@pytest.mark.slow
async def test_page_recovers_when_redis_returns(make_client, redis_server) -> None:
    server = start_redis_server(binary=redis_server.binary)
    try:
        url = server.url(0)
        settings = Settings(
            server=ServerConfig(cache_ttl_s=0),
            sources=(SourceConfig(name="orders", system="autumn", redis_url=url),),
        )
        client = await make_client(settings)
        assert (await client.get("/admin/jobs/orders")).status == 200
        server.stop()
        assert (await client.get("/admin/jobs/orders")).status == 503
        fragment = await client.get("/admin/jobs/orders/counters?reload=1")
        assert 'data-state="unavailable"' in await fragment.text()
        assert "HX-Refresh" not in fragment.headers
        server.restart()
        for _ in range(50):
            fragment = await client.get("/admin/jobs/orders/counters?reload=1")
            if 'data-state="ok"' in await fragment.text():
                break
            await asyncio.sleep(0.1)
        assert fragment.headers["HX-Refresh"] == "true"
        assert (await client.get("/admin/jobs/orders")).status == 200
    finally:
        server.stop()
