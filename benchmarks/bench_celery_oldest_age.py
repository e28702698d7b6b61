"""What the oldest waiting age of Celery queues costs: Redis commands and time per counters
read, with the ages and without them, and the background step that remembers the tails.

Starts its own redis-server (never 6379), seeds ``--queues`` queues with ``--depth`` real
protocol 2 messages in every priority list, runs one background step, then reads the
counters ``--reads`` times each way, counting commands with ``INFO commandstats`` and
timing the median; the step is timed with the longest wait of the event loop meanwhile.

    .venv/bin/python -m benchmarks.bench_celery_oldest_age --queues 100
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid

import redis
import redis.asyncio

from benchmarks.bench_celery_unacked import Ticker
from jobbridge.adapters.celery.adapter import CeleryAdapter
from jobbridge.adapters.celery.control import build_task_message
from jobbridge.adapters.celery.tail_ages import ReadPlan
from jobbridge.dev.private_redis import start_redis_server


def seed(conn: redis.Redis, adapter: CeleryAdapter, depth: int, used: int) -> None:
    pipe = conn.pipeline(transaction=False)
    for queue in adapter.queues:
        for step in adapter.keys.priority_steps[:used]:
            for _ in range(depth):
                task_id = str(uuid.uuid4())
                message = build_task_message(
                    task="examples.celery_app.add",
                    task_id=task_id,
                    args=[1, 2],
                    kwargs={},
                    queue=queue,
                    priority=step,
                    parent_id=None,
                    root_id=task_id,
                    origin="bench@test",
                )
                pipe.lpush(adapter.keys.step_list(queue, step), message)
    pipe.execute()


def calls(conn: redis.Redis) -> int:
    stats = conn.info("commandstats")
    return sum(int(v["calls"]) for k, v in stats.items() if k != "cmdstat_info")


async def reads(adapter: CeleryAdapter, conn: redis.Redis, n: int) -> tuple[float, float]:
    """Median ms of a counters read, and Redis commands per read."""
    times = []
    before = calls(conn)
    for _ in range(n):
        began = time.perf_counter()
        await adapter.counters()
        times.append(time.perf_counter() - began)
    return statistics.median(times) * 1000, (calls(conn) - before) / n


async def measure(url: str, queues: int, depth: int, n: int, used: int) -> None:
    conn = redis.Redis.from_url(url)
    conn.flushdb()
    names = tuple(f"q{i}" for i in range(queues))
    adapter = CeleryAdapter(redis.asyncio.Redis.from_url(url), source="bench", queues=names)
    seed(conn, adapter, depth, used)
    lists = queues * used
    print(f"{queues} queues, {used} priority list(s) of each holding {depth} messages:")
    for label in ("first step (decodes every tail)", "step, nothing changed"):
        with Ticker() as ticker:
            await asyncio.sleep(0.01)
            began = time.perf_counter()
            before = calls(conn)
            await adapter.tail_ages.step()
            took = time.perf_counter() - began
            spent = calls(conn) - before
        print(
            f"  {label:34} {took * 1000:7.1f} ms  {spent} commands (the script's own included)  "
            f"longest loop wait {ticker.longest * 1000:5.1f} ms"
        )
    with_ms, with_cmds = await reads(adapter, conn, n)
    real = adapter.tail_ages.queue_reads
    adapter.tail_ages.queue_reads = lambda pipe, lists: ReadPlan((), ())  # type: ignore[method-assign]
    without_ms, without_cmds = await reads(adapter, conn, n)
    adapter.tail_ages.queue_reads = real  # type: ignore[method-assign]
    print(f"  {n} counters reads ({lists} lists in use):")
    print(f"  without ages: {without_ms:6.2f} ms  {without_cmds:.0f} commands per read")
    print(f"  with ages:    {with_ms:6.2f} ms  {with_cmds:.0f} commands per read")
    print(
        f"  extra: {with_cmds - without_cmds:.0f} commands per read "
        f"({(with_cmds - without_cmds - 1) / queues:.0f} LINDEX per queue + 1 HMGET), "
        f"{with_ms - without_ms:+.2f} ms\n"
    )
    await adapter.close()
    conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queues", type=int, default=100)
    parser.add_argument("--depth", type=int, default=10)
    parser.add_argument("--reads", type=int, default=50)
    args = parser.parse_args()
    server = start_redis_server()
    try:
        for used in (4, 1):  # every priority list in use; only the default one (common)
            asyncio.run(measure(server.url(), args.queues, args.depth, args.reads, used))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
