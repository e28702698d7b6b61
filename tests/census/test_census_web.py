"""The census over HTTP: the API starts one and reports its progress and counts, any signed-in
role may start one (read-only mode too), the source page's card starts one from a form and
shows the counts, and queue names are escaped everywhere."""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import quote

import pytest

from jobbridge.settings import AuthConfig, ServerConfig, Settings, SourceConfig
from tests.census.seed import seed_rq_queue, truth
from tests.web.conftest import (
    OPERATOR_TOKEN,
    VIEWER_TOKEN,
    ClientFactory,
    auth_config,
    bearer,
    csrf_token,
)

pytestmark = pytest.mark.redis

HOSTILE = '<img src=x onerror=alert(1)>/"q'


def settings(redis_url: str, auth: AuthConfig | None = None, **server: Any) -> Settings:
    return Settings(
        server=ServerConfig(cache_ttl_s=0.0, **server),
        sources=(SourceConfig(name="rq", system="rq", redis_url=redis_url),),
        auth=auth or AuthConfig(),
    )


def census_path(queue: str, source: str = "rq") -> str:
    return f"/admin/api/sources/{source}/queues/{quote(queue, safe='')}/census"


async def wait_listed(
    client, queue: str, headers: dict[str, str] | None = None, source: str = "rq"
) -> None:
    """Wait until the source's counters list the queue (RQ's queues are discovered in the
    background after the app starts)."""
    deadline = time.monotonic() + 30
    while True:
        path = f"/admin/api/sources/{source}/snapshot"
        response = await client.get(path, headers=headers or {})
        body = await response.json()
        if queue in [q["name"] for q in body["counters"]["queues"]]:
            return
        assert time.monotonic() < deadline, body["counters"]
        await asyncio.sleep(0.05)


async def wait_api_done(client, path: str, headers: dict[str, str]) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        response = await client.get(path, headers=headers)
        assert response.status == 200, await response.text()
        body: dict[str, Any] = await response.json()
        if body["state"] != "running":
            return body
        assert time.monotonic() < deadline, body
        await asyncio.sleep(0.05)


async def test_the_api_starts_a_census_then_reports_progress_and_counts(
    make_client: ClientFactory, redis_url, sync_redis
) -> None:
    seed_rq_queue(sync_redis, 5_000, queue="team/a b")
    client = await make_client(settings(redis_url, auth=auth_config()))
    ops = bearer(OPERATOR_TOKEN)
    await wait_listed(client, "team/a b", ops)
    path = census_path("team/a b")
    response = await client.get(path, headers=ops)
    assert response.status == 404 and "POST here" in (await response.json())["message"]
    response = await client.post(path, headers=ops)
    assert response.status == 202, await response.text()
    started = await response.json()
    assert started["state"] == "running" and started["total_at_start"] == 5_000
    assert 0 <= started["read"] <= 5_000
    body = await wait_api_done(client, path, ops)
    assert body["state"] == "done" and body["percent"] == 100
    assert {n["name"]: n["count"] for n in body["names"]} == truth(5_000)
    assert body["principals"] is None and body["finished_at"]
    # a queue the source does not have, a source that does not exist, no credentials
    response = await client.post(census_path("nope"), headers=ops)
    assert response.status == 404
    response = await client.post(census_path("team/a b", source="other"), headers=ops)
    assert response.status == 404
    response = await client.post(path)
    assert response.status == 401


async def test_a_viewer_may_start_a_census_in_read_only_mode(
    make_client: ClientFactory, redis_url, sync_redis
) -> None:
    seed_rq_queue(sync_redis, 1_500)
    theirs = set(sync_redis.keys("*"))
    client = await make_client(settings(redis_url, auth=auth_config(), read_only=True))
    viewer = bearer(VIEWER_TOKEN)
    await wait_listed(client, "deep", viewer)
    response = await client.post(census_path("deep"), headers=viewer)
    assert response.status == 202, await response.text()
    body = await wait_api_done(client, census_path("deep"), viewer)
    assert {n["name"]: n["count"] for n in body["names"]} == truth(1_500)
    # what it wrote: only jobbridge's own keys (its result; the lease is given up)
    assert sync_redis.llen("rq:queue:deep") == 1_500
    assert {k for k in sync_redis.keys("*") if not k.startswith(b"jobbridge:")} == theirs
    assert sync_redis.keys("jobbridge:census:*") == [b"jobbridge:census:rq:deep:result"]


async def test_the_source_page_card_starts_a_census_and_shows_its_counts(
    make_client: ClientFactory, redis_url, sync_redis
) -> None:
    seed_rq_queue(sync_redis, 2_000, queue=HOSTILE)
    client = await make_client(settings(redis_url))
    await wait_listed(client, HOSTILE)
    page = await (await client.get("/admin/jobs/rq")).text()
    assert 'id="census"' in page and 'hx-get="/admin/census/rq"' in page
    card = await client.get("/admin/census/rq")
    html = await card.text()
    assert card.status == 200 and "Count by name" in html
    assert HOSTILE not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "hx-get" not in html.split("<header", 1)[0]  # nothing runs: no polling
    # without the form's token, nothing starts
    response = await client.post("/admin/census/rq", data={"queue": HOSTILE})
    assert response.status == 403
    token = await csrf_token(client, "/admin/jobs/rq")
    response = await client.post(
        "/admin/census/rq", data={"queue": HOSTILE, "_csrf": token}, allow_redirects=False
    )
    assert response.status == 303 and response.headers["Location"] == "/admin/jobs/rq#census"
    deadline = time.monotonic() + 60
    while True:
        html = await (await client.get("/admin/census/rq")).text()
        if 'data-state="done"' in html:
            break
        assert 'data-state="running"' in html and "<progress" in html
        assert "every " in html.split("<header", 1)[0]  # polled while it runs
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    assert '<code>app.tasks.send_email</code></td><td class="num">1000<' in html
    assert "Count again" in html
    # the htmx form answers with the card itself
    response = await client.post(
        "/admin/census/rq",
        data={"queue": HOSTILE, "_csrf": token},
        headers={"HX-Request": "true", "X-CSRF-Token": token},
    )
    assert response.status == 200 and 'id="census"' in await response.text()


async def test_a_viewer_redis_user_cannot_run_a_census_and_is_told_why(
    make_client: ClientFactory, redis_url, sync_redis
) -> None:
    from jobbridge.acl import acl_rules

    seed_rq_queue(sync_redis, 100)
    source = SourceConfig(name="rq", system="rq", redis_url=redis_url)
    user = "census-viewer"
    sync_redis.execute_command(
        "ACL", "SETUSER", user, "reset", "on", ">pw", *acl_rules([source], "viewer")
    )
    try:
        url = redis_url.replace("redis://", f"redis://{user}:pw@")
        client = await make_client(settings(url, auth=auth_config()))
        await wait_listed(client, "deep", bearer(OPERATOR_TOKEN))
        response = await client.post(census_path("deep"), headers=bearer(OPERATOR_TOKEN))
        body = await response.json()
        await client.close()
        assert response.status == 503, body
        assert (
            body["error"] == "unavailable" and "permissions to run the 'evalsha'" in body["message"]
        )
        assert sync_redis.keys("jobbridge:census:*") == []
    finally:
        sync_redis.execute_command("ACL", "DELUSER", user)


async def test_an_operator_redis_user_runs_a_census(
    make_client: ClientFactory, redis_url, sync_redis
) -> None:
    from jobbridge.acl import acl_rules

    seed_rq_queue(sync_redis, 2_500)
    source = SourceConfig(name="rq", system="rq", redis_url=redis_url)
    user = "census-operator"
    sync_redis.execute_command(
        "ACL", "SETUSER", user, "reset", "on", ">pw", *acl_rules([source], "operator")
    )
    try:
        url = redis_url.replace("redis://", f"redis://{user}:pw@")
        client = await make_client(settings(url, auth=auth_config()))
        ops = bearer(OPERATOR_TOKEN)
        await wait_listed(client, "deep", ops)
        response = await client.post(census_path("deep"), headers=ops)
        assert response.status == 202, await response.text()
        body = await wait_api_done(client, census_path("deep"), ops)
        await client.close()
        assert body["state"] == "done", body
        assert {n["name"]: n["count"] for n in body["names"]} == truth(2_500)
    finally:
        sync_redis.execute_command("ACL", "DELUSER", user)
