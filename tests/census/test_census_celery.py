"""The census of a Celery queue: real task messages sent with Celery's own ``send_task`` to
the broker (no worker consumes them), over its priority lists, counted by task name."""

from __future__ import annotations

import base64
import json

import pytest

from jobbridge.census.model import UNKNOWN_NAME, CensusState
from jobbridge.census.runner import CensusManager, store_for
from jobbridge.settings import SourceConfig
from tests.census.support import LagProbe, adapter_of, counts, wait_done

pytestmark = pytest.mark.redis

#: task name -> messages sent (every name a different count); some with a priority, so they
#: land in kombu's priority lists of the queue
SENT = {"billing.charge": 1_200, "mail.send": 700, "images.resize": 333, "reports.build": 1}


async def test_a_celery_queue_is_counted_exactly_by_task_name(celery_app, redis_url, sync_redis):
    with celery_app.producer_or_acquire() as producer:
        for n, (name, count) in enumerate(SENT.items()):
            for i in range(count):
                options = {"priority": 6} if n == 1 and i % 2 else {}
                celery_app.send_task(
                    name,
                    args=(i,),
                    kwargs={"principal_id": f"u{i % 3}"},
                    producer=producer,
                    **options,
                )
    # a message Celery would not read: it counts, as a name not readable
    sync_redis.lpush("celery", b"{not json")
    # a message of 400 KB (its arguments): read without its body, named by its headers
    big = json.loads(sync_redis.lindex("celery", -1))
    big["headers"]["task"] = "uploads.store"
    big["body"] = base64.b64encode(b"x" * 300_000).decode()
    sync_redis.lpush("celery", json.dumps(big).encode())
    assert len(json.dumps(big)) > 400_000
    lengths = {key: sync_redis.llen(key) for key in (b"celery", b"celery\x06\x166")}
    assert lengths[b"celery\x06\x166"] == SENT["mail.send"] // 2  # the priority list is used
    total = sum(SENT.values()) + 2
    config = SourceConfig(name="tasks", system="celery", redis_url=redis_url)
    async with adapter_of(config) as adapter:
        manager = CensusManager()
        try:
            with LagProbe() as probe:
                started = await manager.start(adapter, "celery")
                assert started.total_at_start == total
                result = await wait_done(store_for(adapter, "celery"), timeout=60)
        finally:
            await manager.close()
    assert result.state is CensusState.DONE, result
    assert counts(result) == {**SENT, UNKNOWN_NAME: 1, "uploads.store": 1}
    assert result.read == total and result.note is None
    assert result.principals is None  # Celery records no principal of its own
    assert probe.worst_cpu < 0.02
