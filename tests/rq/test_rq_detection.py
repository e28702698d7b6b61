"""RQ is detected from what it writes before the first job: its registered workers, or any key
under its prefix, not only its set of queues."""

from __future__ import annotations

import asyncio

import pytest
from click.testing import CliRunner

from jobbridge.cli import main
from jobbridge.settings import Settings
from jobbridge.sources import resolve_sources

pytestmark = pytest.mark.redis


def test_rq_found_from_a_registered_worker_before_anything_is_enqueued(
    sync_redis, rq_workers, redis_url
) -> None:
    worker = rq_workers.start(["default"])
    worker.wait_registered(sync_redis)
    assert not sync_redis.exists("rq:queues") and sync_redis.exists("rq:workers")

    result = CliRunner().invoke(main, ["doctor", "--redis", redis_url], catch_exceptions=False)
    out = result.stdout + result.stderr
    assert result.exit_code == 0, out
    rq_line = next(line for line in out.splitlines() if "rq (prefix 'rq'" in line)
    assert "key rq:workers" in rq_line and "supported" in rq_line, out

    # What ``serve --redis`` runs before it starts serving.
    settings, notes = asyncio.run(resolve_sources(Settings(detect_url=redis_url)))
    assert [(s.system, s.effective_key_prefix) for s in settings.sources] == [("rq", "rq")], notes
    assert "source rq: rq at prefix 'rq'" in notes


def test_rq_found_from_any_key_under_its_prefix(sync_redis, redis_url) -> None:
    # A job hash left behind after its queue's set was cleaned: still RQ's.
    sync_redis.hset("rq:job:left-over", mapping={"status": "finished"})
    settings, notes = asyncio.run(resolve_sources(Settings(detect_url=redis_url)))
    assert [s.system for s in settings.sources] == ["rq"], notes


def test_no_rq_keys_no_rq(sync_redis, redis_url) -> None:
    sync_redis.set("rqx:other", "1")
    settings, _ = asyncio.run(resolve_sources(Settings(detect_url=redis_url)))
    assert "rq" not in [s.system for s in settings.sources]
