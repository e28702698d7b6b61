"""Hostile data and faults through HTTP (issue 6): no 5xx, the wrong job never acted on, memory
bounded, and a quick Redis restart costs no request."""

from __future__ import annotations

import asyncio
import json

import pytest

from jobbridge.adapters.autumn.keys import entry_id
from jobbridge.dev.private_redis import start_redis_server
from jobbridge.offload import digest_now
from jobbridge.settings import ServerConfig, Settings, SourceConfig
from jobbridge.web import keys
from tests.autumn.autumn_fixtures import failing_job, queued_decoy
from tests.web.conftest import csrf_token

pytestmark = pytest.mark.redis

DEEP = "[" * 10_000 + "]" * 10_000


async def test_the_decoys_cancel_form_posts_the_decoy(client, autumn_emulator) -> None:
    victim = queued_decoy(autumn_emulator)

    html = await (await client.get("/admin/jobs/orders")).text()
    assert 'action="/admin/jobs/orders/decoy/cancel"' in html
    token = await csrf_token(client)
    response = await client.post(
        "/admin/jobs/orders/decoy/cancel", data={"_csrf": token}, allow_redirects=False
    )
    assert response.status == 303
    assert autumn_emulator.queue_ids() == [victim]


async def test_deep_json_everywhere_is_never_a_500(client, autumn_emulator) -> None:
    job_id = failing_job(autumn_emulator)
    raw = autumn_emulator.dead_record_raw(job_id)
    deep = raw.replace('"payload":{"message":"boom"}', f'"payload":{DEEP}')
    autumn_emulator.client.delete(autumn_emulator.dead_key)
    autumn_emulator.client.lpush(autumn_emulator.dead_key, deep)
    autumn_emulator.client.set(autumn_emulator.dead_record_key(job_id), deep)
    autumn_emulator.client.lpush("jobbridge:audit", '{"at_ms":' + DEEP + "}")
    autumn_emulator.client.set(f"jobbridge:autumn:autumn:jobs:lifecycle:{job_id}x", DEEP)

    for path in (
        "/admin/jobs",
        "/admin/jobs/counters",
        "/admin/jobs/orders",
        f"/admin/jobs/orders/{job_id}",
        f"/admin/jobs/orders/{job_id}x",
        "/admin/api/sources/orders/snapshot",
        f"/admin/api/sources/orders/jobs/{job_id}",
        "/admin/api/counters",
        "/admin/audit",
        "/admin/api/audit",
        "/metrics",
        "/actuator/jobs",
    ):
        response = await client.get(path)
        assert response.status < 500, (path, response.status)
    metrics = await (await client.get("/metrics")).text()
    assert 'jobbridge_source_up{source="orders",system="autumn"} 1.0' in metrics
    headers = {"X-CSRF-Token": await csrf_token(client)}
    retry = await client.post(f"/admin/api/sources/orders/jobs/{job_id}/retry", headers=headers)
    assert retry.status == 422 and (await retry.json())["error"] == "corrupt"
    discard = f"/admin/api/sources/orders/jobs/{job_id}/discard"
    assert (await client.post(discard, headers=headers)).status == 200


async def test_an_entry_known_by_its_digest_is_discarded_through_its_form(
    client, autumn_emulator
) -> None:
    entry = json.dumps({"error": "invalid job payload", "raw_payload": "{"})
    autumn_emulator.client.lpush(autumn_emulator.dead_key, entry)
    job_id = entry_id(digest_now(entry.encode()))
    html = await (await client.get("/admin/jobs/orders")).text()
    assert f'action="/admin/jobs/orders/{job_id.replace(":", "%3A")}/discard"' in html
    assert (await client.get(f"/admin/jobs/orders/{job_id}")).status == 200
    token = await csrf_token(client)
    response = await client.post(
        f"/admin/jobs/orders/{job_id}/discard", data={"_csrf": token}, allow_redirects=False
    )
    assert response.status == 303 and autumn_emulator.dead_raw() == []


async def test_a_job_id_that_is_not_utf8_opens_and_cancels(client, autumn_emulator) -> None:
    job_id = autumn_emulator.enqueue("noop", {})
    odd = b"odd-\xff"
    record = json.loads(autumn_emulator.record_raw(job_id))
    record["id"] = "odd-?"
    autumn_emulator.client.set(b"autumn:jobs:record:" + odd, json.dumps(record))
    autumn_emulator.client.lpush(autumn_emulator.queue_key("default"), odd)

    html = await (await client.get("/admin/jobs/orders")).text()
    link = "/admin/jobs/orders/job?id=odd-%FF"
    assert f'href="{link}"' in html
    assert (await client.get(link)).status == 200
    token = await csrf_token(client)
    response = await client.post(
        "/admin/jobs/orders/job/cancel?id=odd-%FF", data={"_csrf": token}, allow_redirects=False
    )
    assert response.status == 303
    assert autumn_emulator.client.lrange(autumn_emulator.queue_key("default"), 0, -1) == [
        job_id.encode()
    ]


@pytest.mark.slow
async def test_distinct_queries_do_not_grow_the_read_cache(
    make_client, autumn_emulator, redis_url
) -> None:
    for n in range(30):
        failing_job(autumn_emulator, payload={"n": n})
    client = await make_client(cache_ttl_s=30.0)
    service = client.server.app[keys.SERVICE]
    for page in range(1, 301):
        response = await client.get(f"/admin/jobs/orders?completed_page={page}")
        assert response.status == 200
    assert len(service.cache) <= service.cache.max_entries


@pytest.mark.slow
async def test_expired_reads_are_dropped_while_idle(make_client, autumn_emulator) -> None:
    client = await make_client(cache_ttl_s=0.1)
    service = client.server.app[keys.SERVICE]
    for page in range(1, 11):
        assert (await client.get(f"/admin/api/sources/orders/snapshot?failed_page={page}")).ok
    assert len(service.cache) > 0
    await asyncio.sleep(0.5)
    assert len(service.cache) == 0


@pytest.mark.slow
async def test_a_quick_redis_restart_costs_no_request(make_client, redis_server) -> None:
    server = start_redis_server(binary=redis_server.binary)
    try:
        settings = Settings(
            server=ServerConfig(cache_ttl_s=0),
            sources=(SourceConfig(name="orders", system="autumn", redis_url=server.url(0)),),
        )
        client = await make_client(settings)
        paths = ["/admin/api/counters", "/admin/api/sources/orders/snapshot", "/admin/jobs/orders"]
        # Fill the pool with idle connections.
        for response in await asyncio.gather(*(client.get(p) for p in paths * 8)):
            assert response.status == 200
        server.stop()
        server.restart()
        statuses = [r.status for r in await asyncio.gather(*(client.get(p) for p in paths * 8))]
        assert statuses == [200] * 24
    finally:
        server.stop()
