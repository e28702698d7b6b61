"""Two real ``jobbridge serve`` processes behind one load balancer behave as one: a session
signed by one is accepted by the other, a sign-out on one is honoured by the other, and failed
sign-ins count across both; with the shared Redis down, each goes on alone and catches up."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
import redis

from jobbridge.dev.private_redis import RedisServer, free_port, start_redis_server
from jobbridge.web.shared_state import HEARTBEAT_S
from tests.web.conftest import OPERATOR_TOKEN, SECRET, TOKENS

pytestmark = [pytest.mark.redis, pytest.mark.slow]

MAX_FAILURES = 4


class Replica:
    """One ``jobbridge serve`` process."""

    def __init__(self, config: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        command = ["serve", "--config", str(config), "--port", str(self.port)]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "jobbridge", *command],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    async def ready(self, session: aiohttp.ClientSession) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    self.process.stderr.read().decode() if self.process.stderr else ""
                )
            try:
                async with session.get(self.base + "/healthz") as reply:
                    if reply.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
        raise RuntimeError("jobbridge did not start")

    def stop(self) -> str:
        self.process.terminate()
        try:
            _, err = self.process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, err = self.process.communicate()
        return err.decode(errors="replace")


def write_config(path: Path, source_url: str, state_url: str, secret: str | None) -> Path:
    tokens = "\n".join(
        f'[[auth.tokens]]\nname = "{t.name}"\nrole = "{t.role}"\n'
        f'token_sha256 = "{t.token_sha256}"\n'
        for t in TOKENS
    )
    path.write_text(
        f'[server]\nshared_state_url = "{state_url}"\ncache_ttl_s = 0\n\n'
        f'[[sources]]\nname = "orders"\nsystem = "autumn"\nredis_url = "{source_url}"\n\n'
        f"{tokens}\n[auth]\nmax_failed_sign_ins = {MAX_FAILURES}\n"
        + (f'session_secret = "{secret}"\n' if secret else "")
    )
    return path


@pytest.fixture
def state_server(redis_server: RedisServer) -> Iterator[RedisServer]:
    """A Redis of its own for the shared state, so a test can stop it."""
    server = start_redis_server(binary=redis_server.binary)
    yield server
    server.stop()


@pytest.fixture
async def pair(tmp_path, redis_url, state_server) -> AsyncIterator[tuple[Replica, Replica]]:
    config = write_config(tmp_path / "jb.toml", redis_url, state_server.url(0), SECRET)
    replicas = (Replica(config), Replica(config))
    try:
        async with aiohttp.ClientSession() as session:
            for replica in replicas:
                await replica.ready(session)
        yield replicas
    finally:
        for replica in replicas:
            replica.stop()


async def sign_in(session: aiohttp.ClientSession, base: str, token: str) -> int:
    async with session.get(base + "/admin/login") as page:
        html = await page.text()
    marker = 'name="_csrf" value="'
    start = html.index(marker) + len(marker)
    csrf = html[start : html.index('"', start)]
    form = {"_csrf": csrf, "token": token}
    async with session.post(base + "/admin/login", data=form, allow_redirects=False) as reply:
        return reply.status


async def sign_out(session: aiohttp.ClientSession, *, page_from: str, at: str) -> int:
    """Sign out at ``at`` with the CSRF token of a page served by ``page_from``."""
    async with session.get(page_from + "/admin/jobs") as page:
        html = await page.text()
    marker = '<meta name="csrf-token" content="'
    start = html.index(marker) + len(marker)
    form = {"_csrf": html[start : html.index('"', start)]}
    async with session.post(at + "/admin/logout", data=form, allow_redirects=False) as reply:
        return reply.status


async def page_status(session: aiohttp.ClientSession, base: str) -> int:
    async with session.get(base + "/admin/jobs", allow_redirects=False) as reply:
        return reply.status


async def test_a_session_signed_out_on_one_replica_is_refused_by_the_other(pair) -> None:
    a, b = pair
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as browser:
        assert await sign_in(browser, a.base, OPERATOR_TOKEN) == 303
        cookies = {c.key: c.value for c in jar}
        assert await page_status(browser, b.base) == 200  # signed by A, accepted by B
        # The page came from B, the sign-out goes to A.
        assert await sign_out(browser, page_from=b.base, at=a.base) == 303
    # A copy of the cookie taken before signing out is refused by both.
    async with aiohttp.ClientSession(cookies=cookies) as thief:
        assert await page_status(thief, a.base) == 303
        assert await page_status(thief, b.base) == 303


async def test_failed_sign_ins_count_across_replicas(pair) -> None:
    a, b = pair
    async with aiohttp.ClientSession() as guesser:
        statuses = []
        for n in range(MAX_FAILURES):
            target = (a, b)[n % 2].base
            async with guesser.get(
                target + "/admin/api/sources", headers={"Authorization": "Bearer wrong"}
            ) as reply:
                statuses.append(reply.status)
        assert statuses == [401] * MAX_FAILURES
        for replica in (a, b):
            async with guesser.get(
                replica.base + "/admin/api/sources",
                headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"},
            ) as reply:
                assert reply.status == 429 and int(reply.headers["Retry-After"]) >= 1


async def test_with_the_shared_redis_down_each_replica_goes_on_and_catches_up(
    pair, state_server
) -> None:
    a, b = pair
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as browser:
        assert await sign_in(browser, a.base, OPERATOR_TOKEN) == 303
        cookies = {c.key: c.value for c in jar}
        state_server.stop()
        assert await page_status(browser, a.base) == 200  # sessions still work
        assert await sign_out(browser, page_from=a.base, at=a.base) == 303
    async with aiohttp.ClientSession(cookies=cookies) as copy:
        assert await page_status(copy, a.base) == 303  # A knows at once
        assert await page_status(copy, b.base) == 200  # B cannot know yet
        state_server.restart()
        deadline = time.monotonic() + 20
        while await page_status(copy, b.base) != 303:
            assert time.monotonic() < deadline, "B never learned of the sign-out"
            await asyncio.sleep(0.5)
        metrics = await (
            await copy.get(
                a.base + "/metrics", headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"}
            )
        ).text()
        assert "jobbridge_shared_state_up 1.0" in metrics


async def test_replicas_with_different_keys_say_so(tmp_path, redis_url, state_server) -> None:
    one = Replica(write_config(tmp_path / "a.toml", redis_url, state_server.url(0), SECRET))
    two = Replica(write_config(tmp_path / "b.toml", redis_url, state_server.url(0), "x" * 32))
    try:
        async with aiohttp.ClientSession() as session:
            await one.ready(session)
            await two.ready(session)
            deadline = time.monotonic() + 20
            while True:
                async with session.get(
                    one.base + "/metrics", headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"}
                ) as reply:
                    text = await reply.text()
                if "jobbridge_replicas_disagreeing 1.0" in text:
                    break
                assert time.monotonic() < deadline, text[-2000:]
                await asyncio.sleep(0.5)
            assert "jobbridge_replicas 2.0" in text
    finally:
        errors = one.stop() + two.stop()
    assert "sign sessions with another key" in errors


async def test_serve_without_a_session_secret_explains_what_replicas_need(
    tmp_path, redis_url
) -> None:
    replica = Replica(write_config(tmp_path / "c.toml", redis_url, "", None))
    try:
        async with aiohttp.ClientSession() as session:
            await replica.ready(session)
    finally:
        err = replica.stop()
    assert "session_secret is not set" in err and "replicas" in err


async def test_processes_serving_other_sources_on_one_redis_are_not_replicas(
    tmp_path, redis_url, state_server
) -> None:
    """Two deployments on one Redis, each with its own sources and its own session key: no
    warning, nothing disagreeing, one replica each; a real replica of the first counts."""
    one = Replica(write_config(tmp_path / "a.toml", redis_url, state_server.url(0), SECRET))
    other = tmp_path / "b.toml"
    write_config(other, redis_url, state_server.url(0), "y" * 32)
    other.write_text(other.read_text().replace('name = "orders"', 'name = "billing"'))
    two = Replica(other)
    three: Replica | None = None
    try:
        async with aiohttp.ClientSession() as session:
            await one.ready(session)
            await two.ready(session)
            # Both have announced themselves (a heartbeat at start) and read the hash since.
            admin = redis.Redis.from_url(state_server.url(0))
            deadline = time.monotonic() + 20
            while admin.hlen("jobbridge:state:replicas") < 2:
                assert time.monotonic() < deadline, "the processes never announced themselves"
                await asyncio.sleep(0.2)
            three = Replica(
                write_config(tmp_path / "c.toml", redis_url, state_server.url(0), SECRET)
            )
            await three.ready(session)
            text = await metrics_when(session, one, "jobbridge_replicas 2.0")
            assert "jobbridge_replicas_disagreeing 0.0" in text
            # One counted three and not two; two's next heartbeat has seen both others.
            await asyncio.sleep(HEARTBEAT_S + 1)
            text = await metrics_when(session, two, "jobbridge_replicas 1.0")
            assert "jobbridge_replicas_disagreeing 0.0" in text
    finally:
        errors = one.stop() + two.stop() + (three.stop() if three else "")
    assert "sign sessions with another key" not in errors


async def metrics_when(session: aiohttp.ClientSession, replica: Replica, wanted: str) -> str:
    """``/metrics`` of a replica once it holds ``wanted`` (the heartbeat is periodic)."""
    deadline = time.monotonic() + 20
    while True:
        async with session.get(
            replica.base + "/metrics", headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"}
        ) as reply:
            text = await reply.text()
        if wanted in text:
            return text
        assert time.monotonic() < deadline, text[-2000:]
        await asyncio.sleep(0.5)
