"""jobbridge's side of the Celery tests: an app with one Celery source, and waits on its API."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from jobbridge.settings import AuthConfig, ServerConfig, Settings, SourceConfig
from jobbridge.web.app import create_app
from tests.rq.rq_support import OPERATOR, PREFIX, RqApi

SOURCE = "celery"


def celery_settings(
    redis_url: str,
    *,
    results_url: str | None = None,
    queues: tuple[str, ...] | None = None,
    read_only: bool = False,
) -> Settings:
    """Settings with one Celery source on the test Redis, the operator token, no cache."""
    source = SourceConfig(
        name=SOURCE,
        system="celery",
        redis_url=redis_url,
        result_backend_url=results_url,
        queues=queues,
    )
    return Settings(
        server=ServerConfig(prefix=PREFIX, cache_ttl_s=0.0, read_only=read_only),
        sources=(source,),
        auth=AuthConfig(tokens=(OPERATOR,), session_secret="celery-test-session-secret-01234567"),
    )


@asynccontextmanager
async def celery_api(redis_url: str, **settings: Any) -> AsyncIterator[RqApi]:
    """The real app (its own service and background work, as in production) under test."""
    app = create_app(celery_settings(redis_url, **settings))
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield RqApi(client, source=SOURCE)
    finally:
        await client.close()


async def snapshot(api: RqApi, **params: int | str) -> dict[str, Any]:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    status, body = await api.get(f"/api/sources/{api.source}/snapshot?{query}")
    assert status == 200, body
    return body  # type: ignore[no-any-return]


async def wait_row(
    api: RqApi, list_name: str, task_id: str, timeout: float = 15.0, **params: int | str
) -> dict[str, Any]:
    """The row of a task once it shows on the first page of a list (per_page 100)."""
    deadline = time.monotonic() + timeout
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        body = await snapshot(api, per_page=100, **params)
        for item in body["lists"][list_name]["items"]:
            if item["id"] == task_id:
                return item  # type: ignore[no-any-return]
        await asyncio.sleep(0.2)
    shown = {name: [i["id"] for i in page["items"]] for name, page in body["lists"].items()}
    raise AssertionError(f"task {task_id} not in {list_name} after {timeout}s: {shown}")


def ids(body: dict[str, Any], list_name: str) -> list[str]:
    return [item["id"] for item in body["lists"][list_name]["items"]]
