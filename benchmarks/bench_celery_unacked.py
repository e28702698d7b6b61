"""The background sort of Celery's ``unacked`` at scale: how long a refresh takes and the
longest the event loop waits meanwhile.

Starts its own redis-server (never 6379), seeds ``--held`` messages as kombu writes them
(half with an eta), then times three refreshes of one ``UnackedView``: the first (every
value read and decoded), one with nothing changed, and one after 1% of the tags were
acknowledged and 1% delivered. A ticker task on the same loop records the longest gap
between its wake-ups: the longest any step held the loop.

    .venv/bin/python -m benchmarks.bench_celery_unacked --held 100000
"""

from __future__ import annotations

import argparse
import asyncio
import time

import redis
import redis.asyncio

from jobbridge.adapters.celery.keys import CeleryKeys
from jobbridge.adapters.celery.unacked import UnackedView
from jobbridge.dev.private_redis import start_redis_server
from tests.celery.celery_unacked_seed import seed_held


class Ticker:
    """The longest gap between wake-ups of a task that asks to wake every millisecond."""

    def __init__(self) -> None:
        self.longest = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            self.longest = max(self.longest, now - last)
            last = now

    def __enter__(self) -> Ticker:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()


async def measure(url: str, held: int) -> None:
    conn = redis.Redis.from_url(url)
    started = time.perf_counter()
    made = seed_held(conn, held)
    print(f"seeded {held:,} held messages in {time.perf_counter() - started:.1f} s")
    client = redis.asyncio.Redis.from_url(url)
    view = UnackedView(client, CeleryKeys())
    for label in ("first (decodes every value)", "nothing changed", "1% left, 1% new"):
        if label.startswith("1%"):
            leaving = list(made)[: held // 100]
            conn.hdel("unacked", *leaving)
            conn.zrem("unacked_index", *leaving)
            seed_held(conn, held // 100, start_s=1_800_000_000.0)
        with Ticker() as ticker:
            await asyncio.sleep(0.01)
            began = time.perf_counter()
            result = await view.refresh()
            took = time.perf_counter() - began
        print(
            f"{label:30} {took * 1000:8.0f} ms   longest loop wait {ticker.longest * 1000:6.1f} ms"
            f"   scheduled {len(result.scheduled):,} reserved {len(result.reserved):,}"
        )
    await client.aclose()
    conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--held", type=int, default=100_000)
    args = parser.parse_args()
    server = start_redis_server()
    try:
        asyncio.run(measure(server.url(), args.held))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
