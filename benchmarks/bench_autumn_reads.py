"""How dashboard reads cost with a huge Autumn backlog: latency and Redis commands per read.

Starts its own redis-server (never 6379), writes ``--jobs`` enqueued jobs across three queues
plus full completed / dead histories and a delayed set, then times snapshots (first page and a
deep page), counters, and many concurrent viewers through the service's coalescing.

    .venv/bin/python -m benchmarks.bench_autumn_reads --jobs 1000000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid

import redis
import redis.asyncio

from jobbridge.adapters.autumn.adapter import AutumnAdapter
from jobbridge.dev.private_redis import start_redis_server
from jobbridge.model import ListName, SnapshotQuery
from jobbridge.service import JobService

PREFIX = "autumn:jobs"
QUEUES = ("critical", "default", "low")


def record(job_id: str, queue: str, now: int, **extra: object) -> str:
    body = {
        "id": job_id,
        "name": "send_email",
        "queue": queue,
        "payload": {"to": "someone@example.com", "principal_id": "u-1", "body": "x" * 200},
        "attempt": 1,
        "max_attempts": 5,
        "initial_backoff_ms": 250,
        "enqueued_at_ms": now,
        "started_at_ms": None,
        "finished_at_ms": None,
        "claimed_by": None,
        "claimed_at_ms": None,
        "last_error": None,
    }
    body.update(extra)
    return json.dumps(body, separators=(",", ":"))


def fill(client: redis.Redis, jobs: int) -> None:
    now = int(time.time() * 1000)
    pipe = client.pipeline(transaction=False)
    for n in range(jobs):
        job_id = str(uuid.uuid4())
        queue = QUEUES[n % 3]
        pipe.set(f"{PREFIX}:record:{job_id}", record(job_id, queue, now - n))
        pipe.lpush(f"{PREFIX}:queue" if queue == "default" else f"{PREFIX}:queue:{queue}", job_id)
        if n % 5000 == 4999:
            pipe.execute()
    for n in range(10_000):
        job_id = str(uuid.uuid4())
        pipe.set(f"{PREFIX}:record:{job_id}", record(job_id, "default", now))
        pipe.zadd(f"{PREFIX}:delayed", {job_id: now + 60_000 + n})
    for n in range(1000):
        finished = now - n * 60_000
        pipe.lpush(
            f"{PREFIX}:completed",
            record(str(uuid.uuid4()), "default", finished - 9, finished_at_ms=finished),
        )
        dead_id = str(uuid.uuid4())
        entry = record(
            dead_id,
            "default",
            finished - 9,
            finished_at_ms=finished,
            last_error="boom " * 40,
            attempt=5,
        )
        pipe.lpush(f"{PREFIX}:dead", entry)
        pipe.set(f"{PREFIX}:dead-record:{dead_id}", entry)
    pipe.execute()


def push_history(client: redis.Redis, new: int) -> None:
    """``new`` entries pushed to each history and trimmed, as finishing workers do."""
    now = int(time.time() * 1000)
    pipe = client.pipeline(transaction=False)
    for _ in range(new):
        job_id = str(uuid.uuid4())
        pipe.lpush(f"{PREFIX}:completed", record(job_id, "default", now - 9, finished_at_ms=now))
        dead = record(job_id, "default", now - 9, finished_at_ms=now, last_error="x" * 200)
        pipe.lpush(f"{PREFIX}:dead", dead)
        pipe.set(f"{PREFIX}:dead-record:{job_id}", dead)
    pipe.ltrim(f"{PREFIX}:completed", 0, 999)
    pipe.ltrim(f"{PREFIX}:dead", 0, 999)
    pipe.execute()


async def timed(label: str, repeat: int, call) -> None:  # type: ignore[no-untyped-def]
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    p95 = samples[int(len(samples) * 0.95) - 1]
    print(f"{label:<44} median {statistics.median(samples):7.2f} ms   p95 {p95:7.2f} ms")


async def commands(client: redis.asyncio.Redis, call) -> int:  # type: ignore[no-untyped-def]
    before = (await client.info("stats"))["total_commands_processed"]
    await call()
    after = (await client.info("stats"))["total_commands_processed"]
    return int(after - before - 1)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=200_000, help="enqueued jobs (default 200k)")
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--viewers", type=int, default=200)
    args = parser.parse_args()

    server = start_redis_server()
    try:
        sync = redis.Redis.from_url(server.url())
        start = time.perf_counter()
        fill(sync, args.jobs)
        used = sync.info("memory")["used_memory_human"]
        print(
            f"filled {args.jobs:,} enqueued + 10,000 delayed + 1,000 completed + 1,000 dead "
            f"in {time.perf_counter() - start:.1f}s (redis memory {used})"
        )
        client = redis.asyncio.Redis.from_url(server.url())
        adapter = AutumnAdapter(client, source="bench", queues=QUEUES)
        first = SnapshotQuery.build(per_page=25)
        deep_page = max(1, args.jobs // 25 - 1)
        deep = SnapshotQuery.build({ListName.ENQUEUED: deep_page, ListName.FAILED: 40}, 25)

        start = time.perf_counter()
        await adapter.counters()
        print(
            f"{'counters, first read (every history entry decoded)':<44} "
            f"{(time.perf_counter() - start) * 1000:7.1f} ms"
        )
        await timed("counters, steady state (nothing new)", args.repeat, adapter.counters)
        for new in (10, 1000):
            samples = []
            for _ in range(max(3, args.repeat // 10)):
                push_history(sync, new)
                begin = time.perf_counter()
                await adapter.counters()
                samples.append((time.perf_counter() - begin) * 1000)
            print(
                f"{f'counters after {new:,} new entries per history':<44} "
                f"median {statistics.median(samples):7.2f} ms"
            )
        await timed("snapshot, first pages", args.repeat, lambda: adapter.snapshot(first))
        await timed(
            f"snapshot, enqueued page {deep_page:,}", args.repeat, lambda: adapter.snapshot(deep)
        )
        await timed(
            "job lookup, unknown id (probes histories)",
            args.repeat,
            lambda: adapter.job("missing-id"),
        )
        shallow_cost = await commands(client, lambda: adapter.snapshot(first))
        deep_cost = await commands(client, lambda: adapter.snapshot(deep))
        print(f"redis commands per snapshot: {shallow_cost} (first pages), {deep_cost} (deep)")

        service = JobService({"bench": adapter}, cache_ttl_s=1.0)
        service.cache.misses = 0
        start = time.perf_counter()
        await asyncio.gather(*(service.snapshot("bench", first) for _ in range(args.viewers)))
        elapsed = (time.perf_counter() - start) * 1000
        print(
            f"{args.viewers} concurrent viewers: {elapsed:.1f} ms, "
            f"{service.cache.misses} Redis read(s) (coalesced)"
        )
        await client.aclose()
        sync.close()
    finally:
        server.stop()


if __name__ == "__main__":
    asyncio.run(main())
