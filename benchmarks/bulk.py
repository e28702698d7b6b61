"""The cost of a bulk retry (issue 19): 10,000 failed RQ jobs, 10,000 failed Celery tasks and
1,000 dead Autumn jobs, each retried by one bulk run, as ``jobbridge serve`` runs it (the dry
run, then the confirmed run in batches of ``BATCH`` through each job's own retry script).

Reports per system: the dry run's time, the run's jobs per second, and what a worker would
feel meanwhile. Probe threads with their own connections play a worker and its producer: a job
is pushed every 10 ms and the "worker" takes it with a blocking pop (``BLMOVE``, as RQ's and
Autumn's workers wait; Celery's ``BRPOP`` waits the same way), recording how long each job
waited from its push to the pop's return; another probe sends ``PING`` every 5 ms and records
the worst round trip. The same probes run 2 s on the idle Redis first, for comparison. The
event loop's worst lag (a 1 ms ticker) is reported too.

Starts its own redis-server (never 6379); the jobs are seeded by each system's contract
harness (tests/*/harness.py), through the system's own library or emulator.

Run: ``python -m benchmarks.bulk [--rq 10000] [--celery 10000] [--autumn 1000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import redis

from benchmarks.census import LagMonitor
from jobbridge.bulk import runner
from jobbridge.bulk.model import BulkState
from jobbridge.dev.private_redis import start_redis_server
from jobbridge.filters import JobFilter
from jobbridge.model import Action, ListName, SnapshotQuery
from jobbridge.service import JobService
from jobbridge.sources import build_adapters
from tests.contract.harness import State
from tests.contract.harnesses import HARNESSES

#: the probe's "worker" blocks this long at most on its queue, seconds
POP_TIMEOUT_S = 1.0
#: the probe's queue and the list its "worker" moves jobs to
PROBE_QUEUE = "bench:probe:queue"
PROBE_DONE = "bench:probe:done"


@dataclass
class Probe:
    """A worker's view of Redis while the run goes: blocking pops and PINGs on their own
    connections, in threads (so the event loop's own work does not count)."""

    url: str
    pop_late_ms: list[float] = field(default_factory=list)
    ping_ms: list[float] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def _pops(self) -> None:
        """A worker waiting on a queue: a job is pushed every 10 ms (by ``_pushes``) and
        popped with ``BLMOVE``; its wait is the time from its push to the pop's return."""
        client = redis.Redis.from_url(self.url)
        while not self.stop.is_set():
            raw = client.blmove(PROBE_QUEUE, PROBE_DONE, POP_TIMEOUT_S, "RIGHT", "LEFT")
            if raw is not None:
                self.pop_late_ms.append((time.perf_counter() - float(raw)) * 1000)
        client.close()

    def _pushes(self) -> None:
        client = redis.Redis.from_url(self.url)
        while not self.stop.is_set():
            client.lpush(PROBE_QUEUE, repr(time.perf_counter()))
            time.sleep(0.01)
        client.close()

    def _pings(self) -> None:
        client = redis.Redis.from_url(self.url)
        while not self.stop.is_set():
            started = time.perf_counter()
            client.ping()
            self.ping_ms.append((time.perf_counter() - started) * 1000)
            time.sleep(0.005)
        client.close()

    def __enter__(self) -> Probe:
        self.threads = [
            threading.Thread(target=f, daemon=True) for f in (self._pops, self._pushes, self._pings)
        ]
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()


class GcPauses:
    """The longest garbage collection while it is installed, ms (a pause of the whole
    process: the event loop's lag includes it, whatever the code it interrupted)."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.worst = max(self.worst, (time.perf_counter() - self._started) * 1000)

    def __enter__(self) -> GcPauses:
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else 0.0


async def bench(system: str, url: str, jobs: int) -> dict[str, Any]:
    harness = HARNESSES[system](url)
    started = time.perf_counter()
    harness.seed({State.FAILED: jobs})
    seeded = time.perf_counter() - started
    service = JobService(build_adapters((harness.source("bench"),)), cache_ttl_s=0.0)
    await service.start()
    try:
        only_failed = SnapshotQuery.build(per_page=1, only=frozenset({ListName.FAILED}))
        while (await service.snapshot("bench", only_failed)).lists[ListName.FAILED].total < jobs:
            await asyncio.sleep(0.2)  # Celery: the result index catches up in the background
        gc.collect()
        gc.freeze()  # as ``jobbridge serve`` does once started (jobbridge/web/app.py)
        # The probes' figures on an idle Redis first (the machine's own noise).
        with Probe(url) as idle:
            await asyncio.sleep(2.0)
        lag = LagMonitor()
        lag.task = asyncio.create_task(lag.run())
        with Probe(url) as probe, GcPauses() as pauses:
            started = time.perf_counter()
            run = await service.bulk_start(
                "bench", Action.RETRY, ListName.FAILED, JobFilter(), "bench"
            )
            while run.state is BulkState.MATCHING:
                await asyncio.sleep(0.05)
                run = await service.bulk_read("bench", run.id) or run
            matched_s = time.perf_counter() - started
            assert run.state is BulkState.MATCHED, run
            match_lag, match_cpu = lag.worst, lag.worst_cpu
            lag.worst = lag.worst_cpu = 0.0
            started = time.perf_counter()
            run = await service.bulk_confirm("bench", run.id, run.matched, "bench")
            while not run.finished:
                await asyncio.sleep(0.05)
                run = await service.bulk_read("bench", run.id) or run
            acted_s = time.perf_counter() - started
        lag.task.cancel()
        assert run.state is BulkState.DONE and run.done == jobs, run
    finally:
        gc.unfreeze()
        await service.close()
        harness.close()
    return {
        "system": system,
        "jobs": jobs,
        "seed_s": seeded,
        "dry_run_s": matched_s,
        "run_s": acted_s,
        "jobs_per_s": jobs / acted_s,
        "pop_late_worst_ms": max(probe.pop_late_ms, default=0.0),
        "pop_late_p99_ms": pct(probe.pop_late_ms, 0.99),
        "pops": len(probe.pop_late_ms),
        "ping_worst_ms": max(probe.ping_ms, default=0.0),
        "ping_p99_ms": pct(probe.ping_ms, 0.99),
        "idle_pop_late_worst_ms": max(idle.pop_late_ms, default=0.0),
        "idle_ping_worst_ms": max(idle.ping_ms, default=0.0),
        "gc_worst_ms": pauses.worst,
        "match_lag_worst_ms": match_lag,
        "match_cpu_worst_ms": match_cpu,
        "loop_lag_worst_ms": lag.worst,
        "loop_cpu_worst_ms": lag.worst_cpu,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rq", type=int, default=10_000)
    parser.add_argument("--celery", type=int, default=10_000)
    parser.add_argument("--autumn", type=int, default=1_000)
    args = parser.parse_args()
    server = start_redis_server()
    try:
        for db, (system, jobs) in enumerate(
            (("rq", args.rq), ("celery", args.celery), ("autumn", args.autumn)), start=1
        ):
            if not jobs:
                continue
            found = asyncio.run(bench(system, server.url(db), jobs))
            print(
                f"{system}: {jobs:,} failed jobs retried in batches of {runner.BATCH} "
                f"(seeded in {found['seed_s']:.1f}s): dry run {found['dry_run_s']:.2f}s, "
                f"run {found['run_s']:.2f}s = {found['jobs_per_s']:,.0f} jobs/s; a worker's "
                f"blocking pop waited at worst {found['pop_late_worst_ms']:.1f} ms for a job "
                f"pushed (p99 {found['pop_late_p99_ms']:.1f}, {found['pops']:,} jobs); "
                f"PING worst {found['ping_worst_ms']:.1f} ms (p99 {found['ping_p99_ms']:.1f}); "
                f"idle Redis, same probes: pop {found['idle_pop_late_worst_ms']:.1f} ms, "
                f"PING {found['idle_ping_worst_ms']:.1f} ms; "
                f"event loop worst lag: dry run {found['match_lag_worst_ms']:.1f} ms (CPU "
                f"{found['match_cpu_worst_ms']:.1f} ms), run {found['loop_lag_worst_ms']:.1f} ms "
                f"(CPU {found['loop_cpu_worst_ms']:.1f} ms); longest garbage collection "
                f"{found['gc_worst_ms']:.1f} ms",
                flush=True,
            )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
