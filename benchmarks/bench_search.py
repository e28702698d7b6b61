"""What one search across sources costs: time, Redis commands and the longest event-loop stall.

Starts its own redis-server (never 6379), fills one Autumn backlog (``--jobs`` enqueued,
10,000 delayed, full completed and dead histories: benchmarks.bench_autumn_reads), then
searches ``--sources`` sources of it for an unknown id, a correlation id and a name:
uncached (every search reads), and with ``--viewers`` searches at once through the
service's coalescing (one Redis read per source).

    .venv/bin/python -m benchmarks.bench_search --jobs 200000 --sources 10
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import redis
import redis.asyncio

from benchmarks.bench_autumn_reads import PREFIX, QUEUES, commands, fill
from jobbridge.adapters.autumn.adapter import AutumnAdapter
from jobbridge.adapters.contract import JobAdapter
from jobbridge.dev.private_redis import start_redis_server
from jobbridge.search import search
from jobbridge.service import JobService


async def longest_stall(work) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """(elapsed ms, longest gap between two ticks of a 1 ms ticker ms) while ``work`` runs."""
    gaps: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            gaps.append((now - last) * 1000)
            last = now

    task = asyncio.create_task(ticker())
    start = time.perf_counter()
    await work()
    elapsed = (time.perf_counter() - start) * 1000
    done.set()
    await task
    return elapsed, max(gaps, default=0.0)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=200_000, help="enqueued jobs (default 200k)")
    parser.add_argument("--sources", type=int, default=10, help="sources searched (default 10)")
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--viewers", type=int, default=50)
    args = parser.parse_args()

    server = start_redis_server()
    try:
        sync = redis.Redis.from_url(server.url())
        fill(sync, args.jobs)
        client = redis.asyncio.Redis.from_url(server.url())
        adapters: dict[str, JobAdapter] = {
            f"s{n}": AutumnAdapter(client, source=f"s{n}", key_prefix=PREFIX, queues=QUEUES)
            for n in range(args.sources)
        }
        print(
            f"{args.sources} sources over {args.jobs:,} enqueued + 10,000 delayed + 1,000 "
            "completed + 1,000 dead"
        )
        uncached = JobService(adapters, cache_ttl_s=0.0, read_timeout_s=60.0)
        for label, query in (
            ("unknown id", "no-such-job"),
            ("principal id", "u-1"),
            ("name", "send_email"),
        ):
            samples, stalls = [], []
            for _ in range(args.repeat):
                elapsed, stall = await longest_stall(
                    lambda q=query: search(uncached, q)  # type: ignore[misc]
                )
                samples.append(elapsed)
                stalls.append(stall)
            cost = await commands(client, lambda q=query: search(uncached, q))  # type: ignore[misc]
            print(
                f"search {label:<14} median {statistics.median(samples):8.1f} ms   "
                f"longest loop stall {max(stalls):6.1f} ms   {cost} Redis commands"
            )

        shared = JobService(adapters, cache_ttl_s=1.0, read_timeout_s=60.0)
        shared.cache.misses = 0
        start = time.perf_counter()
        await asyncio.gather(*(search(shared, "no-such-job") for _ in range(args.viewers)))
        elapsed = (time.perf_counter() - start) * 1000
        print(
            f"{args.viewers} searches at once: {elapsed:.1f} ms, {shared.cache.misses} Redis "
            f"read(s) for {args.sources} sources (coalesced)"
        )
        await client.aclose()
        sync.close()
    finally:
        server.stop()


if __name__ == "__main__":
    asyncio.run(main())
