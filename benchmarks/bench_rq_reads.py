"""jobbridge against rq-dashboard 0.9.0 on one big RQ backlog: the same pages, side by side.

Starts its own redis-server (never 6379) and seeds it in RQ's own format. RQ itself makes the
first two jobs: ``Queue.enqueue`` twice, a burst ``SimpleWorker`` in between failing the first
(its task ``app.tasks.send_email`` cannot be imported). The bulk copies their field sets through
pipelines: ``--jobs`` jobs queued in ``default`` and ``--failed`` jobs in its failed registry,
each failure with a results-stream entry as the worker wrote it. RQ's ``Queue.count`` and
``FailedJobRegistry.get_job_count(cleanup=False)`` must then see them.

It then runs rq-dashboard (its CLI) and ``jobbridge serve`` (one ``system = "rq"`` source,
no auth on loopback, read cache off) as their own processes on that Redis, and times each
tool's JSON endpoint for the same four pages, ``per_page`` 25:

* the queue's first page and a middle one (page 20,000 of 40,000 at 1,000,000 jobs);
* the failed registry's first page and a middle one.

rq-dashboard answers ``/0/data/jobs/default/<queued|failed>/25/asc/<page>.json`` (asc: the
queue's head, the lowest failed score first). Its pager reads about N x 25 jobs for page N (a
known bug), one HGETALL and one XREVRANGE each, so its middle pages are slow: each (tool, page)
pair makes up to ``--repeat`` requests but stops once ``--budget`` seconds are spent (always at
least one; the two tools take turns, one request each, so the machine's load weighs on both
alike), and a request without an answer in ``--timeout`` seconds is reported as timed out
(rq-dashboard is then restarted, so the abandoned request stops using the CPU). jobbridge
answers ``/admin/api/sources/rq/snapshot?per_page=25&enqueued_page=N`` (or ``failed_page=N``;
newest first): a snapshot also reads the first page of every other list, all counters, the
workers and the schedules, unless the API takes an ``only=`` parameter (then it is used, and
the output says which).

Prints the seeding time, a table of medians and p95s with the ratio rq-dashboard / jobbridge,
the rows and bytes each answer held, and each server's RSS (and peak RSS) after the run.

    .venv/bin/pip install -e '.[bench]'
    .venv/bin/python -m benchmarks.bench_rq_reads --jobs 100000 --failed 10000
    .venv/bin/python -m benchmarks.bench_rq_reads              # 1,000,000 / 10,000
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import math
import signal
import sys
import time
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import cast

import redis
from rq import Queue, SimpleWorker
from rq.job import Job
from rq.registry import FailedJobRegistry
from rq.serializers import DefaultSerializer
from rq.utils import get_call_string, utcformat

from benchmarks.side_by_side import (
    Measured,
    Server,
    Timing,
    add_timing_arguments,
    get,
    load_average,
    measure,
    print_table,
    ratio,
    run_benchmark,
)
from jobbridge.dev.private_redis import RedisServer, free_port, start_redis_server

QUEUE = "default"
#: the task every seeded job calls; not importable, so the burst worker's job fails
FUNC = "app.tasks.send_email"
#: failed job n calls with call(FAILED_BASE + n), queued job n with call(n)
FAILED_BASE = 100_000_000
PER_PAGE = 25
SOURCE = "rq"
BIN = Path(sys.executable).parent


# --- seeding ---------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def _second(epoch_s: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch_s))


def rq_time(epoch: float) -> str:
    """RQ's timestamp format (``rq.utils.utcformat``: ``%Y-%m-%dT%H:%M:%S.%fZ``, UTC), cheaply."""
    micros = round(epoch * 1_000_000)
    return f"{_second(micros // 1_000_000)}.{micros % 1_000_000:06d}Z"


def call(n: int) -> tuple[tuple[str], dict[str, str]]:
    """The arguments of job number ``n``."""
    return (f"user-{n}@example.com",), {"template": "welcome"}


def job_body(n: int) -> dict[str, bytes]:
    """The fields of job ``n`` that depend on its call: ``data`` and ``description``."""
    args, kwargs = call(n)
    data = zlib.compress(DefaultSerializer.dumps((FUNC, None, args, kwargs)))
    description = get_call_string(FUNC, args, kwargs) or ""
    return {"data": data, "description": description.encode()}


def stored_hash(client: redis.Redis, key: str) -> dict[str, bytes]:
    raw = cast("dict[bytes, bytes]", client.hgetall(key))
    return {name.decode(): value for name, value in raw.items()}


@dataclass
class Templates:
    """Field sets RQ itself wrote, which the bulk copies."""

    queued: dict[str, bytes]
    failed: dict[str, bytes]
    #: the failed hash's TTL, also its failed-registry score offset (RQ's failure_ttl)
    failure_ttl: int
    #: the failed job's results-stream entry and that stream's TTL (-1: none)
    result: dict[str, bytes]
    result_ttl: int


def make_templates(client: redis.Redis) -> Templates:
    """A first job fails in a burst worker, a second is then left queued: both by RQ itself."""
    queue = Queue(QUEUE, connection=client)
    args, kwargs = call(FAILED_BASE)
    failing = queue.enqueue(FUNC, *args, **kwargs)
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    logging.disable(logging.CRITICAL)  # the worker logs the (expected) traceback
    try:
        SimpleWorker([queue], connection=client).work(burst=True, logging_level="ERROR")
    finally:
        logging.disable(logging.NOTSET)
        for sig, handler in handlers.items():  # the worker leaves its own installed
            signal.signal(sig, handler)
    status = Job.fetch(failing.id, connection=client).get_status()
    if status != "failed":
        raise RuntimeError(f"the template job ended {status!r}, not failed")
    args, kwargs = call(1)
    waiting = queue.enqueue(FUNC, *args, **kwargs)
    queued, failed = stored_hash(client, waiting.key), stored_hash(client, failing.key)
    for stored, n in ((failed, FAILED_BASE), (queued, 1)):
        if {name: stored[name] for name in ("data", "description")} != job_body(n):
            raise RuntimeError("the bulk's data/description would differ from what RQ writes")
    stream = f"rq:results:{failing.id}"
    entries = cast("list[tuple[bytes, dict[bytes, bytes]]]", client.xrange(stream))
    if len(entries) != 1:
        raise RuntimeError(f"expected one result entry, found {len(entries)}")
    return Templates(
        queued=queued,
        failed=failed,
        failure_ttl=client.ttl(failing.key),
        result={name.decode(): value for name, value in entries[0][1].items()},
        result_ttl=client.ttl(stream),
    )


def seed_queued(client: redis.Redis, tpl: Templates, jobs: int, batch: int) -> None:
    """Jobs 2..jobs (RQ made job 1): HSET the hash, RPUSH the id, as ``enqueue`` does."""
    start = time.time() - jobs / 1000  # one job a millisecond, up to now
    pipe = client.pipeline(transaction=False)
    ids: list[str] = []
    for n in range(2, jobs + 1):
        job_id = str(uuid.uuid4())
        at = start + n / 1000
        fields: dict[str, bytes | str] = dict(tpl.queued)
        fields.update(job_body(n))
        fields["created_at"] = rq_time(at - 0.0004)
        fields["enqueued_at"] = rq_time(at)
        pipe.hset(f"rq:job:{job_id}", mapping=fields)  # type: ignore[arg-type]
        ids.append(job_id)
        if len(ids) == batch:
            pipe.rpush(f"rq:queue:{QUEUE}", *ids)
            pipe.execute()
            ids = []
    if ids:
        pipe.rpush(f"rq:queue:{QUEUE}", *ids)
    pipe.execute()


def seed_failed(client: redis.Redis, tpl: Templates, failed: int, batch: int) -> None:
    """Failures 1..failed-1 (RQ made number 0): the hash with its TTL, the failed registry
    entry scored now + failure_ttl, and a type-2 results-stream entry, as a worker writes."""
    now = time.time()
    start = now - failed  # one failure a second, up to now
    pipe = client.pipeline(transaction=False)
    for n in range(1, failed):
        job_id = str(uuid.uuid4())
        ended = start + n
        fields: dict[str, bytes | str] = dict(tpl.failed)
        fields.update(job_body(FAILED_BASE + n))
        fields["created_at"] = rq_time(ended - 0.0212)
        fields["enqueued_at"] = rq_time(ended - 0.0208)
        fields["started_at"] = rq_time(ended - 0.0006)
        fields["ended_at"] = rq_time(ended)
        fields["last_heartbeat"] = rq_time(ended)
        key = f"rq:job:{job_id}"
        pipe.hset(key, mapping=fields)  # type: ignore[arg-type]
        if tpl.failure_ttl > 0:
            pipe.expire(key, tpl.failure_ttl)
        pipe.zadd(f"rq:failed:{QUEUE}", {job_id: ended + tpl.failure_ttl})
        entry = dict(tpl.result)
        entry["execution_id"] = uuid.uuid4().hex.encode()
        entry["execution_started_at"] = repr(ended - 0.0006).encode()
        entry["execution_ended_at"] = repr(ended).encode()
        stream = f"rq:results:{job_id}"
        pipe.xadd(stream, entry, id=f"{int(ended * 1000)}-0", maxlen=10, approximate=True)  # type: ignore[arg-type]
        if tpl.result_ttl > 0:
            pipe.expire(stream, tpl.result_ttl)
        if n % batch == 0:
            pipe.execute()
    pipe.execute()


def verify(client: redis.Redis, jobs: int, failed: int) -> None:
    """RQ's own counts, and RQ reading back one seeded job of each kind."""
    queue = Queue(QUEUE, connection=client)
    registry = FailedJobRegistry(QUEUE, connection=client)
    counts = (queue.count, registry.get_job_count(cleanup=False))
    if counts != (jobs, failed):
        raise RuntimeError(f"RQ counts {counts}, expected {(jobs, failed)}")
    last_queued = queue.get_job_ids(jobs - 1, 1)[0]
    last_failed = registry.get_job_ids(failed - 1, failed - 1, cleanup=False)[0]
    for job_id, status in ((last_queued, "queued"), (last_failed, "failed")):
        job = Job.fetch(job_id, connection=client)
        if job.get_status() != status or job.func_name != FUNC or not job.args:
            raise RuntimeError(f"RQ reads job {job_id} back wrong")
    result = Job.fetch(last_failed, connection=client).latest_result()
    if result is None or "Traceback" not in (result.exc_string or ""):
        raise RuntimeError("RQ finds no exception text for a seeded failure")


def seed(client: redis.Redis, jobs: int, failed: int, batch: int) -> float:
    """Seed and verify; the seconds it took."""
    sample = 1_700_000_000.25
    if rq_time(sample) != utcformat(datetime.fromtimestamp(sample, UTC)):
        raise RuntimeError("rq_time does not format as rq.utils.utcformat")
    begin = time.perf_counter()
    tpl = make_templates(client)
    seed_queued(client, tpl, jobs, batch)
    seed_failed(client, tpl, failed, batch)
    elapsed = time.perf_counter() - begin
    verify(client, jobs, failed)
    return elapsed


# --- the two servers -------------------------------------------------------------------------


def rq_dashboard(redis_url: str, workdir: Path) -> Server:
    port = free_port()
    argv = [str(BIN / "rq-dashboard"), "--bind", "127.0.0.1", "--port", str(port)]
    argv += ["--redis-url", redis_url]
    return Server(
        "rq-dashboard",
        argv,
        f"http://127.0.0.1:{port}/0/data/queues.json",
        workdir / "rq-dashboard.log",
    )


def jobbridge(redis_url: str, workdir: Path) -> Server:
    port = free_port()
    config = workdir / "jobbridge.toml"
    # Loopback, so no [auth] is needed; cache_ttl_s = 0 so that no request is served from
    # the previous one's read.
    config.write_text(
        f'[server]\nhost = "127.0.0.1"\nport = {port}\nread_only = true\ncache_ttl_s = 0\n\n'
        f'[[sources]]\nname = "{SOURCE}"\nsystem = "rq"\nredis_url = "{redis_url}"\n'
        f'queues = ["{QUEUE}"]\n'
    )
    return Server(
        "jobbridge",
        [str(BIN / "jobbridge"), "serve", "--config", str(config)],
        f"http://127.0.0.1:{port}/healthz",
        workdir / "jobbridge.log",
    )


def memory_line(server: Server) -> str:
    """RSS now and peak, of the server process and of its children, in MB."""
    if server.process is None:
        return "not running"
    mem = server.memory()
    line = f"RSS {mem.rss / 1024:.0f} MB (peak {mem.peak / 1024:.0f} MB)"
    if mem.children:
        rss, peak = mem.children_rss / 1024, mem.children_peak / 1024
        line += f"; {mem.children} child process(es): RSS {rss:.0f} MB (peak {peak:.0f} MB)"
    return line


# --- the run ---------------------------------------------------------------------------------


@dataclass
class Endpoint:
    label: str
    #: rq-dashboard's path under /0/data/jobs/default/
    dashboard: str
    #: jobbridge's snapshot query string, and the list it pages
    list_name: str
    page: int


def endpoints(jobs: int, failed: int) -> list[Endpoint]:
    queue_pages = math.ceil(jobs / PER_PAGE)
    failed_pages = math.ceil(failed / PER_PAGE)
    found = []
    for registry, list_name, pages in (
        ("queued", "enqueued", queue_pages),
        ("failed", "failed", failed_pages),
    ):
        middle = max(1, pages // 2)
        for page in dict.fromkeys((1, middle)):
            label = f"{registry} page {page:,} of {pages:,}"
            dashboard = f"{registry}/{PER_PAGE}/asc/{page}.json"
            found.append(Endpoint(label, dashboard, list_name, page))
    return found


def snapshot_parameters(base: str) -> set[str]:
    """The query parameters jobbridge's OpenAPI document lists for the snapshot route."""
    reply = get(f"{base}/admin/api/openapi.json", 30)
    if reply is None or reply.status != 200:
        return set()
    for path, item in json.loads(reply.body).get("paths", {}).items():
        if path.endswith("/snapshot"):
            return {p.get("name") for p in item.get("get", {}).get("parameters", [])}
    return set()


def compare(
    dash: Server, bridge: Server | None, args: argparse.Namespace
) -> list[tuple[Endpoint, Timing, Timing]]:
    dash_base = dash.ready_url.removesuffix("/queues.json") + f"/jobs/{QUEUE}/"
    only = False
    bridge_base = ""
    if bridge is not None:
        bridge_base = bridge.ready_url.removesuffix("/healthz")
        only = "only" in snapshot_parameters(bridge_base)
        what = (
            "only= given: just the paged list"
            if only
            else "no only= parameter: a full snapshot, i.e. also the first page of every "
            "other list, all counters, workers and schedules"
        )
        print(
            f"jobbridge: GET /admin/api/sources/{SOURCE}/snapshot?per_page={PER_PAGE}"
            f"&<enqueued|failed>_page=<page> ({what}; newest first: the queue's tail, the "
            "failed registry's highest score)"
        )
    # Warm up (imports, templates, connections): not timed.
    for _ in range(3):
        get(dash_base + f"queued/{PER_PAGE}/asc/1.json", args.timeout)
        if bridge is not None:
            get(f"{bridge_base}/admin/api/sources/{SOURCE}/snapshot?per_page={PER_PAGE}", 60)
    results = []
    for point in endpoints(args.jobs, args.failed):
        runs = [Measured(dash, dash_base + point.dashboard, ("jobs",))]
        if bridge is not None:
            query = f"per_page={PER_PAGE}&{point.list_name}_page={point.page}"
            if only:
                query += f"&only={point.list_name}"
            url = f"{bridge_base}/admin/api/sources/{SOURCE}/snapshot?{query}"
            runs.append(Measured(bridge, url, ("lists", point.list_name, "items")))
        measure(runs, args)
        dashboard = runs[0].timing
        bridged = runs[1].timing if bridge is not None else Timing()
        print(
            f"  {point.label}: rq-dashboard {dashboard.cell(args.timeout)}, "
            f"jobbridge {bridged.cell(args.timeout) if bridge else 'skipped'}",
            flush=True,
        )
        results.append((point, dashboard, bridged))
    return results


def report(results: list[tuple[Endpoint, Timing, Timing]], timeout_s: float) -> None:
    head = ("endpoint (per_page 25)", "rq-dashboard ms", "jobbridge ms", "ratio")
    rows = [
        (
            p.label,
            d.cell(timeout_s),
            b.cell(timeout_s) if b.samples or b.timed_out else "-",
            ratio(d, b, timeout_s),
        )
        for p, d, b in results
    ]
    print("\nmedian / p95 ms (n requests); ratio = rq-dashboard median / jobbridge median")
    print_table(head, rows)
    print("\nwhat each answer held (first request):")
    for point, dashboard, bridged in results:
        text = f"  {point.label:<28} rq-dashboard {dashboard.rows} jobs, {dashboard.size:,} bytes"
        if bridged.samples:
            text += f"; jobbridge {bridged.rows} rows, {bridged.size:,} bytes"
        print(text)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--jobs", type=int, default=1_000_000, help="jobs queued in 'default' (default 1,000,000)"
    )
    parser.add_argument(
        "--failed", type=int, default=10_000, help="jobs in the failed registry (default 10,000)"
    )
    add_timing_arguments(parser)
    parser.add_argument(
        "--batch", type=int, default=5_000, help="jobs per seeding pipeline (default 5,000)"
    )
    parser.add_argument(
        "--skip-jobbridge",
        action="store_true",
        help="time rq-dashboard alone (while jobbridge cannot serve an RQ source)",
    )
    args = parser.parse_args()
    if args.jobs < 1 or args.failed < 1 or args.repeat < 1 or args.batch < 1:
        parser.error("--jobs, --failed, --repeat and --batch must be at least 1")
    return args


def run(args: argparse.Namespace, workdir: Path, servers: list[Server]) -> Iterator[RedisServer]:
    """Start Redis (yielded at once, for the caller to stop), seed it, then compare."""
    redis_server = start_redis_server()
    yield redis_server
    client = redis.Redis.from_url(redis_server.url())
    print(
        f"redis-server {redis_server.version()} on port {redis_server.port}; rq {version('rq')}, "
        f"rq-dashboard {version('rq-dashboard')}, jobbridge {version('jobbridge')}"
    )
    elapsed = seed(client, args.jobs, args.failed, args.batch)
    used = client.info("memory")["used_memory_human"]
    print(
        f"seeded {args.jobs:,} queued + {args.failed:,} failed jobs in {elapsed:.1f} s "
        f"(redis memory {used}); RQ counts them: Queue.count {args.jobs:,}, "
        f"FailedJobRegistry.get_job_count(cleanup=False) {args.failed:,}"
    )
    client.close()
    dash = rq_dashboard(redis_server.url(), workdir)
    servers.append(dash)
    dash.start()
    bridge = None
    if not args.skip_jobbridge:
        bridge = jobbridge(redis_server.url(), workdir)
        servers.append(bridge)
        bridge.start()
    print(
        f"rq-dashboard: GET /0/data/jobs/{QUEUE}/<queued|failed>/{PER_PAGE}/asc/<page>.json "
        f"(asc: the queue's head, the failed registry's lowest score first)"
    )
    print(f"load average before timing: {load_average()}")
    results = compare(dash, bridge, args)
    report(results, args.timeout)
    print(f"\nafter the run (load average {load_average()}):")
    for server in servers:
        print(f"  {server.name}: {memory_line(server)}")


def main() -> None:
    run_benchmark(run, parse_args(), "jobbridge-bench-rq-")


if __name__ == "__main__":
    main()
