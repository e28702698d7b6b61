"""Many sources on one dashboard: counters and overview cost per source, and the event loop's
worst lag while they are read.

Starts its own redis-servers (never 6379): one, or ``--servers`` of them with the sources
spread across. Every source is an Autumn prefix whose completed and dead lists are at
Autumn's 1,000-entry cap with realistic records (a 200-character payload field, a
200-character error) and whose three queues hold a few jobs. jobbridge serves in this process
with the read cache off; requests come from a separate process (so its work is not counted
here), one at a time. A task in the server's event loop wakes every millisecond and records
how late it woke: the worst lag is the longest the loop was kept from serving anything.

For each number of sources: the median of ``--polls`` reads of ``/admin/api/counters`` and of
the overview page in steady state (nothing changing), that per source, the same reads done raw
with redis-py (the same commands, nothing decoded) as a ratio, and the worst loop lag. Then the
loop lag while: 1,000 new entries land in every history at once; a job page shows a record
with a 5 MB payload.

    .venv/bin/python -m benchmarks.bench_overview --sources 1 10 30 100 --servers 1

``--refresh N`` measures instead what one refresh of the overview costs with N sources, a third
each of Autumn, RQ and Celery (each RQ and Celery source in a database of its own, three queues
with a few waiting jobs each): the polled fragment (the Sources table and the comparison),
``/api/counters`` and ``/api/compare``, in time per refresh and Redis commands per refresh
(INFO's ``total_commands_processed`` around the refreshes, less what the background work of the
same app sent in an equal idle time). Run it against main's code for the "before"
(``PYTHONPATH=/path/to/main python benchmarks/bench_overview.py --refresh 30``): a path main does
not serve is left out.

    .venv/bin/python -m benchmarks.bench_overview --refresh 30
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import sys
import time
import uuid
from collections.abc import Sequence

import redis
import redis.asyncio
from aiohttp import web

from jobbridge.dev.private_redis import RedisServer, free_port, start_redis_server
from jobbridge.settings import ServerConfig, Settings, SourceConfig
from jobbridge.web.app import create_app

QUEUES = ("critical", "default", "low")
HISTORY = 1000

#: the client: GETs each path given on stdin, prints the latencies (ms) as JSON
_CLIENT = """
import json, sys, time, urllib.request
out = []
for line in sys.stdin:
    url = line.strip()
    start = time.perf_counter()
    with urllib.request.urlopen(url) as reply:
        reply.read()
    out.append((time.perf_counter() - start) * 1000)
print(json.dumps(out))
"""


def record(prefix: str, now: int, n: int, *, error: bool, payload: object = None) -> str:
    return json.dumps(
        {
            "id": str(uuid.uuid4()),
            "name": "send_email",
            "queue": QUEUES[n % 3],
            "payload": payload if payload is not None else {"body": "p" * 200, "n": n},
            "attempt": 5 if error else 1,
            "max_attempts": 5,
            "initial_backoff_ms": 250,
            "enqueued_at_ms": now - 20,
            "started_at_ms": now - 10,
            "finished_at_ms": now,
            "claimed_by": None,
            "claimed_at_ms": None,
            "last_error": ("e" * 200) if error else None,
        },
        separators=(",", ":"),
    )


def fill(client: redis.Redis, prefix: str, new: int = HISTORY) -> None:
    """``new`` entries pushed to each history (trimmed to the cap), and a few waiting jobs."""
    now = int(time.time() * 1000)
    pipe = client.pipeline(transaction=False)
    for n in range(new):
        pipe.lpush(f"{prefix}:completed", record(prefix, now - n * 60_000, n, error=False))
        dead = record(prefix, now - n * 600_000, n, error=True)
        pipe.lpush(f"{prefix}:dead", dead)
        pipe.set(f"{prefix}:dead-record:{json.loads(dead)['id']}", dead)
    pipe.ltrim(f"{prefix}:completed", 0, HISTORY - 1)
    pipe.ltrim(f"{prefix}:dead", 0, HISTORY - 1)
    for n, queue in enumerate(QUEUES):
        job_id = str(uuid.uuid4())
        pipe.set(f"{prefix}:record:{job_id}", record(prefix, now, n, error=False))
        key = f"{prefix}:queue" if queue == "default" else f"{prefix}:queue:{queue}"
        pipe.lpush(key, job_id)
    pipe.execute()


class LagMonitor:
    """The event loop's worst lateness, in ms, since the last ``reset``, and the longest
    garbage collection in that time (a collection stops everything, the loop included)."""

    def __init__(self) -> None:
        self.worst = 0.0
        self.gc_worst = 0.0
        self._gc_start = 0.0
        self._task: asyncio.Task[None] | None = None
        gc.callbacks.append(self._gc)

    def _gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_start = time.perf_counter()
        else:
            self.gc_worst = max(self.gc_worst, (time.perf_counter() - self._gc_start) * 1000)

    async def _run(self) -> None:
        while True:
            start = time.perf_counter()
            await asyncio.sleep(0.001)
            self.worst = max(self.worst, (time.perf_counter() - start - 0.001) * 1000)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    def reset(self) -> float:
        worst, self.worst = self.worst, 0.0
        return worst

    def gc_reset(self) -> float:
        worst, self.gc_worst = self.gc_worst, 0.0
        return worst

    async def settle(self) -> None:
        """Start measuring afresh once this process's own blocking set-up work (filling
        Redis, a garbage collection) has let the monitor run again."""
        await asyncio.sleep(0.05)
        self.reset()
        self.gc_reset()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()


async def get_all(urls: Sequence[str]) -> list[float]:
    """GET each URL, one at a time, from a separate process; latencies in ms."""
    client = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _CLIENT,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await client.communicate("\n".join(urls).encode() + b"\n")
    return list(json.loads(out))


async def raw_counters(clients: dict[str, redis.asyncio.Redis], prefixes: dict[str, str]) -> None:
    """What jobbridge's counters send, sent raw: one pipeline per source, concurrently."""

    async def one(name: str) -> None:
        prefix = prefixes[name]
        pipe = clients[name].pipeline(transaction=False)
        for queue in QUEUES:
            key = f"{prefix}:queue" if queue == "default" else f"{prefix}:queue:{queue}"
            pipe.llen(key)
            pipe.lindex(key, -1)
        for key in ("delayed", "processing", "blocked"):
            pipe.zcard(f"{prefix}:{key}")
        pipe.zcount(f"{prefix}:processing", "-inf", time.time() * 1000)
        for key in ("completed", "dead"):
            pipe.llen(f"{prefix}:{key}")
            pipe.lindex(f"{prefix}:{key}", 0)
            pipe.lindex(f"{prefix}:{key}", -1)
        await pipe.execute()

    await asyncio.gather(*(one(name) for name in prefixes))


async def run(counts: Sequence[int], servers: int, polls: int) -> None:
    redises = [start_redis_server() for _ in range(servers)]
    runner: web.AppRunner | None = None
    monitor = LagMonitor()
    try:
        biggest = max(counts)
        sources = []
        prefixes: dict[str, str] = {}
        for n in range(biggest):
            server = redises[n % servers]
            name = f"svc{n:03d}"
            prefixes[name] = f"{name}:jobs"
            fill(redis.Redis(port=server.port), prefixes[name])
            sources.append(
                SourceConfig(
                    name=name,
                    system="autumn",
                    redis_url=server.url(0),
                    key_prefix=prefixes[name],
                    queues=QUEUES,
                )
            )
        print(
            f"{biggest} Autumn sources on {servers} redis-server(s), histories at "
            f"{HISTORY} entries each; read cache off; {polls} polls each"
        )
        monitor.start()
        for count in counts:
            settings = Settings(
                server=ServerConfig(port=free_port(), cache_ttl_s=0.0),
                sources=tuple(sources[:count]),
            )
            port = settings.server.port
            runner = web.AppRunner(create_app(settings), access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", port).start()
            gc.collect()
            gc.freeze()  # as ``jobbridge serve`` does once started
            base = f"http://127.0.0.1:{port}"
            first = await get_all([base + "/admin/api/counters"])
            await monitor.settle()
            counters = await get_all([base + "/admin/api/counters"] * polls)
            counters_lag = monitor.reset()
            overview = await get_all([base + "/admin/jobs"] * max(5, polls // 4))
            overview_lag = monitor.reset()
            gc_pause = monitor.gc_reset()
            clients = {
                name: redis.asyncio.Redis(port=redises[int(name[3:]) % servers].port)
                for name in list(prefixes)[:count]
            }
            raw = []
            for _ in range(polls):
                start = time.perf_counter()
                await raw_counters(clients, {n: prefixes[n] for n in clients})
                raw.append((time.perf_counter() - start) * 1000)
            for client in clients.values():
                await client.aclose()
            med, med_raw = statistics.median(counters), statistics.median(raw)
            print(
                f"{count:>4} sources: counters median {med:7.1f} ms ({med / count:5.2f} ms per "
                f"source; first read {first[0]:.0f} ms), raw redis-py {med_raw:6.1f} ms, "
                f"ratio {med / med_raw:4.1f}; overview page median "
                f"{statistics.median(overview):6.1f} ms; worst loop lag {counters_lag:.1f} ms "
                f"(counters), {overview_lag:.1f} ms (overview); longest GC {gc_pause:.1f} ms"
            )
            await runner.cleanup()
            runner = None
            gc.unfreeze()
        await changed_and_huge(redises, sources, prefixes, monitor)
    finally:
        await monitor.stop()
        if runner is not None:
            await runner.cleanup()
        for server in redises:
            server.stop()


async def changed_and_huge(
    redises: list[RedisServer],
    sources: list[SourceConfig],
    prefixes: dict[str, str],
    monitor: LagMonitor,
) -> None:
    """Loop lag while every history changes completely, and while a 5 MB record is shown."""
    chosen = sources[: min(10, len(sources))]
    settings = Settings(
        server=ServerConfig(port=free_port(), cache_ttl_s=0.0), sources=tuple(chosen)
    )
    runner = web.AppRunner(create_app(settings), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", settings.server.port).start()
    gc.collect()
    gc.freeze()  # as ``jobbridge serve`` does once started
    try:
        base = f"http://127.0.0.1:{settings.server.port}"
        await get_all([base + "/admin/api/counters"])
        for source in chosen:
            fill(redis.Redis.from_url(source.redis_url), prefixes[source.name], new=HISTORY)
        await monitor.settle()
        took = await get_all([base + "/admin/api/counters"])
        print(
            f"{len(chosen)} sources whose histories all changed (2,000 new entries each): "
            f"counters {took[0]:.0f} ms, worst loop lag {monitor.reset():.1f} ms, longest GC "
            f"{monitor.gc_reset():.1f} ms"
        )
        big = redis.Redis.from_url(chosen[0].redis_url)
        prefix = prefixes[chosen[0].name]
        payload = {"items": [{"n": n, "text": "y" * 20} for n in range(110_000)]}
        body = record(prefix, int(time.time() * 1000), 0, error=True, payload=payload)
        job_id = json.loads(body)["id"]
        big.set(f"{prefix}:record:{job_id}", body)
        big.lpush(f"{prefix}:queue", job_id)
        url = f"{base}/admin/jobs/{chosen[0].name}/{job_id}"
        await monitor.settle()
        took = await get_all([url, url])
        print(
            f"job page of a {len(body) / 1e6:.1f} MB record: {took[0]:.0f} ms first, "
            f"{took[1]:.0f} ms again; worst loop lag {monitor.reset():.1f} ms, longest GC "
            f"{monitor.gc_reset():.1f} ms"
        )
    finally:
        await runner.cleanup()
        gc.unfreeze()


# ---------------------------------------------------------------------------- --refresh

#: what one refresh of the overview reads: the polled fragment, and the JSON reads beside it
REFRESH_PATHS = ("/admin/jobs/counters", "/admin/api/counters", "/admin/api/compare")
#: HOOK for the charts: the per-source series reads a refresh of the overview's charts makes
#: (measured once the route answers; the charts drawn inside the fragment are in its figure)
SERIES_PATH = "/admin/api/sources/{source}/series?window=1h"


def refresh_sources(server: RedisServer, count: int) -> list[SourceConfig]:
    """``count`` sources, a third of each system, each holding a few waiting jobs."""
    import celery  # type: ignore[import-untyped]
    import rq

    made: list[SourceConfig] = []
    for n in range(count):
        kind = ("autumn", "rq", "celery")[n % 3]
        name = f"{kind}{n:03d}"
        if kind == "autumn":
            prefix = f"{name}:jobs"
            fill(redis.Redis(port=server.port), prefix, new=100)
            made.append(
                SourceConfig(
                    name=name,
                    system="autumn",
                    redis_url=server.url(0),
                    key_prefix=prefix,
                    queues=QUEUES,
                )
            )
            continue
        url = server.url(1 + n)
        if kind == "rq":
            conn = redis.Redis.from_url(url)
            for queue in QUEUES:
                for _ in range(3):
                    rq.Queue(queue, connection=conn).enqueue("os.getcwd")
            made.append(SourceConfig(name=name, system="rq", redis_url=url, queues=QUEUES))
        else:
            app = celery.Celery(broker=url, backend=url)
            for queue in QUEUES:
                for _ in range(3):
                    app.send_task("bench.noop", args=(1,), queue=queue)
            app.close()
            made.append(SourceConfig(name=name, system="celery", redis_url=url, queues=QUEUES))
    return made


def commands_processed(client: redis.Redis) -> int:
    return int(client.info("stats")["total_commands_processed"])


async def refresh_cost(count: int, polls: int) -> None:
    server = start_redis_server()
    runner: web.AppRunner | None = None
    try:
        sources = refresh_sources(server, count)
        settings = Settings(
            server=ServerConfig(port=free_port(), cache_ttl_s=0.0), sources=tuple(sources)
        )
        runner = web.AppRunner(create_app(settings), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", settings.server.port).start()
        base = f"http://127.0.0.1:{settings.server.port}"
        probe = redis.Redis(port=server.port)
        await get_all([base + "/admin/jobs"] * 3)  # warm: discovery, the first reads
        await asyncio.sleep(1.0)
        print(
            f"{count} sources ({count - 2 * (count // 3)} Autumn, {count // 3} RQ, "
            f"{count // 3} Celery) on one redis-server; read cache off; {polls} refreshes each"
        )
        paths = list(REFRESH_PATHS)
        series = SERIES_PATH.format(source=sources[0].name)
        if await _answers(base + series):
            paths.append("<series of every source>")
        for path in paths:
            if path.startswith("<"):
                urls = [base + SERIES_PATH.format(source=s.name) for s in sources]
            else:
                if not await _answers(base + path):
                    print(f"  {path}: not served by this code (before the change)")
                    continue
                urls = [base + path]
            # the background work's own commands over the same time, taken off
            before = commands_processed(probe)
            start = time.perf_counter()
            took = await get_all(urls * polls)
            elapsed = time.perf_counter() - start
            during = commands_processed(probe) - before - 1
            before = commands_processed(probe)
            await asyncio.sleep(elapsed)
            idle = commands_processed(probe) - before - 1
            per_refresh = (during - idle) / polls
            per_request = statistics.median(took)
            print(
                f"  {path}: median {per_request * len(urls):7.1f} ms per refresh "
                f"({per_request:.1f} ms a request), {per_refresh:7.1f} Redis commands per "
                f"refresh ({per_refresh / count:.1f} per source; background {idle / elapsed:.0f}"
                "/s taken off)"
            )
    finally:
        if runner is not None:
            await runner.cleanup()
        server.stop()


async def _answers(url: str) -> bool:
    import urllib.error
    import urllib.request

    def status() -> int:
        try:
            with urllib.request.urlopen(url) as reply:
                return int(reply.status)
        except urllib.error.HTTPError as exc:
            return exc.code

    return await asyncio.to_thread(status) == 200


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sources", type=int, nargs="+", default=[1, 10, 30, 100])
    parser.add_argument("--servers", type=int, default=1)
    parser.add_argument("--polls", type=int, default=40)
    parser.add_argument(
        "--refresh",
        type=int,
        default=None,
        metavar="N",
        help="measure one overview refresh with N sources of all three systems instead",
    )
    args = parser.parse_args()
    if args.refresh:
        asyncio.run(refresh_cost(args.refresh, args.polls))
    else:
        asyncio.run(run(sorted(args.sources), args.servers, args.polls))


if __name__ == "__main__":
    main()
