"""One slow Redis next to a healthy one: the healthy source's latency, with and without a
frozen neighbour.

Starts two redis-servers of its own (never 6379), two Autumn sources on each (histories at
Autumn's 1,000-entry cap, as ``bench_overview`` fills them), and serves jobbridge in this
process with the read cache off and the default read timeout. A poller process keeps
``--pollers`` requests in flight on the overview, its counters and every source's counters
fragment, as open dashboards do. A second process times the snapshot API of a source on the
healthy server, one request at a time, for ``--seconds``: first with both servers answering,
then while the other server runs ``DEBUG SLEEP``, then while it is stopped (SIGSTOP). It
prints each phase's percentiles, and what the API's counters said of the frozen sources.

    .venv/bin/python -m benchmarks.bench_slow_redis --seconds 3 --pollers 8

Run it from another checkout (``PYTHONPATH``) to measure another version of jobbridge.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import redis
from aiohttp import web

from benchmarks.bench_overview import fill
from benchmarks.side_by_side import load_average, print_table
from jobbridge.dev.private_redis import RedisServer, free_port, start_redis_server
from jobbridge.settings import ServerConfig, Settings, SourceConfig
from jobbridge.web.app import create_app

#: the poller: keeps one request in flight per URL given (repeat a URL for more) until killed
_POLLER = """
import sys, threading, urllib.error, urllib.request
def loop(url):
    while True:
        try:
            with urllib.request.urlopen(url, timeout=30) as reply:
                reply.read()
        except urllib.error.HTTPError as exc:
            exc.read()
for url in sys.argv[1:]:
    threading.Thread(target=loop, args=(url,), daemon=True).start()
threading.Event().wait()
"""
#: the timer: GETs argv[2] one at a time for argv[1] seconds, prints (ms, status) pairs as JSON
_TIMER = """
import json, sys, time, urllib.error, urllib.request
until = time.monotonic() + float(sys.argv[1])
out = []
while time.monotonic() < until:
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(sys.argv[2], timeout=30) as reply:
            reply.read()
            status = reply.status
    except urllib.error.HTTPError as exc:
        exc.read()
        status = exc.code
    out.append(((time.perf_counter() - start) * 1000, status))
    time.sleep(0.02)
print(json.dumps(out))
"""
PHASES = ("none", "debug_sleep", "sigstop")


def start_server() -> RedisServer:
    try:  # Redis 7 refuses DEBUG unless allowed; 6.2 has no such option and allows it
        return start_redis_server(extra_args=("--enable-debug-command", "local"))
    except RuntimeError:
        return start_redis_server()


@contextmanager
def frozen(server: RedisServer, phase: str, seconds: float) -> Iterator[None]:
    """Keep ``server`` from answering for about ``seconds`` (nothing for "none")."""
    if phase == "none":
        yield
        return
    if phase == "debug_sleep":
        client = redis.Redis(port=server.port, socket_timeout=seconds + 30)
        sleeper = threading.Thread(
            target=client.execute_command, args=("DEBUG", "SLEEP", seconds + 0.5)
        )
        sleeper.start()
        time.sleep(0.1)
        try:
            yield
        finally:
            sleeper.join()
            client.close()
        return
    os.kill(server.process.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(server.process.pid, signal.SIGCONT)


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(len(ordered) * p) - 1)]


async def run(seconds: float, pollers: int) -> None:
    healthy, neighbour = start_server(), start_server()
    runner: web.AppRunner | None = None
    poller: subprocess.Popen[bytes] | None = None
    try:
        sources = []
        for server, names in ((healthy, ("healthy", "healthy-2")), (neighbour, ("slow", "slow-2"))):
            for name in names:
                fill(redis.Redis(port=server.port), f"{name}:jobs")
                sources.append(
                    SourceConfig(
                        name=name,
                        system="autumn",
                        redis_url=server.url(0),
                        key_prefix=f"{name}:jobs",
                        queues=("critical", "default", "low"),
                    )
                )
        settings = Settings(
            server=ServerConfig(port=free_port(), cache_ttl_s=0.0), sources=tuple(sources)
        )
        runner = web.AppRunner(create_app(settings), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", settings.server.port).start()
        base = f"http://127.0.0.1:{settings.server.port}"
        polled = [
            f"{base}/admin/jobs",
            f"{base}/admin/jobs/counters",
            f"{base}/admin/api/counters",
            *(f"{base}/admin/jobs/{s.name}/counters" for s in sources),
        ]
        urls = [polled[i % len(polled)] for i in range(pollers)]
        target = f"{base}/admin/api/sources/healthy/snapshot"
        # The first read of each source decodes its histories: not what is measured.
        await asyncio.to_thread(
            subprocess.run, [sys.executable, "-c", _TIMER, "1", target], stdout=subprocess.DEVNULL
        )
        poller = subprocess.Popen([sys.executable, "-c", _POLLER, *urls])
        print(
            f"4 Autumn sources (histories at 1,000 entries) on 2 redis-servers; read cache off; "
            f"{pollers} requests in flight on the overview and counters; {seconds:g} s per phase"
        )
        rows = []
        for phase in PHASES:
            timer = subprocess.Popen(
                [sys.executable, "-c", _TIMER, str(seconds), target], stdout=subprocess.PIPE
            )
            with frozen(neighbour, phase, seconds):
                await asyncio.sleep(seconds / 2)
                said = await asyncio.to_thread(slow_rows, f"{base}/admin/api/counters")
                out, _ = await asyncio.to_thread(timer.communicate)
            replies = json.loads(out)
            ms = [m for m, _ in replies]
            bad = sorted({s for _, s in replies if s != 200})
            rows.append(
                (
                    phase,
                    str(len(ms)),
                    f"{percentile(ms, 0.5):.1f}",
                    f"{percentile(ms, 0.95):.1f}",
                    f"{percentile(ms, 0.99):.1f}",
                    f"{max(ms):.1f}",
                    ",".join(map(str, bad)) or "-",
                    said,
                )
            )
            await asyncio.sleep(1)  # the frozen server's backlog drains
        print_table(
            ("neighbour", "n", "p50 ms", "p95 ms", "p99 ms", "max ms", "non-200", "slow source"),
            rows,
        )
        print(f"load average: {load_average()}")
    finally:
        if poller is not None:
            poller.kill()
            poller.wait()
        if runner is not None:
            await runner.cleanup()
        for server in (healthy, neighbour):
            os.kill(server.process.pid, signal.SIGCONT)
            server.stop()


def slow_rows(url: str) -> str:
    """What ``api/counters`` says of the source "slow" (mid-freeze), and how long it took."""
    import urllib.request

    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=30) as reply:
        body = json.loads(reply.read())
    took = time.perf_counter() - start
    row = next(r for r in body["sources"] if r["name"] == "slow")
    return f"{row['error'] or 'up'} ({took:.1f} s)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each phase")
    parser.add_argument("--pollers", type=int, default=8, help="requests kept in flight")
    args = parser.parse_args()
    asyncio.run(run(args.seconds, args.pollers))


if __name__ == "__main__":
    main()
