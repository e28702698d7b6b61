"""The chart series' background cost: what following 1,000 finished jobs costs each system's
follower (Redis commands and ms), what an idle step costs, and what one series read costs.

Starts its own redis-server (never 6379). For each system, in its own database, it writes
1,000 finished jobs in the system's own layout (Autumn: 500 completed and 500 dead records,
pushed as Autumn's settle script does; RQ: 1,000 job hashes with ``ended_at``, 700 in the
finished registry and 300 in the failed one, scored by expiry as RQ does; Celery: 1,000
result metas, 700 SUCCESS and 300 FAILURE, fed to jobbridge's result index as its
subscription does), then runs ``SeriesFollower.step`` until the feed has nothing new. Commands
are Redis's own count (``INFO stats`` total_commands_processed, the INFO calls subtracted), so
the commands a script runs count one each. "stall ms" is the longest the event loop was held
while the follower caught up (a 1 ms ticker's lateness).

Run: ``python -m benchmarks.bench_series [--jobs 1000] [--reads 200]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import redis.asyncio

from jobbridge.dev.private_redis import start_redis_server
from jobbridge.series.follower import SeriesFollower
from jobbridge.series.model import Window
from jobbridge.series.store import SeriesStore
from jobbridge.settings import SourceConfig
from jobbridge.sources import build_adapters


async def commands(client: redis.asyncio.Redis) -> int:
    info = await client.info("stats")
    return int(info["total_commands_processed"])


async def measure(
    client: redis.asyncio.Redis, work: Callable[[], Awaitable[Any]]
) -> tuple[Any, int, float]:
    """(result, commands, ms) of ``work``; the INFO call itself is not counted."""
    before = await commands(client)
    start = time.perf_counter()
    result = await work()
    ms = (time.perf_counter() - start) * 1000
    return result, await commands(client) - before - 1, ms


def autumn_record(n: int, at_ms: int) -> bytes:
    return json.dumps(
        {
            "id": f"a-{n}",
            "name": "send_email",
            "queue": "default",
            "payload": {"n": n},
            "attempt": 1,
            "max_attempts": 5,
            "initial_backoff_ms": 250,
            "enqueued_at_ms": at_ms - 20,
            "started_at_ms": at_ms - 10,
            "finished_at_ms": at_ms,
            "claimed_by": None,
            "claimed_at_ms": None,
            "last_error": None,
        },
        separators=(",", ":"),
    ).encode()


async def seed_autumn(client: redis.asyncio.Redis, jobs: int) -> None:
    at = int(time.time() * 1000) - 60_000
    pipe = client.pipeline(transaction=False)
    for n in range(jobs):
        key = "autumn:jobs:completed" if n % 2 == 0 else "autumn:jobs:dead"
        pipe.lpush(key, autumn_record(n, at + n))
    await pipe.execute()


async def seed_rq(client: redis.asyncio.Redis, jobs: int) -> None:
    ended = datetime.now(UTC) - timedelta(minutes=1)
    stamp = ended.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    pipe = client.pipeline(transaction=False)
    pipe.sadd("rq:queues", "rq:queue:default")
    for n in range(jobs):
        job_id = f"r-{n}"
        failed = n % 10 >= 7
        pipe.hset(
            f"rq:job:{job_id}",
            mapping={
                "status": "failed" if failed else "finished",
                "origin": "default",
                "created_at": stamp,
                "enqueued_at": stamp,
                "started_at": stamp,
                "ended_at": stamp,
            },
        )
        registry = "rq:failed:default" if failed else "rq:finished:default"
        pipe.zadd(registry, {job_id: time.time() + (31_536_000 if failed else 500)})
    await pipe.execute()


async def seed_celery(adapter: Any, jobs: int) -> None:
    done = datetime.now(UTC) - timedelta(minutes=1)
    metas = []
    for n in range(jobs):
        state = "FAILURE" if n % 10 >= 7 else "SUCCESS"
        meta = {
            "status": state,
            "result": n if state == "SUCCESS" else {"exc_type": "ValueError"},
            "traceback": None,
            "children": [],
            "date_done": done.isoformat(),
            "name": "tasks.add",
            "queue": "celery",
            "task_id": f"c-{n}",
        }
        metas.append((f"c-{n}".encode(), json.dumps(meta).encode(), int(time.time() * 1000)))
    await adapter.index.ingest(metas)


async def bench_system(url: str, system: str, jobs: int, reads: int) -> dict[str, Any]:
    config = SourceConfig(name=system, system=system, redis_url=url)
    adapter = build_adapters([config])[system]
    client = adapter.client
    if system == "autumn":
        await seed_autumn(client, jobs)
    elif system == "rq":
        await seed_rq(client, jobs)
        await adapter.discover_queues()  # type: ignore[attr-defined]
    else:
        await seed_celery(adapter, jobs)
    store = SeriesStore(client, "jobbridge:", system)
    follower = SeriesFollower(adapter, store)

    async def catch_up() -> tuple[int, int]:
        counted = steps = 0
        while True:
            report = await follower.step()
            steps += 1
            counted += report.counted
            if not report.more and report.read == 0:
                return counted, steps

    stalls: list[float] = []

    async def watch_loop() -> None:
        # The longest the event loop went without running this task: a step's stall.
        while True:
            start = time.perf_counter()
            await asyncio.sleep(0.001)
            stalls.append((time.perf_counter() - start) * 1000 - 1)

    watcher = asyncio.create_task(watch_loop())
    (counted, steps), cmds, ms = await measure(client, catch_up)
    watcher.cancel()
    _, idle_cmds, idle_ms = await measure(client, follower.step)
    read_cmds = read_ms = 0.0
    for window in (Window.HOUR, Window.DAY):

        async def read_many(w: Window = window) -> None:
            for _ in range(reads):
                await store.read(w, None, time.time())

        _, c, m = await measure(client, read_many)
        read_cmds += c / reads / 2
        read_ms += m / reads / 2
    await adapter.close()
    return {
        "system": system,
        "counted": counted,
        "steps": steps,
        "commands_per_1000": cmds * 1000 / max(1, counted),
        "ms_per_1000": ms * 1000 / max(1, counted),
        "idle_step_commands": idle_cmds,
        "idle_step_ms": idle_ms,
        "read_commands": read_cmds,
        "read_ms": read_ms,
        "max_stall_ms": max(stalls, default=0.0),
    }


async def main(jobs: int, reads: int) -> None:
    server = start_redis_server()
    try:
        rows = []
        for db, system in enumerate(("autumn", "rq", "celery"), start=1):
            rows.append(await bench_system(server.url(db), system, jobs, reads))
        print(
            f"{'system':8} {'counted':>7} {'steps':>5} {'cmds/1000':>9} {'ms/1000':>8} "
            f"{'idle cmds':>9} {'idle ms':>7} {'read cmds':>9} {'read ms':>7} {'stall ms':>8}"
        )
        for r in rows:
            print(
                f"{r['system']:8} {r['counted']:>7} {r['steps']:>5} "
                f"{r['commands_per_1000']:>9.0f} {r['ms_per_1000']:>8.1f} "
                f"{r['idle_step_commands']:>9} {r['idle_step_ms']:>7.1f} "
                f"{r['read_commands']:>9.1f} {r['read_ms']:>7.2f} {r['max_stall_ms']:>8.1f}"
            )
    finally:
        server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--reads", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(main(args.jobs, args.reads))
