"""What a background detection of ``serve --redis`` adds, and what it leaves for a config
file: a prefix already watched, a name another source holds, a system at its source limit;
and a Redis that stops answering is logged once, its recovery too."""

from __future__ import annotations

import logging

import pytest

from jobbridge.settings import SourceConfig
from jobbridge.sources import DETECT_SOURCE_LIMIT, Redetection

pytestmark = pytest.mark.redis


def autumn(url: str, prefix: str, name: str) -> SourceConfig:
    return SourceConfig(name=name, system="autumn", redis_url=url, key_prefix=prefix)


async def rounds(detection: Redetection, times: int = 2) -> list[str]:
    added: list[str] = []

    async def add(config: SourceConfig) -> None:
        added.append(config.name)

    for _ in range(times):
        await detection.round(add)
    await detection.close()
    return added


async def test_new_prefixes_are_added_once_and_watched_ones_never(
    sync_redis, redis_url, caplog
) -> None:
    caplog.set_level(logging.WARNING)
    for prefix in ("autumn:jobs", "shop"):
        sync_redis.zadd(f"{prefix}:delayed", {"j": 1})
    sync_redis.sadd("rq:workers", "rq:worker:w1")
    serving = [autumn(redis_url, "autumn:jobs", "autumn")]
    added = await rounds(Redetection(redis_url, serving, interval_s=1))
    assert added == ["autumn-shop", "rq"]
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("detected")]
    assert said == [
        "detected autumn at prefix 'shop' (key shop:delayed): now watching source autumn-shop",
        "detected rq at prefix 'rq' (key rq:workers): now watching source rq",
    ]


async def test_a_name_another_source_holds_is_left_for_a_config_file(
    sync_redis, redis_url, caplog
) -> None:
    caplog.set_level(logging.WARNING)
    sync_redis.sadd("rq:workers", "rq:worker:w1")
    serving = [autumn(redis_url, "other", "rq")]  # a source called "rq" that is not RQ's
    assert await rounds(Redetection(redis_url, serving, interval_s=1)) == []
    notes = [r.getMessage() for r in caplog.records if "name it in a config file" in r.getMessage()]
    assert len(notes) == 1 and "source name rq another source holds" in notes[0], notes


async def test_a_system_at_its_source_limit_gets_no_more(sync_redis, redis_url, caplog) -> None:
    caplog.set_level(logging.WARNING)
    sync_redis.zadd("late:delayed", {"j": 1})
    serving = [autumn(redis_url, f"p{n:02d}", f"a{n}") for n in range(DETECT_SOURCE_LIMIT)]
    assert await rounds(Redetection(redis_url, serving, interval_s=1)) == []
    notes = [r.getMessage() for r in caplog.records if "already watching" in r.getMessage()]
    assert len(notes) == 1 and "'late'" in notes[0], notes


async def test_an_unreachable_redis_is_logged_once_and_its_recovery(redis_url, caplog) -> None:
    caplog.set_level(logging.WARNING)
    from jobbridge.dev.private_redis import free_port

    nobody = f"redis://127.0.0.1:{free_port()}/0"
    detection = Redetection(nobody, [], interval_s=1)
    assert await rounds(detection, 3) == []
    failed = [r for r in caplog.records if "background detection in" in r.getMessage()]
    assert len(failed) == 1 and "Redis unavailable" in failed[0].getMessage()
    assert detection.failing and detection.rounds == 0
    # the same object pointed at a Redis that answers: one "recovered" line
    detection.url = redis_url
    assert await rounds(detection, 2) == []
    recovered = [r for r in caplog.records if r.getMessage().endswith("recovered")]
    assert len(recovered) == 1 and detection.rounds == 2
