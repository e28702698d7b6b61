"""Celery's task events into jobbridge's result index, at a flood: how fast the feed indexes
them and the longest the event loop waits meanwhile.

Starts its own redis-server (never 6379). Another process publishes ``--tasks`` tasks'
events as a prefork worker does (``task-received``, ``task-started``, ``task-succeeded``,
buffered ``--per-message`` to a message on ``/0.celeryev/task.multi``) at ``--rate`` events a
second, while one ``TaskEventFeed`` follows them into a ``ResultIndex``. A ticker on the feed's
loop records the longest gap between its wake-ups. Printed: the publisher's rate, the time
until every task is in the completed bucket and how long after the last publish that was,
whether the feed kept up (a subscriber that falls too far behind is dropped by Redis at its
pubsub output buffer limit, 32 MB by default, and the events in between are lost), the
longest loop wait and the process's resident memory.

    .venv/bin/python -m benchmarks.bench_celery_events --tasks 100000
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import time
import uuid

import redis
import redis.asyncio

from benchmarks.bench_celery_unacked import Ticker
from benchmarks.side_by_side import proc_status
from jobbridge.adapters.celery.control import events_channel
from jobbridge.adapters.celery.index import Bucket, ResultIndex
from jobbridge.adapters.celery.keys import CeleryKeys
from jobbridge.adapters.celery.task_events import TaskEventFeed
from jobbridge.dev.private_redis import start_redis_server
from tests.celery.celery_unacked_seed import event_message


def publish(url: str, tasks: int, per_message: int, rate: float) -> None:
    """The events of ``tasks`` tasks, each task's three in order, at ``rate`` events a
    second (0: as fast as Redis takes them), a pipeline of 100 PUBLISHes at a time."""
    conn = redis.Redis.from_url(url)
    channel = events_channel("", 0, "task-multi")
    pending: list[dict[str, object]] = []
    pipe = conn.pipeline(transaction=False)
    started = time.perf_counter()
    for n in range(tasks):
        task_id, now = str(uuid.uuid4()), time.time()
        common = {"uuid": task_id, "hostname": "bench@host", "pid": 1, "clock": n}
        pending += [
            {
                **common,
                "type": "task-received",
                "timestamp": now,
                "name": "tasks.add",
                "args": f"({n}, 2)",
                "kwargs": "{}",
                "retries": 0,
                "root_id": task_id,
                "parent_id": None,
            },
            {**common, "type": "task-started", "timestamp": now + 0.001},
            {**common, "type": "task-succeeded", "timestamp": now + 0.002, "result": str(n)},
        ]
        if len(pending) >= per_message:
            pipe.publish(channel, event_message(pending, "bench@host"))
            pending = []
            if len(pipe) >= 100:
                pipe.execute()
                ahead = (n + 1) * 3 / rate - (time.perf_counter() - started) if rate else 0
                if ahead > 0:
                    time.sleep(ahead)
    if pending:
        pipe.publish(channel, event_message(pending, "bench@host"))
    pipe.execute()
    took = time.perf_counter() - started
    print(f"published {tasks * 3:,} events in {took:.1f} s ({tasks * 3 / took:,.0f}/s)")


async def measure(url: str, tasks: int, per_message: int, rate: float) -> None:
    client = redis.asyncio.Redis.from_url(url)
    index = ResultIndex(
        client,
        client,
        keys=CeleryKeys(),
        base="jobbridge:celery::index:",
        source="bench",
        lifecycle_prefix="jobbridge:celery::lifecycle:",
    )
    feed = TaskEventFeed(client, index, global_keyprefix="", db=0, source="bench")
    await feed.start()
    while feed.subscriptions == 0:
        await asyncio.sleep(0.01)
    publisher = multiprocessing.Process(target=publish, args=(url, tasks, per_message, rate))
    with Ticker() as ticker:
        began = time.perf_counter()
        publisher.start()
        completed = 0
        deadline = began + max(120.0, tasks / 500)
        published_at = None
        progress_at, last = time.perf_counter(), 0
        while completed < tasks and time.perf_counter() < deadline:
            await asyncio.sleep(0.1)
            completed = await client.zcard(index.key(Bucket.COMPLETED))
            now = time.perf_counter()
            if published_at is None and not publisher.is_alive():
                published_at = now
            if completed != last:
                progress_at, last = now, completed
            elif published_at is not None and now - progress_at > 5:
                break  # all published, nothing indexed for 5 s: the rest was lost
        took = time.perf_counter() - began
    publisher.join()
    lag = time.perf_counter() - published_at if published_at else 0.0
    rss_mb = proc_status(os.getpid()).get("VmRSS", 0) / 1024
    kept_up = completed == tasks and feed.subscriptions == 1
    print(
        f"indexed {completed:,} of {tasks:,} tasks ({feed.events:,} events) in {took:.1f} s, "
        f"{lag:.2f} s after the last was published; "
        f"{'kept up' if kept_up else 'fell behind: Redis dropped the subscription'}; "
        f"{feed.written.written:,} entries written; longest loop wait "
        f"{ticker.longest * 1000:.1f} ms; RSS {rss_mb:.0f} MB"
    )
    await feed.close()
    await index.close()
    await client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--per-message", type=int, default=30, help="events per message")
    parser.add_argument(
        "--rate", type=float, default=15_000, help="events published a second (0: no limit)"
    )
    args = parser.parse_args()
    server = start_redis_server()
    try:
        asyncio.run(measure(server.url(), args.tasks, args.per_message, args.rate))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
