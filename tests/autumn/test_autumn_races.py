"""Actions racing Autumn's workers and each other: nothing lost, nothing run twice."""

from __future__ import annotations

import asyncio
import os
import random
import sys
import time
from pathlib import Path

import pytest
import redis
import redis.asyncio

from jobbridge.adapters.autumn.adapter import AutumnAdapter
from jobbridge.model import ActionResult, Outcome
from tests.autumn.autumn_fixtures import Autumn, failing_job, ran
from tests.integration.processes import WorkerProcess, spawn, stop_all

pytestmark = pytest.mark.redis

RAN = "test:ran"
JOBS = 2000
WORKERS = 4


def start_workers(redis_url: str, count: int, log_dir: Path) -> list[WorkerProcess]:
    command = [
        sys.executable,
        "-m",
        "jobbridge.dev.autumn_emulator",
        "worker",
        "--redis",
        redis_url,
        "--until-idle",
        "--ran-key",
        RAN,
        "--max-seconds",
        "90",
    ]
    logs = [log_dir / f"autumn-{n}.log" for n in range(count)]
    return [WorkerProcess(log.stem, spawn(command, os.environ, log), log) for log in logs]


@pytest.mark.slow
async def test_cancels_racing_four_workers_lose_nothing_and_run_nothing_twice(
    redis_url: str, tmp_path: Path
) -> None:
    client = redis.Redis.from_url(redis_url)
    app = Autumn(client)
    rng = random.Random(int(os.environ.get("JOBBRIDGE_RACE_SEED", "20261128")))
    ids: list[str] = []
    for n in range(JOBS):
        # A tenth are due shortly, so cancels also race the delayed promotion.
        delay = rng.randint(100, 1500) if n % 10 == 0 else 0
        job_id = app.enqueue("sleep", {"ms": rng.choice((1, 4, 8)), "n": n}, delay_ms=delay)
        assert job_id is not None
        ids.append(job_id)
    targets = rng.sample(ids, 700)

    adapters = [
        AutumnAdapter(redis.asyncio.Redis.from_url(redis_url), source="orders") for _ in range(4)
    ]
    workers = start_workers(redis_url, WORKERS, tmp_path)
    started = time.monotonic()
    #: every cancel's outcome, per job (a job may be canceled by a racer and a sniper)
    outcomes: dict[str, list[ActionResult]] = {}

    async def fire(batch: list[str], adapter: AutumnAdapter) -> None:
        for job_id in batch:
            result = await adapter.cancel(job_id, "racer")
            outcomes.setdefault(job_id, []).append(result)
            await asyncio.sleep(rng.random() / 500)

    async def snipe(adapter: AutumnAdapter) -> None:
        """Cancel the jobs at the queue's tail: the very ones workers are claiming now."""
        queue = app.queue_key("default")
        while len(outcomes) < len(targets) + 300 and client.llen(queue):
            for raw in client.lrange(queue, -2, -1):
                job_id = raw.decode()
                if job_id not in outcomes:
                    result = await adapter.cancel(job_id, "sniper")
                    outcomes.setdefault(job_id, []).append(result)
            await asyncio.sleep(0.001)

    try:
        await asyncio.gather(
            *(fire(targets[i::3], adapters[i]) for i in range(3)), snipe(adapters[3])
        )
        cancel_seconds = time.monotonic() - started
        for worker in workers:
            assert worker.process.wait(timeout=120) == 0, worker.describe()
    finally:
        stop_all(workers)
        for adapter in adapters:
            await adapter.close()
    drained_seconds = time.monotonic() - started

    runs = ran(client, RAN)
    canceled = {j for j, seen in outcomes.items() if any(r.ok for r in seen)}
    every = [r.outcome for seen in outcomes.values() for r in seen]
    running = sum("already running" in r.message for seen in outcomes.values() for r in seen)
    assert all(sum(r.ok for r in seen) <= 1 for seen in outcomes.values()), "canceled twice"
    assert len(runs) == len(set(runs)), "a job ran twice"
    assert not canceled & set(runs), "a canceled job ran"
    assert set(runs) | canceled == set(ids), "a job was lost"
    assert set(every) <= {Outcome.DONE, Outcome.WRONG_STATE, Outcome.NOT_FOUND}
    # Cancels refused outright were refused because the job was running or already done.
    assert all(job_id in set(runs) for job_id in outcomes if job_id not in canceled)
    assert client.zcard(app.processing_key) == 0 and client.zcard(app.delayed_key) == 0
    assert client.llen(app.queue_key("default")) == 0
    assert client.keys(app.record_prefix + "*") == []
    assert 0 < len(canceled) < len(outcomes), "the race did not interleave; tune the test"
    print(
        f"\nrace: {JOBS} jobs, {WORKERS} workers, {len(every)} cancels of {len(outcomes)} jobs "
        f"in {cancel_seconds:.2f}s: {len(canceled)} canceled, {running} refused as already "
        f"running, {every.count(Outcome.WRONG_STATE) - running} as already canceled, "
        f"{every.count(Outcome.NOT_FOUND)} found already done; "
        f"{len(runs)} ran once each; drained in {drained_seconds:.2f}s"
    )
    client.close()


async def test_two_simultaneous_retries_create_exactly_one_job(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    app = Autumn(client)
    failed = [failing_job(app, payload={"n": n}) for n in range(50)]
    first = AutumnAdapter(redis.asyncio.Redis.from_url(redis_url), source="orders")
    second = AutumnAdapter(redis.asyncio.Redis.from_url(redis_url), source="orders")
    try:
        for job_id in failed:
            a, b = await asyncio.gather(first.retry(job_id, "a"), second.retry(job_id, "b"))
            assert sorted([a.outcome, b.outcome]) == sorted([Outcome.DONE, Outcome.WRONG_STATE])
            winner = a if a.outcome is Outcome.DONE else b
            loser = b if winner is a else a
            assert winner.new_id and winner.new_id in loser.message
    finally:
        await first.close()
        await second.close()
    assert client.llen(app.queue_key("default")) == 50
    assert len(client.keys(app.record_prefix + "*")) == 50
    assert client.llen(app.dead_key) == 0
    client.close()


async def test_retry_racing_discard_has_one_winner(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    app = Autumn(client)
    failed = [failing_job(app, payload={"n": n}) for n in range(30)]
    one = AutumnAdapter(redis.asyncio.Redis.from_url(redis_url), source="orders")
    two = AutumnAdapter(redis.asyncio.Redis.from_url(redis_url), source="orders")
    retried = 0
    try:
        for job_id in failed:
            r, d = await asyncio.gather(one.retry(job_id, "a"), two.discard(job_id, "b"))
            assert [r.outcome, d.outcome].count(Outcome.DONE) == 1
            retried += r.outcome is Outcome.DONE
    finally:
        await one.close()
        await two.close()
    assert client.llen(app.queue_key("default")) == retried
    assert client.llen(app.dead_key) == 0
    client.close()
