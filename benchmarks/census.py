"""The cost of a queue census of 1,000,000 waiting RQ jobs: wall time, Redis commands (by
``INFO commandstats`` before and after, so the commands a script runs inside Redis count too),
client round trips, and the event loop's worst lag while it ran.

Starts its own redis-server (never 6379), writes the jobs in RQ's layout (tests/census/seed.py:
job hashes with RQ's enqueue fields and pickled ``data``, and the queue list), then runs the
census in this process as ``jobbridge serve`` does (``CensusManager.start``) and waits for it.
``--compare N`` also times N pages read the plain way (a pipeline of one ``HGET data`` per id),
the design the census's read script replaces.

Run: ``python -m benchmarks.census [--jobs 1000000] [--compare 50]``.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import redis
import redis.asyncio
from redis.asyncio.client import Pipeline

from jobbridge.census.model import CensusState
from jobbridge.census.runner import CensusManager, store_for
from jobbridge.dev.private_redis import start_redis_server
from jobbridge.settings import SourceConfig
from jobbridge.sources import build_adapters
from tests.census.seed import seed_rq_queue, truth

QUEUE = "deep"


class RoundTrips:
    """Counts the requests the client sends: a command alone, or a pipeline, is one."""

    def __init__(self) -> None:
        self.count = 0
        self._command = redis.asyncio.Redis.execute_command
        self._pipeline = Pipeline.execute

    def __enter__(self) -> RoundTrips:
        trips = self
        command, pipeline = self._command, self._pipeline

        async def counted_command(client: Any, *args: Any, **options: Any) -> Any:
            trips.count += 1
            return await command(client, *args, **options)

        async def counted_pipeline(pipe: Any, *args: Any, **options: Any) -> Any:
            trips.count += 1
            return await pipeline(pipe, *args, **options)

        redis.asyncio.Redis.execute_command = counted_command  # type: ignore[method-assign]
        Pipeline.execute = counted_pipeline  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        redis.asyncio.Redis.execute_command = self._command  # type: ignore[method-assign]
        Pipeline.execute = self._pipeline  # type: ignore[method-assign]


class LagMonitor:
    """The event loop's worst lateness running a 1 ms ticker, wall and loop-thread CPU (ms)."""

    def __init__(self) -> None:
        self.worst = self.worst_cpu = 0.0
        self.task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        while True:
            before, cpu = time.perf_counter(), time.thread_time()
            await asyncio.sleep(0.001)
            self.worst = max(self.worst, (time.perf_counter() - before - 0.001) * 1000)
            self.worst_cpu = max(self.worst_cpu, (time.thread_time() - cpu) * 1000)


def commandstats(client: redis.Redis) -> dict[str, int]:
    stats = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


async def census(url: str, jobs: int) -> dict[str, Any]:
    config = SourceConfig(name="rq", system="rq", redis_url=url)
    adapter = build_adapters((config,))["rq"]
    manager = CensusManager()
    monitor = LagMonitor()
    store = store_for(adapter, QUEUE)
    try:
        monitor.task = asyncio.create_task(monitor.run())
        with RoundTrips() as trips:
            started = time.perf_counter()
            await manager.start(adapter, QUEUE)
            while (result := await store.read()) is None or result.state is CensusState.RUNNING:
                await asyncio.sleep(0.2)
            wall = time.perf_counter() - started
        monitor.task.cancel()
    finally:
        await manager.close()
        await adapter.close()
    assert result.state is CensusState.DONE, result
    assert {c.name: c.count for c in result.names} == truth(jobs), "counts differ from the truth"
    return {"wall_s": wall, "round_trips": trips.count, "lag": monitor}


async def plain_pages(url: str, pages: int) -> float:
    """Seconds per page of 1,000 read the plain way: LRANGE, then a pipeline of HGETs."""
    client = redis.asyncio.Redis.from_url(url)
    try:
        started = time.perf_counter()
        for page in range(pages):
            ids = await client.lrange(f"rq:queue:{QUEUE}", page * 1000, page * 1000 + 999)
            pipe = client.pipeline(transaction=False)
            for job_id in ids:
                pipe.hget(b"rq:job:" + job_id, "data")
            await pipe.execute()
        return (time.perf_counter() - started) / pages
    finally:
        await client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--compare", type=int, default=0, metavar="PAGES")
    args = parser.parse_args()
    server = start_redis_server()
    try:
        url = server.url(0)
        client = redis.Redis.from_url(url)
        started = time.perf_counter()
        seed_rq_queue(client, args.jobs, queue=QUEUE)
        print(f"seeded {args.jobs:,} RQ jobs in {time.perf_counter() - started:.1f} s")
        client.config_resetstat()
        before = commandstats(client)
        found = asyncio.run(census(url, args.jobs))
        after = commandstats(client)
        used = {k: after.get(k, 0) - before.get(k, 0) for k in after}
        used.pop("info", None)
        used = {k: v for k, v in used.items() if v}
        lag = found["lag"]
        print(f"census of {args.jobs:,} jobs: {found['wall_s']:.1f} s wall, counts exact")
        print(f"client round trips: {found['round_trips']:,}")
        print(f"Redis commands: {sum(used.values()):,} in all")
        for name, calls in sorted(used.items(), key=lambda kv: -kv[1]):
            print(f"  {name:24} {calls:>10,}")
        print(f"worst event-loop lag: {lag.worst:.1f} ms ({lag.worst_cpu:.1f} ms loop CPU)")
        if args.compare:
            per_page = asyncio.run(plain_pages(url, args.compare))
            print(
                f"plain pipelined HGET: {per_page * 1000:.1f} ms a page of 1,000 "
                f"({per_page * args.jobs / 1000:.1f} s for {args.jobs:,} jobs, reads only)"
            )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
