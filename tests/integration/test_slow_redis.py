"""Class 5 of issue 15: one slow Redis stalls no other source.

Two real redis-server processes: "healthy" sources on one, "frozen" ones on the other. The
second is frozen (``DEBUG SLEEP``, then separately ``SIGSTOP``) while the overview and every
source's counters are polled with several requests in flight. The healthy sources must answer
in their usual time (with one read limit shared across sources they took 2.9 s and 5 s), the
frozen ones must show as slow ("timed out after 1 s") on every surface, no connection may be
pooled with a reply still due, and queue discovery must go on for the healthy server.
"""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
import redis
import redis.asyncio
from aiohttp.test_utils import TestClient, TestServer
from redis.backoff import NoBackoff
from redis.retry import Retry
from rq import Queue

from jobbridge.adapters.autumn.adapter import AutumnAdapter
from jobbridge.dev.autumn_emulator import Autumn
from jobbridge.dev.private_redis import RedisServer, start_redis_server
from jobbridge.errors import SourceTimedOut
from jobbridge.read_limits import ReadLimits, server_of
from jobbridge.settings import ServerConfig, Settings, SourceConfig
from jobbridge.sources import connect
from jobbridge.web.app import create_app
from tests.celery.celery_support import meta_key, realistic_meta
from tests.web import seed

pytestmark = [pytest.mark.redis, pytest.mark.slow]

#: how long the neighbour stays frozen; every bound below is a fraction of it
FREEZE_S = 3.0
#: the read timeout the app runs with here (the default is 2 s)
READ_TIMEOUT_S = 1.0
#: the healthy sources' slowest answer allowed while the neighbour is frozen: with one limit
#: shared across sources they waited for the frozen reads (2.9 s, or the 5 s socket timeout)
HEALTHY_BOUND_S = FREEZE_S / 3
MODES = ("debug_sleep", "sigstop")


@pytest.fixture(scope="module")
def neighbour(redis_server: RedisServer) -> Iterator[RedisServer]:
    """A second redis-server, started as the first is, that may be frozen."""
    try:  # Redis 7 refuses DEBUG unless allowed; 6.2 has no such option and allows it
        server = start_redis_server(
            binary=redis_server.binary, extra_args=("--enable-debug-command", "local")
        )
    except RuntimeError:
        server = start_redis_server(binary=redis_server.binary)
    try:
        yield server
    finally:
        os.kill(server.process.pid, signal.SIGCONT)
        server.stop()


@pytest.fixture
def neighbour_url(neighbour: RedisServer) -> Iterator[str]:
    url = neighbour.url(1)
    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
        yield url
        client.flushdb()
    finally:
        client.close()


def _debug_sleep(port: int, seconds: float) -> None:
    client = redis.Redis(port=port, socket_timeout=seconds + 30)
    try:
        client.execute_command("DEBUG", "SLEEP", seconds)
    finally:
        client.close()


def _wait_asleep(port: int) -> None:
    """Return once the server has stopped answering (its DEBUG SLEEP has begun)."""
    # No retries: redis-py's default would retry the timeout until the sleep was over.
    client = redis.Redis(port=port, socket_timeout=0.1, retry=Retry(NoBackoff(), 0))
    deadline = time.monotonic() + 10
    try:
        while time.monotonic() < deadline:
            try:
                client.ping()
            except redis.exceptions.TimeoutError:
                return
            time.sleep(0.01)
        raise AssertionError("the server never went to sleep")
    finally:
        client.close()


@asynccontextmanager
async def frozen(server: RedisServer, mode: str, seconds: float) -> AsyncIterator[float]:
    """Freeze ``server`` for ``seconds``; yields when the freeze will end (monotonic)."""
    if mode == "debug_sleep":
        sleeper = threading.Thread(target=_debug_sleep, args=(server.port, seconds))
        started = time.monotonic()
        sleeper.start()
        await asyncio.to_thread(_wait_asleep, server.port)
        try:
            yield started + seconds
        finally:
            await asyncio.to_thread(sleeper.join)
        return
    until = time.monotonic() + seconds
    os.kill(server.process.pid, signal.SIGSTOP)
    try:
        yield until
        await asyncio.sleep(max(0.0, until - time.monotonic()))
    finally:
        os.kill(server.process.pid, signal.SIGCONT)


def settings(healthy_url: str, frozen_url: str) -> Settings:
    return Settings(
        server=ServerConfig(cache_ttl_s=0.0, read_timeout_s=READ_TIMEOUT_S),
        sources=(
            # Discovered queues: discovery on this server must go on meanwhile.
            SourceConfig(name="healthy", system="autumn", redis_url=healthy_url),
            SourceConfig(name="healthy-rq", system="rq", redis_url=healthy_url),
            # Its result index works in the background: it must go on meanwhile too.
            SourceConfig(
                name="healthy-celery", system="celery", redis_url=healthy_url, queues=("celery",)
            ),
            SourceConfig(name="frozen", system="autumn", redis_url=frozen_url),
            SourceConfig(name="frozen-rq", system="rq", redis_url=frozen_url),
        ),
    )


def fill(url: str) -> None:
    """Three waiting Autumn jobs and two waiting RQ jobs, so counts can be checked."""
    client = redis.Redis.from_url(url)
    try:
        autumn = Autumn(client)
        for _ in range(3):
            seed.enqueue(autumn)
        for _ in range(2):
            Queue("default", connection=client).enqueue("os.getcwd")
    finally:
        client.close()


@pytest.fixture
async def client(redis_url: str, neighbour_url: str) -> AsyncIterator[TestClient]:
    fill(redis_url)
    fill(neighbour_url)
    test_client = TestClient(TestServer(create_app(settings(redis_url, neighbour_url))))
    await test_client.start_server()
    try:
        yield test_client
    finally:
        await test_client.close()


#: what viewers poll: the overview, its counters, every source's counters fragment
POLLED = (
    "/admin/jobs",
    "/admin/jobs/counters",
    "/admin/api/counters",
    "/admin/jobs/frozen/counters",
    "/admin/jobs/frozen-rq/counters",
    "/admin/jobs/healthy/counters",
    "/admin/api/sources/frozen/snapshot",
)


async def poll(client: TestClient, path: str, until: float) -> list[int]:
    statuses = []
    while time.monotonic() < until:
        response = await client.get(path)
        await response.read()
        statuses.append(response.status)
    return statuses


async def text(client: TestClient, path: str) -> str:
    return await (await client.get(path)).text()


async def counts(client: TestClient) -> dict[str, Any]:
    body = await (await client.get("/admin/api/counters")).json()
    return {row["name"]: row for row in body["sources"]}


@pytest.mark.parametrize("mode", MODES)
async def test_one_slow_redis_stalls_no_other_source(
    client: TestClient, neighbour: RedisServer, redis_url: str, mode: str
) -> None:
    before = await counts(client)
    assert {name: row["counters"]["enqueued"] for name, row in before.items()} == {
        "healthy": 3,
        "healthy-rq": 2,
        "frozen": 3,
        "frozen-rq": 2,
        "healthy-celery": 0,
    }
    healthy_latencies: list[float] = []
    async with frozen(neighbour, mode, FREEZE_S) as until:
        started = time.monotonic()
        # Two of each in flight at once, for the whole freeze.
        pollers = [
            asyncio.create_task(poll(client, path, until)) for path in POLLED for _ in range(2)
        ]
        await asyncio.sleep(0.2)  # the frozen server's read slots are all taken by now
        # Read while the freeze has more than the read timeout left: each surface says "slow".
        surfaces = asyncio.gather(
            counts(client),
            text(client, "/admin/jobs/counters"),
            text(client, "/admin/jobs/frozen/counters"),
            client.get("/readyz"),
            text(client, "/metrics"),
        )
        # A queue created now must be discovered, and a result published now must be
        # indexed, while the neighbour is still frozen.
        healthy = redis.Redis.from_url(redis_url)
        Autumn(healthy).enqueue("noop", None, queue="late")
        meta = realistic_meta("late-result", "SUCCESS", datetime.now(tz=UTC))
        healthy.set(meta_key("late-result"), meta)
        healthy.publish(meta_key("late-result"), meta)
        healthy.close()
        discovered_after: float | None = None
        indexed_after: float | None = None
        while time.monotonic() < until - 0.2:
            for path in (
                "/admin/api/sources/healthy/snapshot",
                "/admin/api/sources/healthy-rq/snapshot",
            ):
                t0 = time.monotonic()
                response = await client.get(path)
                body = await response.json()
                healthy_latencies.append(time.monotonic() - t0)
                assert response.status == 200, body
                names = {q["name"] for q in body["counters"]["queues"]}
                if discovered_after is None and "late" in names:
                    discovered_after = time.monotonic() - started
            if indexed_after is None:
                response = await client.get("/admin/api/sources/healthy-celery/snapshot")
                body = await response.json()
                assert response.status == 200, body
                if "late-result" in {j["id"] for j in body["lists"]["completed"]["items"]}:
                    indexed_after = time.monotonic() - started
            await asyncio.sleep(0.02)
        during, overview, fragment, ready, metrics = await surfaces
        ready_body = await ready.json()
        statuses = await asyncio.gather(*pollers)

    assert max(healthy_latencies) < HEALTHY_BOUND_S, (
        f"healthy snapshots while {mode}: max {max(healthy_latencies):.2f} s, "
        f"median {statistics.median(healthy_latencies):.3f} s"
    )
    assert len(healthy_latencies) >= 4
    assert discovered_after is not None and discovered_after < FREEZE_S - 0.3
    assert indexed_after is not None and indexed_after < FREEZE_S - 0.3
    # The frozen sources time out, and say so; nothing failed with a 500.
    assert all(s in (200, 503) for polled in statuses for s in polled)
    for name in ("frozen", "frozen-rq"):
        assert during[name]["up"] is False and during[name]["slow"] is True, during[name]["error"]
        assert during[name]["error"] == f"Redis slow (timed out after {READ_TIMEOUT_S:g} s)"
    for name in ("healthy", "healthy-rq", "healthy-celery"):
        assert during[name]["up"] is True and during[name]["slow"] is False
    frozen_row = overview[overview.index('data-source="frozen"') :]
    frozen_row = frozen_row[: frozen_row.index("</tr>")]
    assert "timed out after 1 s" in frozen_row and ">slow</span>" in frozen_row
    # The overview words it as the API does (one read of every source, one wording).
    assert f">Redis slow (timed out after {READ_TIMEOUT_S:g} s)</td>" in frozen_row
    assert 'data-state="slow"' in fragment and "is slow: it timed out after 1 s" in fragment
    assert ready.status == 503
    assert ready_body["sources"]["frozen"] == {"ready": False, "error": "timed out after 1 s"}
    assert ready_body["sources"]["healthy"] == {"ready": True, "error": None}
    assert 'jobbridge_source_timed_out{source="frozen"} 1.0' in metrics
    assert 'jobbridge_source_timed_out{source="healthy"} 0.0' in metrics
    assert 'jobbridge_source_up{source="frozen",system="autumn"} 0.0' in metrics

    # Thawed: the connections cut short were closed, not pooled with a reply still due, so
    # the frozen sources' pipelined counters are exactly right again, read after read.
    for _ in range(5):
        after = await counts(client)
        assert after["frozen"]["counters"]["enqueued"] == 3, after["frozen"]
        assert after["frozen-rq"]["counters"]["enqueued"] == 2, after["frozen-rq"]


@pytest.mark.parametrize("mode", MODES)
async def test_a_read_cut_short_leaves_no_reply_in_the_pool(
    neighbour: RedisServer, neighbour_url: str, mode: str
) -> None:
    plain = redis.Redis.from_url(neighbour_url)
    plain.mset({f"key-{i}": f"value-{i}" for i in range(8)})
    plain.close()
    client = redis.asyncio.Redis.from_url(neighbour_url)
    adapter = AutumnAdapter(client, source="frozen")
    limits = ReadLimits(timeout_s=0.3)
    try:
        assert await client.get("key-0") == b"value-0"  # a pooled connection exists

        async def pipelined() -> list[Any]:
            pipe = client.pipeline(transaction=False)
            pipe.get("key-1")
            pipe.get("key-2")
            return await pipe.execute()  # type: ignore[no-any-return]

        async with frozen(neighbour, mode, 1.0):
            for read in (lambda: client.get("key-0"), pipelined):
                with pytest.raises(SourceTimedOut) as info:
                    await limits.run(adapter, read)
                assert info.value.detail == "timed out after 0.3 s"
        # The replies of the reads cut short arrive now; a reused connection would hand them
        # to the next command.
        await asyncio.sleep(0.2)
        for i in range(3, 8):
            assert await client.get(f"key-{i}") == f"value-{i}".encode()
        pipe = client.pipeline(transaction=False)
        for i in range(3, 8):
            pipe.get(f"key-{i}")
        assert await pipe.execute() == [f"value-{i}".encode() for i in range(3, 8)]
    finally:
        await client.aclose()


def test_sources_are_limited_by_the_servers_they_read(redis_server: RedisServer) -> None:
    one = redis.asyncio.Redis.from_url(redis_server.url(1))
    other_db = redis.asyncio.Redis.from_url(redis_server.url(2) + "?password=x")
    unix = redis.asyncio.Redis.from_url("unix:///tmp/redis.sock?db=3")
    assert server_of(one) == server_of(other_db) == f"127.0.0.1:{redis_server.port}"
    assert server_of(unix) == "unix:/tmp/redis.sock"
    # A Sentinel master is one server wherever failovers move it, whatever the database.
    sentinels = [
        connect(f"sentinel://127.0.0.1:2638{a};sentinel://127.0.0.1:2638{b}/{db}?master=orders")
        for a, b, db in ((0, 1, 0), (1, 0, 3))
    ]
    assert {server_of(c) for c in sentinels} == {
        "sentinel master 'orders' via 127.0.0.1:26380,127.0.0.1:26381"
    }
    limits = ReadLimits(timeout_s=1)

    class Source:
        def __init__(self, name: str, client: Any, results: Any = None) -> None:
            self.source, self.client, self.results = name, client, results

    assert limits.servers(Source("a", one)) == limits.servers(Source("b", other_db))
    # A Celery source whose results live elsewhere reads both: a limit of its own.
    assert limits.servers(Source("c", one, unix)) == tuple(
        sorted((f"127.0.0.1:{redis_server.port}", "unix:/tmp/redis.sock"))
    )
