"""Many viewers polling one dashboard: HTTP latency, and Redis commands per page served.

Starts its own redis-server (never 6379), fills it like ``bench_autumn_reads`` and serves
jobbridge in-process on a free loopback port, then sends ``--requests`` requests from
``--concurrency`` clients to the source page and to its htmx counters fragment.

    .venv/bin/python -m benchmarks.bench_web --jobs 100000 --concurrency 50
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import aiohttp
import redis
import redis.asyncio
from aiohttp import web

from benchmarks.bench_autumn_reads import fill
from jobbridge.dev.private_redis import free_port, start_redis_server
from jobbridge.settings import ServerConfig, Settings, SourceConfig
from jobbridge.web.app import create_app


async def hammer(url: str, requests: int, concurrency: int) -> list[float]:
    latencies: list[float] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(requests):
        queue.put_nowait(n)

    async def client(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            queue.get_nowait()
            start = time.perf_counter()
            async with session.get(url) as reply:
                await reply.read()
                assert reply.status == 200, reply.status
            latencies.append((time.perf_counter() - start) * 1000)

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(client(session) for _ in range(concurrency)))
    return latencies


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()

    server = start_redis_server()
    runner: web.AppRunner | None = None
    try:
        sync = redis.Redis.from_url(server.url())
        fill(sync, args.jobs)
        port = free_port()
        settings = Settings(
            server=ServerConfig(port=port),
            sources=(SourceConfig(name="bench", system="autumn", redis_url=server.url()),),
        )
        runner = web.AppRunner(create_app(settings), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        base = f"http://127.0.0.1:{port}/admin/jobs/bench"
        await hammer(base, 5, 1)  # warm up: discovery, scripts, templates
        print(
            f"{args.jobs:,} enqueued jobs; {args.requests} requests per path, "
            f"{args.concurrency} concurrent clients"
        )
        for label, url in (("source page", base), ("counters fragment", base + "/counters")):
            before = sync.info("stats")["total_commands_processed"]
            start = time.perf_counter()
            latencies = await hammer(url, args.requests, args.concurrency)
            elapsed = time.perf_counter() - start
            commands = sync.info("stats")["total_commands_processed"] - before - 1
            latencies.sort()
            print(
                f"{label:<18} {args.requests / elapsed:7.0f} req/s   "
                f"median {statistics.median(latencies):6.1f} ms   "
                f"p95 {latencies[int(len(latencies) * 0.95) - 1]:6.1f} ms   "
                f"{commands / args.requests:5.2f} Redis commands per request"
            )
        sync.close()
    finally:
        if runner is not None:
            await runner.cleanup()
        server.stop()


if __name__ == "__main__":
    asyncio.run(main())
