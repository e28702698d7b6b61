"""What hostile data costs a running jobbridge: memory, request time and event-loop stalls.

Repeats the measurements of the hostile-data review against a real ``jobbridge serve``
process (its own redis-server, never 6379), each in a fresh database:

* memory: 300 viewer requests of 100-row pages, each with a distinct ``completed_page``,
  against full completed and dead histories and 200 waiting jobs whose records carry 16 KB
  errors; RSS before, after, and after the cache's time to live has passed with no requests;
* big history entries: 20 dead entries of 5 MB; the first counters read, the next ones, and
  the worst ``/healthz`` latency while they run;
* lookups of unknown ids: 20 of them against those histories;
* a 6.7 MB payload: its job page, one viewer and then 8 at once, with the worst ``/healthz``
  latency meanwhile.

``/healthz`` does no work, so its latency while something else runs is how long the event
loop was kept from serving it: the stall. It is polled every 5 ms from a separate process.

    .venv/bin/python -m benchmarks.bench_hostile
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import redis

from jobbridge.dev.private_redis import RedisServer, free_port, start_redis_server

PREFIX = "autumn:jobs"


def record(job_id: str, now: int, *, payload: object, error: str | None) -> str:
    return json.dumps(
        {
            "id": job_id,
            "name": "send_email",
            "queue": "default",
            "payload": payload,
            "attempt": 5,
            "max_attempts": 5,
            "initial_backoff_ms": 250,
            "enqueued_at_ms": now - 10,
            "started_at_ms": now - 5,
            "finished_at_ms": now,
            "claimed_by": None,
            "claimed_at_ms": None,
            "last_error": error,
        },
        separators=(",", ":"),
    )


def push_dead(client: redis.Redis, body: str) -> str:
    job_id = json.loads(body)["id"]
    client.lpush(f"{PREFIX}:dead", body)
    client.set(f"{PREFIX}:dead-record:{job_id}", body)
    return str(job_id)


def big_payload(megabytes: float) -> dict[str, Any]:
    count = int(megabytes * 1_000_000 / 45)
    return {"items": [{"n": n, "text": "y" * 20} for n in range(count)]}


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Server:
    """``jobbridge serve`` in a subprocess, on a free port, against one database."""

    def __init__(self, redis_url: str, cache_ttl_s: float) -> None:
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="jobbridge-bench-")
        config = Path(self.dir) / "jobbridge.toml"
        config.write_text(
            f"[server]\nport = {self.port}\ncache_ttl_s = {cache_ttl_s}\n\n"
            f'[[sources]]\nname = "orders"\nsystem = "autumn"\nredis_url = "{redis_url}"\n'
        )
        self.process = subprocess.Popen(
            [sys.executable, "-m", "jobbridge", "serve", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.base = f"http://127.0.0.1:{self.port}"

    async def ready(self, session: aiohttp.ClientSession) -> None:
        for _ in range(200):
            try:
                async with session.get(self.base + "/healthz") as reply:
                    if reply.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
        raise RuntimeError("jobbridge did not start")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


async def timed(session: aiohttp.ClientSession, url: str) -> float:
    start = time.perf_counter()
    async with session.get(url) as reply:
        await reply.read()
        if reply.status >= 500:
            raise RuntimeError(f"{url}: {reply.status}")
    return (time.perf_counter() - start) * 1000


_PROBE = """
import sys, threading, time, urllib.request
url, worst, stop = sys.argv[1], 0.0, threading.Event()
def poll():
    global worst
    while not stop.is_set():
        start = time.perf_counter()
        urllib.request.urlopen(url).read()
        worst = max(worst, time.perf_counter() - start)
        time.sleep(0.005)
thread = threading.Thread(target=poll)
thread.start()
sys.stdin.readline()
stop.set()
thread.join()
print(worst * 1000)
"""


async def with_stall(
    session: aiohttp.ClientSession, base: str, work: Callable[[], Awaitable[Any]]
) -> tuple[Any, float]:
    """Run ``work`` while another process polls /healthz; its result and the worst /healthz
    latency (ms). The poller is its own process so that this one's work on the responses
    does not count as the server's."""
    probe = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _PROBE,
        base + "/healthz",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    await asyncio.sleep(0.2)
    try:
        result = await work()
    finally:
        out, _ = await probe.communicate(b"done\n")
    return result, float(out.decode().strip() or "nan")


async def memory(server: RedisServer, db: int) -> None:
    client = redis.Redis.from_url(server.url(db))
    now = int(time.time() * 1000)
    for n in range(1000):
        body = record(str(uuid.uuid4()), now - n, payload={"n": n}, error="e" * 16_000)
        client.lpush(f"{PREFIX}:completed", body)
        push_dead(client, body)
    for n in range(200):
        # Waiting jobs that failed before (a requeue keeps last_error): rows decoded per read.
        job_id = str(uuid.uuid4())
        client.set(
            f"{PREFIX}:record:{job_id}",
            record(job_id, now - n, payload={"n": n}, error="r" * 16_000),
        )
        client.lpush(f"{PREFIX}:queue", job_id)
    jb = Server(server.url(db), cache_ttl_s=1.0)
    try:
        async with aiohttp.ClientSession() as session:
            await jb.ready(session)
            await timed(session, jb.base + "/admin/jobs/orders")
            before = rss_mb(jb.process.pid)
            start = time.perf_counter()

            async def views() -> None:
                for page in range(1, 301):
                    url = f"{jb.base}/admin/jobs/orders?per_page=100&completed_page={page}"
                    await timed(session, url)

            _, stall = await with_stall(session, jb.base, views)
            elapsed = time.perf_counter() - start
            after = rss_mb(jb.process.pid)
            await asyncio.sleep(2.0)
            await timed(session, jb.base + "/healthz")
            idle = rss_mb(jb.process.pid)
        print(
            f"memory: 300 views, each a distinct completed_page, per_page=100, 16 KB errors "
            f"({elapsed:.1f} s): "
            f"RSS {before:.0f} MB -> {after:.0f} MB, {idle:.0f} MB after 2 s idle; "
            f"worst /healthz meanwhile {stall:.0f} ms"
        )
    finally:
        jb.stop()
        client.flushdb()
        client.close()


async def big_entries(server: RedisServer, db: int) -> None:
    client = redis.Redis.from_url(server.url(db))
    now = int(time.time() * 1000)
    payload = big_payload(5)
    for n in range(20):
        push_dead(client, record(str(uuid.uuid4()), now - n, payload=payload, error="boom"))
    size = len(client.lindex(f"{PREFIX}:dead", 0) or b"") / 1_000_000
    jb = Server(server.url(db), cache_ttl_s=0.0)
    try:
        async with aiohttp.ClientSession() as session:
            await jb.ready(session)
            counters = jb.base + "/admin/api/counters"
            first, stall = await with_stall(session, jb.base, lambda: timed(session, counters))
            print(
                f"20 dead entries of {size:.1f} MB: first counters read {first:.0f} ms, "
                f"worst /healthz meanwhile {stall:.0f} ms"
            )
            later = [await timed(session, counters) for _ in range(20)]
            print(f"  next counters reads: median {sorted(later)[10]:.1f} ms")
            page, stall = await with_stall(
                session, jb.base, lambda: timed(session, jb.base + "/admin/jobs/orders")
            )
            print(f"  source page {page:.0f} ms, worst /healthz meanwhile {stall:.0f} ms")

            async def lookups() -> list[float]:
                return [
                    await timed(session, f"{jb.base}/admin/api/sources/orders/jobs/nope-{n}")
                    for n in range(20)
                ]

            times, stall = await with_stall(session, jb.base, lookups)
            print(
                f"  20 lookups of unknown ids: median {sorted(times)[10]:.1f} ms, "
                f"worst {max(times):.0f} ms, worst /healthz {stall:.0f} ms"
            )
    finally:
        jb.stop()
        client.flushdb()
        client.close()


async def big_payload_page(server: RedisServer, db: int) -> None:
    client = redis.Redis.from_url(server.url(db))
    now = int(time.time() * 1000)
    job_id = push_dead(client, record("big-1", now, payload=big_payload(6.7), error="boom"))
    size = len(client.get(f"{PREFIX}:dead-record:{job_id}") or b"") / 1_000_000
    jb = Server(server.url(db), cache_ttl_s=1.0)
    try:
        async with aiohttp.ClientSession() as session:
            await jb.ready(session)
            url = f"{jb.base}/admin/jobs/orders/{job_id}"
            one, stall = await with_stall(session, jb.base, lambda: timed(session, url))
            print(
                f"job page of a {size:.1f} MB record: {one:.0f} ms (first: starts the decoding "
                f"process), worst /healthz {stall:.0f} ms"
            )
            await asyncio.sleep(1.2)
            one, stall = await with_stall(session, jb.base, lambda: timed(session, url))
            print(f"  again: {one:.0f} ms, worst /healthz {stall:.0f} ms")
            await asyncio.sleep(1.2)

            async def eight() -> list[float]:
                return list(await asyncio.gather(*(timed(session, url) for _ in range(8))))

            times, stall = await with_stall(session, jb.base, eight)
            print(
                f"  8 viewers at once: slowest {max(times):.0f} ms, worst /healthz {stall:.0f} ms"
            )
    finally:
        jb.stop()
        client.flushdb()
        client.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.parse_args()
    server = start_redis_server()
    try:
        print(f"jobbridge bench_hostile, pid {os.getpid()}, redis on port {server.port}")
        await memory(server, 1)
        await big_entries(server, 2)
        await big_payload_page(server, 3)
    finally:
        server.stop()


if __name__ == "__main__":
    asyncio.run(main())
