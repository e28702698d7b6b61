"""Bulk runs on Autumn with real emulator worker processes running: a bulk retry takes exactly
the jobs its filter matches, once each, and the workers run every new job; a bulk cancel racing
the workers cancels or leaves to run each job, never both, losing none."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis
from aiohttp.test_utils import TestClient, TestServer

from jobbridge.settings import AuthConfig, ServerConfig, Settings
from jobbridge.web.app import create_app
from tests.autumn.autumn_fixtures import Autumn, failing_job, ran
from tests.autumn.harness import AutumnHarness
from tests.bulk.support import BulkClient, retried_once
from tests.contract.conftest import OPERATOR_TOKEN, PREFIX, token
from tests.integration.processes import WorkerProcess, spawn, stop_all
from tests.rq.rq_support import async_wait_for

pytestmark = [pytest.mark.redis, pytest.mark.slow]

RAN = "test:ran"
SOURCE = "orders"
AUDIT = f"{PREFIX}/api/audit?limit=1000"


def start_workers(redis_url: str, count: int, log_dir: Path, *, until_idle: bool) -> list:
    command = [
        sys.executable,
        "-m",
        "jobbridge.dev.autumn_emulator",
        "worker",
        "--redis",
        redis_url,
        "--ran-key",
        RAN,
        "--max-seconds",
        "120",
        *(["--until-idle"] if until_idle else []),
    ]
    logs = [log_dir / f"autumn-{n}.log" for n in range(count)]
    return [WorkerProcess(log.stem, spawn(command, os.environ, log), log) for log in logs]


@pytest.fixture
async def bulk(redis_url: str) -> AsyncIterator[BulkClient]:
    harness = AutumnHarness(redis_url)
    settings = Settings(
        server=ServerConfig(prefix=PREFIX, cache_ttl_s=0.0),
        sources=(harness.source(SOURCE),),
        auth=AuthConfig(
            tokens=(token("ops", "operator", OPERATOR_TOKEN),),
            session_secret="autumn-bulk-test-session-secret-0123456789",
        ),
    )
    client = TestClient(TestServer(create_app(settings)))
    await client.start_server()
    try:
        yield BulkClient(client, PREFIX, SOURCE, {"Authorization": f"Bearer {OPERATOR_TOKEN}"})
    finally:
        await client.close()
        harness.close()


async def test_bulk_retry_of_300_of_500_failures_while_workers_run(
    redis_url: str, tmp_path: Path, bulk: BulkClient
) -> None:
    client = redis.Redis.from_url(redis_url)
    app = Autumn(client)
    outage = [failing_job(app, payload={"message": "ConnectionError: refused"}) for _ in range(300)]
    other = [failing_job(app, payload={"message": "ValueError: bad input"}) for _ in range(200)]
    run = await bulk.dry_run(
        {"action": "retry", "list": "failed", "filter": {"error_contains": "connectionerror"}}
    )
    assert (run["matched"], run["looked_at"]) == (300, 500), run
    workers = start_workers(redis_url, 2, tmp_path, until_idle=False)
    try:
        await bulk.confirm(run)
        done = await bulk.until(run["id"], "done")
        response = await bulk.client.get(AUDIT, headers=bulk.headers)
        audit = (await response.json())["entries"]
        new_ids = [e["new_id"] for e in audit if e["action"] == "retry"]
        await async_wait_for(
            lambda: set(new_ids) <= set(ran(client, RAN)), "the retries to run", 120, every=0.2
        )
    finally:
        stop_all(workers)
    assert len(outage) == 300
    assert retried_once(done, audit, outage, other) == new_ids
    runs = ran(client, RAN)
    assert sorted(runs) == sorted(new_ids), "each new job ran once, nothing else ran"
    # The others are untouched: still dead.
    assert all(app.dead_record_raw(job_id) is not None for job_id in other)
    client.close()


async def test_bulk_cancel_racing_workers_cancels_or_runs_each_job_once(
    redis_url: str, tmp_path: Path, bulk: BulkClient
) -> None:
    client = redis.Redis.from_url(redis_url)
    app = Autumn(client)
    ids = [app.enqueue("sleep", {"ms": 2, "n": n}) for n in range(500)]
    assert all(ids)
    run = await bulk.dry_run({"action": "cancel", "list": "enqueued"})
    assert run["matched"] == 500, run
    await bulk.confirm(run)
    workers = start_workers(redis_url, 2, tmp_path, until_idle=True)
    try:
        done = await bulk.until(run["id"], "done")
        for worker in workers:
            assert await asyncio.to_thread(worker.process.wait, 120) == 0, worker.describe()
    finally:
        stop_all(workers)
    runs = ran(client, RAN)
    skipped = {s["job_id"] for s in done["skipped"]}
    canceled = set(ids) - skipped
    print(f"\nautumn bulk cancel racing 2 workers: {done['outcomes']}; {len(runs)} ran")
    assert len(runs) == len(set(runs)), "a job ran twice"
    assert done["acted"] == 500 and sum(done["outcomes"].values()) == 500
    assert done["outcomes"].get("done", 0) == len(canceled)
    assert not canceled & set(runs), "a canceled job ran"
    assert set(runs) | canceled == set(ids), "a job lost"
    assert skipped == set(runs)
    assert {s["outcome"] for s in done["skipped"]} <= {"wrong_state", "not_found"}
    assert client.llen(app.queue_key("default")) == 0
    client.close()
