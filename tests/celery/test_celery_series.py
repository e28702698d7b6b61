"""Celery's chart series: results the index backfills (stored before jobbridge started, with
an old ``date_done``) count in the steps they finished, not when they were found."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import redis

from tests.celery.celery_jobbridge import celery_api
from tests.celery.celery_support import realistic_meta
from tests.contract.test_contract import eventually

pytestmark = pytest.mark.redis


async def test_backfilled_old_results_count_at_their_finish_time(
    sync_redis: redis.Redis, redis_url: str
) -> None:
    done = datetime.now(UTC) - timedelta(hours=2)
    for n, state in enumerate(("SUCCESS", "SUCCESS", "FAILURE")):
        task_id = f"old-{n}"
        sync_redis.set(f"celery-task-meta-{task_id}", realistic_meta(task_id, state, done, n=n))
    async with celery_api(redis_url) as api:

        async def counted() -> dict:
            status, body = await api.get(f"/api/sources/{api.source}/series?window=24h")
            assert status == 200
            assert sum(p["completed"] for p in body["points"]) == 2
            assert sum(p["failed"] for p in body["points"]) == 1
            return body

        day = await eventually(counted, timeout=20)
        step = int(done.timestamp()) // 900 * 900
        (point,) = [p for p in day["points"] if p["completed"] or p["failed"]]
        assert point["at"] == datetime.fromtimestamp(step, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert (point["completed"], point["failed"]) == (2, 1)
        # Two hours ago is outside the last hour.
        _status, hour = await api.get(f"/api/sources/{api.source}/series?window=1h")
        assert sum(p["completed"] + p["failed"] for p in hour["points"]) == 0
        # The queue's own series has them too (the meta names its queue).
        _status, queue = await api.get(f"/api/sources/{api.source}/series?window=24h&queue=celery")
        assert sum(p["completed"] for p in queue["points"]) == 2
