"""The app of ``serve --redis``, started before Celery was there, serves the Celery source
that the first real message creates, without a restart; sources named in a config file are
never detected again."""

from __future__ import annotations

import asyncio
import logging

import pytest
from aiohttp.test_utils import TestClient, TestServer

from jobbridge.settings import ServerConfig, Settings, SourceConfig
from jobbridge.sources import resolve_sources
from jobbridge.web import keys
from jobbridge.web.app import create_app
from tests.celery.celery_support import send
from tests.rq.rq_support import async_wait_for

pytestmark = pytest.mark.redis

#: seconds between background detections here (the default is 30)
INTERVAL_S = 0.2


async def test_celery_messages_sent_after_start_up_make_a_source(
    celery_app, redis_url, caplog
) -> None:
    caplog.set_level(logging.WARNING)
    server = ServerConfig(detect_interval_s=INTERVAL_S)
    settings, _ = await resolve_sources(Settings(server=server, detect_url=redis_url))
    assert [s.name for s in settings.sources] == ["autumn"]
    app = create_app(settings)
    async with TestClient(TestServer(app)) as client:
        service = app[keys.SERVICE]
        await asyncio.to_thread(send, celery_app, "add", 2, 3)
        await async_wait_for(lambda: "celery" in service.adapters, "the celery source", 20)
        reply = await client.get("/admin/api/sources/celery/snapshot")
        assert reply.status == 200
        snapshot = await reply.json()
        assert snapshot["counters"]["enqueued"] == 1, snapshot["counters"]
        listed = await (await client.get("/admin/api/sources")).json()
        assert [s["name"] for s in listed["sources"]] == ["autumn", "celery"]
        # later rounds find it again and add nothing
        rounds = service._redetecting is not None
        await asyncio.sleep(INTERVAL_S * 5)
        assert rounds and list(service.adapters) == ["autumn", "celery"]
    said = [r.getMessage() for r in caplog.records if "detected celery" in r.getMessage()]
    assert len(said) == 1 and "now watching source celery" in said[0], said


async def test_configured_sources_are_never_detected_again(celery_app, redis_url) -> None:
    mine = SourceConfig(name="mine", system="rq", redis_url=redis_url)
    settings = Settings(server=ServerConfig(detect_interval_s=INTERVAL_S), sources=(mine,))
    app = create_app(settings)
    async with TestClient(TestServer(app)):
        service = app[keys.SERVICE]
        await asyncio.to_thread(send, celery_app, "add", 2, 3)
        await asyncio.sleep(INTERVAL_S * 5)
        assert list(service.adapters) == ["mine"] and service._redetecting is None
