"""Sources behind Redis Sentinel: a real master, replica and sentinel on loopback ports.

Reads and actions go to the master the sentinel names, follow a failover (forced, or the
master's process dying) without a restart, and a master the sentinel does not know makes the
source unavailable with a reason that names it.
"""

from __future__ import annotations

import asyncio
import shutil
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import pytest
import redis
from click.testing import CliRunner

from jobbridge.acl import redis_server_of
from jobbridge.cli import main
from jobbridge.config import load_settings
from jobbridge.dev.private_redis import (
    RedisServer,
    SentinelServer,
    free_port,
    start_redis_server,
    start_replica,
    start_sentinel,
)
from jobbridge.errors import ConfigError, SourceUnavailable
from jobbridge.model import Action, ListName, Outcome
from jobbridge.redis_urls import redact_url
from jobbridge.service import JobService
from jobbridge.settings import ServerConfig, Settings, SourceConfig
from jobbridge.sources import build_adapters, detect, resolve_sources
from jobbridge.web.app import create_app
from tests.autumn.autumn_fixtures import Autumn, failing_job

pytestmark = [pytest.mark.redis, pytest.mark.slow]

MASTER = "mymaster"
T = TypeVar("T")


@dataclass
class Topology:
    master: RedisServer
    replica: RedisServer
    sentinel: SentinelServer

    def url(self, master: str | None = None, db: int = 0) -> str:
        """The sentinel:// URL of this sentinel, with ``?master=`` when given."""
        url = self.sentinel.sentinel_url(db)
        return f"{url}?master={master}" if master else url

    def source(self, master: str = MASTER, **kw: Any) -> SourceConfig:
        return SourceConfig(
            name="orders",
            system="autumn",
            redis_url=kw.pop("redis_url", self.url()),
            sentinel_master=master,
            **kw,
        )

    def app(self, port: int | None = None, db: int = 0) -> Autumn:
        """The emulator's producer on the master the sentinel names (or on ``port``)."""
        port = port or self.sentinel.master_port()
        assert port is not None
        return Autumn(redis.Redis(host="127.0.0.1", port=port, db=db))


@pytest.fixture
def topology(redis_server: RedisServer) -> Iterator[Topology]:
    """A master, a replica and a sentinel watching them as "mymaster" (the suite's binary)."""
    servers: list[RedisServer] = []
    try:
        servers.append(start_redis_server(binary=redis_server.binary))
        servers.append(start_replica(servers[0]))
        servers.append(start_sentinel(servers[0], MASTER, replicas=1))
        yield Topology(*servers)  # type: ignore[arg-type]
    finally:
        for server in reversed(servers):
            server.stop()
            shutil.rmtree(server.workdir, ignore_errors=True)


@pytest.fixture
async def service_of() -> Any:
    """Build a JobService over sources the way the CLI and the server do; closed after."""
    services: list[JobService] = []

    def make(*sources: SourceConfig) -> JobService:
        services.append(JobService(build_adapters(sources), cache_ttl_s=0))
        return services[-1]

    yield make
    for service in services:
        await service.close()


async def eventually(read: Callable[[], Awaitable[T]], done: Callable[[T], bool]) -> T:
    """``read()`` until ``done`` holds, through unavailability, for at most 15 s."""
    deadline = time.monotonic() + 15
    while True:
        try:
            value = await read()
        except SourceUnavailable:
            if time.monotonic() > deadline:
                raise
        else:
            if done(value) or time.monotonic() > deadline:
                return value
        await asyncio.sleep(0.05)


def wait_for_master(sentinel: SentinelServer, port: int) -> float:
    """Seconds until the sentinel names the master on ``port`` (at most 15)."""
    start = time.monotonic()
    while sentinel.master_port() != port:
        assert time.monotonic() - start < 15, "the sentinel did not name the new master"
        time.sleep(0.05)
    return time.monotonic() - start


async def test_a_sentinel_source_reads_and_acts(topology, service_of, aiohttp_client) -> None:
    app = topology.app(db=3)
    dead = failing_job(app)
    waiting = app.enqueue("noop", {"n": 1})
    source = topology.source(redis_url=topology.url(db=3))
    service = service_of(source)

    counters = await service.counters("orders")
    assert (counters.enqueued, counters.failed_7d) == (1, 1)
    shot = await service.snapshot("orders")
    assert shot.lists[ListName.ENQUEUED].total == shot.lists[ListName.FAILED].total == 1
    detail = await service.job("orders", waiting)
    assert detail is not None and detail.job.id == waiting

    canceled = await service.act("orders", waiting, Action.CANCEL, "tester")
    assert canceled.outcome is Outcome.DONE, canceled.message
    retried = await service.act("orders", dead, Action.RETRY, "tester")
    assert retried.outcome is Outcome.DONE, retried.message
    # On the master itself: the canceled job is gone, the retried one is queued again.
    assert app.record_raw(waiting) is None
    assert app.dead_record_raw(dead) is None
    assert retried.new_id is not None and app.record_raw(retried.new_id) is not None
    assert [e.job_id for e in await service.audit("orders")] == [dead, waiting]

    # The dashboard's API over the same kind of source (its own service, as in production).
    client = await aiohttp_client(
        create_app(Settings(server=ServerConfig(cache_ttl_s=0), sources=(source,)))
    )
    response = await client.get("/admin/api/sources/orders/snapshot")
    assert response.status == 200, await response.text()
    assert (await response.json())["counters"]["enqueued"] == 1  # the retried job
    app.client.close()


async def test_reads_and_actions_follow_sentinel_failover(topology, service_of) -> None:
    app = topology.app()
    dead = failing_job(app)
    before = app.enqueue("noop", {"n": 1})
    service = service_of(topology.source())
    assert (await service.counters("orders")).enqueued == 1
    # Replication is asynchronous: the replica must hold these before it is promoted.
    assert app.client.wait(1, 5000) == 1

    with topology.sentinel.client() as sentinel:
        assert sentinel.sentinel_failover(MASTER)
    wait_for_master(topology.sentinel, topology.replica.port)
    promoted = topology.app(topology.replica.port)
    after = promoted.enqueue("noop", {"n": 2})  # only the new master has it

    # The same service, no restart: reads reach the new master (the first ones may still
    # go to the old master, which accepts commands until Sentinel demotes it)...
    seen = await eventually(lambda: service.job("orders", after), lambda d: d is not None)
    assert seen is not None
    assert (await service.counters("orders")).enqueued == 2
    # ...and so do actions, once reads have seen it.
    for job_id, action in ((after, Action.CANCEL), (before, Action.CANCEL), (dead, Action.RETRY)):
        result = await service.act("orders", job_id, action, "tester")
        assert result.outcome is Outcome.DONE, result.message
    assert promoted.record_raw(after) is None and promoted.record_raw(before) is None
    assert promoted.dead_record_raw(dead) is None
    assert (await service.counters("orders")).enqueued == 1  # the retried job
    audit = promoted.client.lrange("jobbridge:audit", 0, -1)
    assert len(audit) == 3  # written on the new master, with the actions
    app.client.close()
    promoted.client.close()


async def test_reads_recover_when_the_master_dies(topology, service_of) -> None:
    app = topology.app()
    job = app.enqueue("noop", {})
    app.client.close()
    service = service_of(topology.source())
    assert (await service.job("orders", job)) is not None

    topology.master.stop()
    with pytest.raises(SourceUnavailable):
        await service.counters("orders")  # until the sentinel promotes the replica
    took = wait_for_master(topology.sentinel, topology.replica.port)
    counters = await eventually(lambda: service.counters("orders"), lambda c: c.enqueued == 1)
    assert counters.enqueued == 1, f"not recovered {took:.1f} s after the failover"
    result = await service.act("orders", job, Action.CANCEL, "tester")
    assert result.outcome is Outcome.DONE, result.message


async def test_an_unknown_master_is_unavailable_naming_it(
    topology, service_of, aiohttp_client
) -> None:
    service = service_of(topology.source("nosuch"))
    with pytest.raises(SourceUnavailable) as info:
        await service.counters("orders")
    expected = f"Sentinel knows no master named 'nosuch' (asked 127.0.0.1:{topology.sentinel.port})"
    assert info.value.detail == expected
    assert (await service.ready())["orders"] == expected

    client = await aiohttp_client(
        create_app(Settings(server=ServerConfig(), sources=(topology.source("nosuch"),)))
    )
    response = await client.get("/admin/api/sources/orders/snapshot")
    assert response.status == 503
    assert expected in (await response.json())["message"]

    with pytest.raises(SourceUnavailable) as info:
        await detect(topology.url("nosuch"))
    assert info.value.detail == expected


async def test_no_sentinel_answering_is_unavailable_naming_each(service_of) -> None:
    ports = free_port(), free_port()
    url = f"sentinel://127.0.0.1:{ports[0]};sentinel://127.0.0.1:{ports[1]}/0"
    service = service_of(
        SourceConfig(name="orders", system="autumn", redis_url=url, sentinel_master=MASTER)
    )
    with pytest.raises(SourceUnavailable) as info:
        await service.counters("orders")
    detail = info.value.detail
    assert detail.startswith(f"no sentinel answered for master {MASTER!r}: ")
    assert all(f"127.0.0.1:{port}: " in detail for port in ports)


async def test_credentials_of_the_master_and_of_the_sentinel(redis_server, service_of) -> None:
    sentinel_password = uuid.uuid4().hex
    master = start_redis_server(binary=redis_server.binary)
    sentinel = start_sentinel(master, MASTER, password=sentinel_password)
    try:
        # An ACL user on the master for jobbridge; the sentinel keeps the default user.
        user, password = "jb", uuid.uuid4().hex
        admin = redis.Redis(host="127.0.0.1", port=master.port)
        admin.execute_command("ACL", "SETUSER", user, "on", f">{password}", "~*", "+@all")
        Autumn(admin).enqueue("noop", {})
        admin.close()
        url = f"sentinel://{user}:{password}@127.0.0.1:{sentinel.port}/0"

        good = SourceConfig(
            name="orders",
            system="autumn",
            redis_url=url,
            sentinel_master=MASTER,
            sentinel_password=sentinel_password,
        )
        assert (await service_of(good).counters("orders")).enqueued == 1

        no_sentinel_auth = service_of(replace(good, sentinel_password=None))
        with pytest.raises(SourceUnavailable) as info:
            await no_sentinel_auth.counters("orders")
        assert f"127.0.0.1:{sentinel.port}: " in info.value.detail
        assert "auth" in info.value.detail.lower()

        wrong = service_of(replace(good, redis_url=url.replace(password, "wrong")))
        with pytest.raises(SourceUnavailable) as info:
            await wrong.counters("orders")
        assert info.value.detail.startswith("authentication failed")
    finally:
        sentinel.stop()
        master.stop()
        for server in (sentinel, master):
            shutil.rmtree(server.workdir, ignore_errors=True)


async def test_config_file_source_behind_sentinel(topology, tmp_path: Path, service_of) -> None:
    app = topology.app()
    app.enqueue("noop", {})
    app.client.close()
    # The first sentinel is not there; the second answers.
    url = f"sentinel://127.0.0.1:{free_port()};sentinel://127.0.0.1:{topology.sentinel.port}/0"
    path = tmp_path / "jobbridge.toml"
    path.write_text(f'[[sources]]\nname = "orders"\nsystem = "autumn"\nredis_url = "{url}"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    assert str(info.value).startswith(
        "sources[0].sentinel_master: required for a sentinel:// redis_url"
    )

    path.write_text(path.read_text() + f'sentinel_master = "{MASTER}"\n')
    (source,) = load_settings(path, env={}).sources
    assert (source.redis_url, source.sentinel_master) == (url, MASTER)
    assert (await service_of(source).counters("orders")).enqueued == 1


def test_redaction_hides_the_password_of_every_address() -> None:
    url = "sentinel://:s3cret@h1:26379;sentinel://:s3cret@h2:26379/0?master=mymaster"
    assert redact_url(url) == "sentinel://***@h1:26379;sentinel://***@h2:26379/0?master=mymaster"
    with pytest.raises(ConfigError) as info:
        load_settings(None, env={}, overrides={"redis_url": url.replace("h2:26379", "h2:x")})
    assert "s3cret" not in str(info.value) and str(info.value).startswith("--redis: ")


def test_redis_flag_detects_behind_sentinel(topology) -> None:
    app = topology.app()
    app.enqueue("noop", {})
    app.client.close()
    url = topology.url(MASTER)
    settings, _notes = asyncio.run(
        resolve_sources(load_settings(None, env={}, overrides={"redis_url": url}))
    )
    (source,) = settings.sources
    assert source.redis_url == url and source.effective_key_prefix == "autumn:jobs"

    result = CliRunner().invoke(main, ["snapshot", "--redis", url], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "enqueued 1" in result.stdout
    result = CliRunner().invoke(main, ["acl", "--redis", url], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert (
        f"# every server of Sentinel master 'mymaster' (the master and each replica; sentinels"
        f" 127.0.0.1:{topology.sentinel.port}): operator of autumn;"
    ) in result.stdout
    result = CliRunner().invoke(main, ["doctor", "--redis", url], catch_exceptions=False)
    assert result.exit_code == 0, result.output

    no_master = CliRunner().invoke(main, ["snapshot", "--redis", topology.url()])
    assert no_master.exit_code == 2
    assert "--redis: a sentinel:// URL needs the master's name: ?master=<name>" in no_master.output


def test_acl_servers_of_a_sentinel_master() -> None:
    one = redis_server_of("sentinel://:pw@localhost:26379;sentinel://h2:26380/3", "mymaster")
    two = redis_server_of("sentinel://h2:26380;sentinel://127.0.0.1/0?master=mymaster")
    assert (
        one
        == two
        == (
            "every server of Sentinel master 'mymaster' (the master and each replica;"
            " sentinels 127.0.0.1:26379, h2:26380)"
        )
    )
    assert "pw" not in one
