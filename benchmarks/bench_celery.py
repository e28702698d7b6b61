"""jobbridge against Flower 2.2.0 on one Celery Redis: waiting messages and task history.

Starts its own redis-server (never 6379), then Flower (``celery ... flower``, its API open
with ``FLOWER_UNAUTHENTICATED_API=true``) and ``jobbridge serve`` (one ``system = "celery"``
source, no auth on loopback, read cache off), each as its own process, before any task exists:
Flower knows only the tasks whose events it receives while it runs, so both must watch the
history being made.

**History** (``--tasks`` finished tasks, default 100,000). A real ``celery worker -E`` (solo
pool) runs the first task, ``add(1, 1)`` (sent without a task-sent event, Celery's default),
while this script PSUBSCRIBEs to everything: that captures the result metas the worker wrote
(STARTED, then SUCCESS, each SETEX + PUBLISH on a channel named like its key, result_extended)
and the task events it sent (task-received, task-started, task-succeeded, buffered into kombu
event envelopes on ``/0.celeryev/task.multi``). The worker is then stopped and the other tasks
are made from those captures: for task ``n`` (``add(n, n)``) the same metas and the same
events, with a new id, its arguments and result, the worker's Lamport clock moved on and the
timestamps moved to now, published as the worker did (each meta in its own
MULTI/SETEX/PUBLISH/EXEC, then the events envelope). This script builds those bytes itself;
rebuilding the captured task from its own values must give the captured bytes back, byte for
byte, or it stops; Flower's and jobbridge's views of a copied task must have the same fields
filled as their views of the worker-run one.

Why not a real worker for all of them: on this 2-CPU machine one drained about 330 tasks/s
(solo) to 500 tasks/s (prefork, 4 processes) with nothing else running, so 100,000 tasks would
take 3 to 5 minutes with the worker competing with Flower and jobbridge for the CPU; the copies
go as fast as the slower reader takes them. Pacing: after each ``--batch`` the producer waits
until no subscriber has more than ``--omem-limit-mb`` of pub/sub output waiting in Redis
(Redis cuts a subscriber off at 32 MB) and until Flower knows the previous batch's last task
(``/api/task/info/<id>``): Flower's event thread hands each event to its IO loop and would
otherwise queue them without bound. Flower keeps at most 100,000 tasks (``--max_tasks``).

**Waiting messages** (``--waiting``, default 100,000), in the broker list ``celery``: Celery's
own ``apply_async`` (``examples.celery_app``'s configuration, task-sent events off, Celery's
default, so Flower hears nothing of them) makes one; the bulk copies it through pipelines,
each copy with a new id, delivery tag and arguments, LPUSHed as kombu does. The copy of the
template's own values must be the template byte for byte, and LLEN must count them all.

Memory: each server's RSS and peak RSS (VmRSS, VmHWM in /proc/<pid>/status, its child
processes added apart) at start and after 10%, 50% and 100% of the tasks, each time once both
have caught up (Flower knows the last task, jobbridge's completed total has reached it). Flower
keeps its history in its process; jobbridge keeps its index in Redis, so the table also gives
that index's MEMORY USAGE (and Redis's used_memory, which holds Celery's own metas and
messages as well).

**Backfill**: a second ``jobbridge serve``, started once all metas exist, with its own
``jobbridge_prefix`` (so it cannot reuse the first one's index): the time until its index
covers the N metas, and its RSS when ready and once done.

**Reads**, ``per_page`` 25, each (tool, page) pair taking turns one request at a time, up to
``--repeat`` requests or ``--budget`` seconds, a request over ``--timeout`` reported as timed
out (jobbridge is then restarted; Flower is not, since that would lose its history, but is
waited for):

* queue lengths: Flower ``/api/queues/length`` (one LLEN per priority list), jobbridge
  ``/admin/api/counters`` (every counter of the source, queue lengths among them);
* waiting messages, page 1 and the middle page (2,000 of 4,000): jobbridge
  ``/admin/api/sources/celery/snapshot?per_page=25&enqueued_page=N&only=enqueued``; Flower
  cannot list the messages in a queue at all;
* task history, page 1 and offset N/2 (50,000): Flower ``/api/tasks?limit=25&offset=N``
  (newest first) and its tasks page's own ``/tasks/datatable`` request (sorted by received,
  newest first, as the page asks), jobbridge ``...snapshot?per_page=25&completed_page=N&only=
  completed`` (newest first).

Prints the seeding figures, the memory table, the backfill, a table of medians and p95s with
the ratio Flower API / jobbridge, and what each answer held.

    .venv/bin/pip install -e '.[bench]'
    .venv/bin/python -m benchmarks.bench_celery --tasks 5000 --waiting 5000
    .venv/bin/python -m benchmarks.bench_celery          # 100,000 tasks / 100,000 messages
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import copy
import json
import math
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any, cast

import kombu.pools
import redis

from benchmarks.side_by_side import (
    Measured,
    Memory,
    Server,
    add_timing_arguments,
    get,
    load_average,
    measure,
    print_table,
    run_benchmark,
)
from benchmarks.side_by_side import ratio as median_ratio
from examples.celery_app import BACKEND_ENV, BROKER_ENV, make_app, task_name
from jobbridge.dev.private_redis import RedisServer, free_port, start_redis_server

QUEUE = "celery"
TASK = task_name("add")
APP_MODULE = "examples.celery_app"
#: the template worker's node name; every seeded task ran "on" it
WORKER = "bench-worker@jobbridge"
#: waiting message n calls add(WAITING_BASE + n, WAITING_BASE + n); history task n add(n, n)
WAITING_BASE = 100_000_000
DB = 0
#: kombu's fanout channel for Celery's task events buffered by a worker
EVENTS_CHANNEL = f"/{DB}.celeryev/task.multi"
PER_PAGE = 25
SOURCE = "celery"
BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[1]
#: the jobbridge_prefix of the jobbridge measured all along (its default)
BRIDGE_PREFIX = "jobbridge:"
#: fractions of --tasks after which memory is sampled
CHECKPOINTS = (0.1, 0.5, 1.0)


def call(n: int) -> tuple[int, int]:
    """The arguments of task number ``n``."""
    return (n, n)


def dumps(value: Any) -> str:
    """JSON as kombu writes it (``json.dumps`` defaults: ``", "``, ``": "``, ASCII)."""
    return json.dumps(value)


def b64json(value: Any) -> str:
    return base64.b64encode(dumps(value).encode()).decode()


def unb64json(text: str) -> Any:
    return json.loads(base64.b64decode(text))


def celery_env(redis_url: str) -> dict[str, str]:
    """The environment of a Celery process (worker, Flower) on ``examples.celery_app``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JOBBRIDGE_", "CELERY_"))}
    env[BROKER_ENV] = redis_url
    env[BACKEND_ENV] = redis_url
    env["PYTHONPATH"] = str(ROOT)
    env["PYTHONUNBUFFERED"] = "1"
    if os.geteuid() == 0:
        # The example app accepts pickle; a root worker that does refuses to start unless forced.
        env["C_FORCE_ROOT"] = "1"
    return env


@contextlib.contextmanager
def client_app(redis_url: str) -> Iterator[Any]:
    """A Celery client on ``redis_url``: the example app's configuration without its tasks,
    and without task-sent events (Celery's default; the example app turns them on), so that
    Flower hears of a task from its worker only, as of every task the bulk copies."""
    app = make_app(redis_url)
    app.conf.task_send_sent_event = False
    try:
        yield app
    finally:
        backend = app._backend
        if backend is not None:  # it subscribed to each sent task's meta channel
            backend.result_consumer.stop()
            backend.client.connection_pool.disconnect()
        if app._pool is not None:
            app._pool.force_close_all()
        app.close()
        # That pool sits in kombu's process-wide registry under the broker URL: the next client
        # on the same URL would get it closed.
        kombu.pools.reset()  # type: ignore[no-untyped-call]


# --- processes -------------------------------------------------------------------------------


def flower(redis_url: str, workdir: Path) -> Server:
    port = free_port()
    argv = [str(BIN / "celery"), "--broker", redis_url, "--result-backend", redis_url]
    # Flower's own options are tornado options: --name=value only.
    argv += ["-A", APP_MODULE, "flower", f"--port={port}", "--address=127.0.0.1"]
    env = celery_env(redis_url)
    env["FLOWER_UNAUTHENTICATED_API"] = "true"
    return Server(
        "Flower",
        argv,
        f"http://127.0.0.1:{port}/healthcheck",
        workdir / "flower.log",
        env=env,
        cwd=ROOT,
        restartable=False,
    )


def jobbridge(redis_url: str, workdir: Path, name: str, prefix: str) -> Server:
    port = free_port()
    config = workdir / f"{name}.toml"
    # Loopback, so no [auth] is needed; cache_ttl_s = 0 so that no request is served from
    # the previous one's read.
    config.write_text(
        f'[server]\nhost = "127.0.0.1"\nport = {port}\nread_only = true\ncache_ttl_s = 0\n\n'
        f'[[sources]]\nname = "{SOURCE}"\nsystem = "celery"\nbroker_url = "{redis_url}"\n'
        f'result_backend_url = "{redis_url}"\njobbridge_prefix = "{prefix}"\n'
        f'queues = ["{QUEUE}"]\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBBRIDGE_")}
    return Server(
        name,
        [str(BIN / "jobbridge"), "serve", "--config", str(config)],
        f"http://127.0.0.1:{port}/healthz",
        workdir / f"{name}.log",
        env=env,
        cwd=ROOT,
    )


def stop_worker(process: subprocess.Popen[bytes]) -> None:
    """Warm shutdown (SIGTERM), then Celery's cold one (SIGQUIT), then SIGKILL."""
    for sig, wait_s in ((signal.SIGTERM, 15), (signal.SIGQUIT, 5), (signal.SIGKILL, 5)):
        if process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=wait_s)


def wait_for(what: str, check: Any, timeout_s: float, every_s: float = 0.05) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(every_s)


# --- the template task: what a real worker publishes -----------------------------------------


@dataclass
class Captured:
    """What a real ``celery worker -E`` published for one task."""

    task_id: str
    #: the meta payloads in the order written (STARTED, SUCCESS), as published
    metas: list[str]
    #: the meta's TTL (result_expires)
    meta_ttl: int
    #: the task.multi envelopes as published, and their event lists
    envelopes: list[str]
    groups: list[list[dict[str, Any]]] = field(default_factory=list)

    @property
    def received_at(self) -> float:
        return float(self.groups[0][0]["timestamp"])

    @property
    def first_clock(self) -> int:
        return int(self.groups[0][0]["clock"])

    @property
    def clocks(self) -> int:
        """How many Lamport clock ticks the task's events span."""
        events = [e for group in self.groups for e in group]
        return int(events[-1]["clock"]) - self.first_clock + 1


def run_template_task(redis_url: str, workdir: Path) -> Captured:
    """Run add(1, 1) on a real worker (Flower and jobbridge are watching) and capture all."""
    client = redis.Redis.from_url(redis_url)
    pubsub = client.pubsub()  # type: ignore[no-untyped-call]
    pubsub.psubscribe("*")
    messages: list[tuple[str, str]] = []

    def drain(timeout_s: float = 0.05) -> None:
        while (message := pubsub.get_message(timeout=timeout_s)) is not None:
            if message["type"] == "pmessage":
                messages.append((message["channel"].decode(), message["data"].decode()))
            timeout_s = 0.0

    log_path = workdir / "template-worker.log"
    with log_path.open("wb") as log:
        worker = subprocess.Popen(
            [
                *(str(BIN / "celery"), "-A", APP_MODULE, "worker", "--pool", "solo", "-Q", QUEUE),
                *("--hostname", WORKER, "--without-gossip", "--without-mingle", "-E"),
                *("--loglevel", "INFO"),
            ],
            cwd=ROOT,
            env=celery_env(redis_url),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:

        def ready() -> bool:
            if worker.poll() is not None:
                raise RuntimeError(f"the template worker exited:\n{log_path.read_text()[-3000:]}")
            return f"{WORKER} ready." in log_path.read_text(errors="replace")

        wait_for("the template worker to be ready", ready, 60)
        with client_app(redis_url) as app:
            result = app.signature(TASK, args=call(1)).apply_async()
            task_id = str(result.id)
            del result
        captured = Captured(task_id, [], 0, [])
        meta_channel = f"celery-task-meta-{task_id}"

        def complete() -> bool:
            drain()
            captured.metas = [data for channel, data in messages if channel == meta_channel]
            captured.envelopes, captured.groups = [], []
            for channel, data in messages:
                if channel != EVENTS_CHANNEL:
                    continue
                events = [e for e in unb64json(json.loads(data)["body"]) if e["uuid"] == task_id]
                if events:
                    captured.envelopes.append(data)
                    captured.groups.append(events)
            kinds = [e["type"] for group in captured.groups for e in group]
            return (
                bool(captured.metas)
                and "SUCCESS" in captured.metas[-1]
                and (kinds == ["task-received", "task-started", "task-succeeded"])
            )

        try:
            wait_for("the template task's metas and events", complete, 30)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}; captured {len(messages)} messages") from None
        captured.meta_ttl = int(client.ttl(meta_channel))
    finally:
        stop_worker(worker)
        pubsub.close()
        client.close()
    if [json.loads(m)["status"] for m in captured.metas] != ["STARTED", "SUCCESS"]:
        raise RuntimeError("expected a STARTED then a SUCCESS meta from the template worker")
    if captured.meta_ttl <= 0:
        raise RuntimeError(
            f"the template meta has TTL {captured.meta_ttl}, expected result_expires"
        )
    return captured


def shifted_time(text: str, by_s: float) -> str:
    return (datetime.fromisoformat(text) + timedelta(seconds=by_s)).isoformat()


@dataclass
class History:
    """Builds task ``n`` of the history as the template worker would have written it."""

    captured: Captured
    #: the parsed captured envelopes, copied for each task
    envelopes: list[dict[str, Any]] = field(default_factory=list)
    metas: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.envelopes = [json.loads(e) for e in self.captured.envelopes]
        self.metas = [json.loads(m) for m in self.captured.metas]

    def task(
        self, n: int, task_id: str, clock: int, at: float, tags: list[str] | None = None
    ) -> tuple[list[str], list[str]]:
        """Task ``n``'s metas and event envelopes, its first event at ``at`` (epoch seconds)
        and clock ``clock``; ``tags``: the envelopes' delivery tags (new ones by default)."""
        cap = self.captured
        shift_s, shift_clock = at - cap.received_at, clock - cap.first_clock
        args = call(n)
        metas = []
        for template in self.metas:
            meta = dict(template, task_id=task_id, args=list(args))
            if meta["status"] == "SUCCESS":
                meta["result"] = sum(args)
            if meta["date_done"] is not None:
                meta["date_done"] = shifted_time(meta["date_done"], shift_s)
            metas.append(dumps(meta))
        envelopes = []
        for index, (envelope, group) in enumerate(zip(self.envelopes, cap.groups, strict=True)):
            events = []
            for template in group:
                event = dict(template, uuid=task_id)
                event["clock"] = template["clock"] + shift_clock
                event["timestamp"] = template["timestamp"] + shift_s
                if "root_id" in event:
                    event["root_id"] = task_id
                if "args" in event:
                    event["args"] = repr(args)
                if "result" in event:
                    event["result"] = repr(sum(args))
                events.append(event)
            message = copy.deepcopy(envelope)
            message["body"] = b64json(events)
            message["properties"]["delivery_tag"] = tags[index] if tags else str(uuid.uuid4())
            envelopes.append(dumps(message))
        return metas, envelopes

    def verify(self) -> None:
        """Rebuilding the template task from its own values must give its bytes back."""
        cap = self.captured
        tags = [e["properties"]["delivery_tag"] for e in self.envelopes]
        metas, envelopes = self.task(1, cap.task_id, cap.first_clock, cap.received_at, tags)
        if metas != cap.metas:
            raise RuntimeError(f"rebuilt metas differ:\n{metas}\n{cap.metas}")
        if envelopes != cap.envelopes:
            raise RuntimeError(f"rebuilt event envelopes differ:\n{envelopes}\n{cap.envelopes}")


def queue_history(pipe: Any, metas: list[str], envelopes: list[str], key: str, ttl: int) -> None:
    """What the worker sends for one task: each meta in its own MULTI/SETEX/PUBLISH/EXEC (the
    Redis backend's ``_set``), then the events."""
    for meta in metas:
        pipe.execute_command("MULTI")
        pipe.execute_command("SETEX", key, ttl, meta)
        pipe.execute_command("PUBLISH", key, meta)
        pipe.execute_command("EXEC")
    for envelope in envelopes:
        pipe.execute_command("PUBLISH", EVENTS_CHANNEL, envelope)


# --- waiting messages ------------------------------------------------------------------------


def waiting_message(template: dict[str, Any], n: int, task_id: str, tag: str) -> str:
    """Waiting message ``n``: the template with its own id, delivery tag and arguments."""
    args = call(WAITING_BASE + n)
    message = copy.deepcopy(template)
    message["headers"].update(id=task_id, root_id=task_id, argsrepr=repr(args))
    message["properties"].update(correlation_id=task_id, delivery_tag=tag)
    body = unb64json(template["body"])
    message["body"] = b64json([list(args), *body[1:]])
    return dumps(message)


def seed_waiting(client: redis.Redis, redis_url: str, count: int, batch: int) -> float:
    """Celery makes message 1 (no worker runs); the bulk LPUSHes 2..count. The seconds it took."""
    begin = time.perf_counter()
    with client_app(redis_url) as app:
        result = app.signature(TASK, args=call(WAITING_BASE + 1)).apply_async()
        del result
    raw = cast("bytes | None", client.lindex(QUEUE, 0))
    if raw is None or client.llen(QUEUE) != 1:
        raise RuntimeError(f"expected Celery's one message in {QUEUE!r}")
    template = json.loads(raw)
    same = waiting_message(
        template, 1, template["headers"]["id"], template["properties"]["delivery_tag"]
    )
    if same.encode() != raw:
        raise RuntimeError(f"a rebuilt message differs from Celery's:\n{same}\n{raw.decode()}")
    pipe = client.pipeline(transaction=False)
    messages: list[str] = []
    for n in range(2, count + 1):
        messages.append(waiting_message(template, n, str(uuid.uuid4()), str(uuid.uuid4())))
        if len(messages) == batch:
            pipe.lpush(QUEUE, *messages)
            pipe.execute()
            messages = []
    if messages:
        pipe.lpush(QUEUE, *messages)
    pipe.execute()
    elapsed = time.perf_counter() - begin
    length = client.llen(QUEUE)
    if length != count:
        raise RuntimeError(f"LLEN {QUEUE} is {length}, expected {count}")
    head = json.loads(cast("bytes", client.lindex(QUEUE, 0)))
    if head["headers"]["argsrepr"] != repr(call(WAITING_BASE + count)):
        raise RuntimeError("the newest waiting message is not the last one pushed")
    return elapsed


# --- watching the two readers ----------------------------------------------------------------


def json_get(url: str, timeout_s: float = 60) -> Any:
    reply = get(url, timeout_s)
    if reply is None:
        raise RuntimeError(f"no answer from {url} within {timeout_s:g} s")
    if reply.status != 200:
        raise RuntimeError(f"HTTP {reply.status} from {url}: {reply.body[:300]!r}")
    return json.loads(reply.body)


def flower_state(fl: Server, task_id: str) -> str | None:
    """The task's state as Flower has it, None while Flower does not know it."""
    reply = get(f"{fl.base}/api/task/info/{task_id}", 60)
    if reply is None or reply.status != 200:
        return None
    return str(json.loads(reply.body).get("state"))


def datatable_query(start: int, length: int) -> str:
    """The query the tasks page's DataTable sends: newest received first."""
    return urllib.parse.urlencode(
        {
            "draw": 1,
            "start": start,
            "length": length,
            "search[value]": "",
            "order[0][column]": 0,
            "order[0][dir]": "desc",
            "columns[0][data]": "received",
        }
    )


def flower_total(fl: Server) -> int:
    return int(json_get(f"{fl.base}/tasks/datatable?{datatable_query(0, 1)}")["recordsTotal"])


def snapshot_url(bridge: Server, list_name: str, page: int, per_page: int = PER_PAGE) -> str:
    query = f"per_page={per_page}&{list_name}_page={page}&only={list_name}"
    return f"{bridge.base}/admin/api/sources/{SOURCE}/snapshot?{query}"


def completed_total(bridge: Server) -> int:
    data = json_get(snapshot_url(bridge, "completed", 1, 1))
    return int(data["lists"]["completed"]["total"])


def max_pubsub_backlog(client: redis.Redis) -> int:
    """The most pub/sub output (bytes) Redis holds for any one subscriber."""
    found = 0
    for row in client.client_list():
        if int(row.get("sub", 0)) or int(row.get("psub", 0)):
            found = max(found, int(row.get("omem", 0)))
    return found


def wait_subscribed(client: redis.Redis, fl: Server, timeout_s: float = 60) -> None:
    """Until Flower's event receiver is subscribed (an empty task.multi reaches someone)."""
    empty = {
        "body": b64json([]),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {"hostname": WORKER},
        "properties": {
            "delivery_mode": 1,
            "delivery_info": {"exchange": "celeryev", "routing_key": "task.multi"},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
        },
    }

    def subscribed() -> bool:
        fl.check_alive()
        return int(client.publish(EVENTS_CHANNEL, dumps(empty))) > 0

    wait_for("Flower to subscribe to the task events", subscribed, timeout_s, 0.2)


@dataclass
class Checkpoint:
    tasks: int
    memory: dict[str, Memory]
    redis_mb: float
    #: what jobbridge's own index takes in Redis (it keeps no history in its process)
    index_mb: float
    caught_up_s: float
    #: CPU seconds each server has used since it started
    cpu_s: dict[str, float]


def index_bytes(client: redis.Redis, prefix: str) -> int:
    """MEMORY USAGE (every element counted) of the keys of jobbridge's result index."""
    keys = list(client.scan_iter(match=f"{prefix}*index:*", count=1000))
    return sum(int(client.memory_usage(key, samples=0) or 0) for key in keys)


def checkpoint(
    client: redis.Redis, servers: list[Server], tasks: int, caught_up_s: float
) -> Checkpoint:
    """Each server's memory now (and Redis's), printed as it is taken."""
    used = int(client.info("memory")["used_memory"]) / 2**20
    index = index_bytes(client, BRIDGE_PREFIX) / 2**20
    memory = {server.name: server.memory() for server in servers}
    cpu = {server.name: server.cpu_s() for server in servers}
    print(f"  {tasks:>7,} tasks: " + "; ".join(f"{k} {v}" for k, v in memory.items()))
    return Checkpoint(tasks, memory, used, index, caught_up_s, cpu)


@dataclass
class Producer:
    """Makes the history and samples memory on the way."""

    client: redis.Redis
    history: History
    fl: Server
    bridge: Server | None
    args: argparse.Namespace
    ids: list[str] = field(default_factory=list)
    checkpoints: list[Checkpoint] = field(default_factory=list)
    produce_s: float = 0.0
    #: seconds the producer waited for Redis's subscriber backlogs, and for Flower
    backlog_s: float = 0.0
    flower_s: float = 0.0

    def sample(self, tasks: int, caught_up_s: float) -> None:
        servers = [self.fl] + ([self.bridge] if self.bridge else [])
        self.checkpoints.append(checkpoint(self.client, servers, tasks, caught_up_s))

    def catch_up(self, tasks: int) -> float:
        """Wait until Flower knows the last task and jobbridge counts them all; seconds."""
        begin = time.perf_counter()
        last = self.ids[-1]
        timeout = self.args.settle_timeout

        def flower_done() -> bool:
            self.fl.check_alive()
            return flower_state(self.fl, last) == "SUCCESS"

        wait_for(f"Flower to know task {tasks:,}", flower_done, timeout, 0.1)
        if self.bridge is not None:
            bridge = self.bridge

            def bridge_done() -> bool:
                bridge.check_alive()
                return completed_total(bridge) >= tasks

            wait_for(f"jobbridge to count {tasks:,} completed", bridge_done, timeout, 0.2)
        return time.perf_counter() - begin

    def pace(self) -> None:
        """Hold back while a subscriber lags (Redis) or Flower's loop is behind a batch."""
        begin = time.perf_counter()
        limit = self.args.omem_limit_mb * 2**20
        wait_for(
            "the subscribers to read their backlog",
            lambda: max_pubsub_backlog(self.client) <= limit,
            self.args.settle_timeout,
            0.005,
        )
        self.backlog_s += time.perf_counter() - begin
        begin = time.perf_counter()
        if len(self.ids) > self.args.batch:
            behind = self.ids[-self.args.batch - 1]
            wait_for(
                "Flower to catch up",
                lambda: flower_state(self.fl, behind) is not None,
                self.args.settle_timeout,
                0.01,
            )
        self.flower_s += time.perf_counter() - begin

    def run(self) -> None:
        """Tasks 2..N (the template worker ran task 1), pausing at each checkpoint."""
        args, cap = self.args, self.history.captured
        self.ids = [cap.task_id]
        marks = sorted({max(1, math.ceil(args.tasks * f)) for f in CHECKPOINTS})
        if marks[0] == 1:
            self.sample(1, self.catch_up(1))
        clock = cap.first_clock + cap.clocks
        pipe = self.client.pipeline(transaction=False)
        begin = time.perf_counter()
        done = 1
        while done < args.tasks:
            upto = min(args.tasks, done + args.batch, *(m for m in marks if m > done))
            for n in range(done + 1, upto + 1):
                task_id = str(uuid.uuid4())
                metas, envelopes = self.history.task(n, task_id, clock, time.time())
                queue_history(pipe, metas, envelopes, f"celery-task-meta-{task_id}", cap.meta_ttl)
                clock += cap.clocks
                self.ids.append(task_id)
            pipe.execute()
            done = upto
            self.pace()
            if done in marks:
                self.produce_s += time.perf_counter() - begin
                self.sample(done, self.catch_up(done))
                begin = time.perf_counter()
        self.produce_s += time.perf_counter() - begin


def verify_flower(fl: Server, producer: Producer, tasks: int) -> None:
    """Flower's numbers are real: it lists all the tasks, a synthetic one like the template."""
    total = flower_total(fl)
    if total != tasks:
        raise RuntimeError(f"Flower's tasks page counts {total:,} tasks, expected {tasks:,}")
    first = cast("dict[str, Any]", json_get(f"{fl.base}/api/tasks?limit={PER_PAGE}"))
    deep = json_get(f"{fl.base}/api/tasks?limit={PER_PAGE}&offset={tasks // 2}")
    want = min(PER_PAGE, tasks)
    if len(first) != want or len(deep) != min(PER_PAGE, tasks - tasks // 2):
        raise RuntimeError(f"Flower's /api/tasks gave {len(first)} and {len(deep)} rows")
    if {t["state"] for t in first.values()} != {"SUCCESS"} or producer.ids[-1] not in first:
        raise RuntimeError("Flower's first page is not the newest SUCCESS tasks")
    template = json_get(f"{fl.base}/api/task/info/{producer.ids[0]}")
    copied = json_get(f"{fl.base}/api/task/info/{producer.ids[-1]}")
    filled = sorted(k for k, v in template.items() if v is not None)
    if sorted(k for k, v in copied.items() if v is not None) != filled:
        raise RuntimeError(f"Flower holds a seeded task unlike the template:\n{template}\n{copied}")
    if (
        copied["worker"] != WORKER
        or copied["name"] != TASK
        or copied["result"] != repr(sum(call(tasks)))
    ):
        raise RuntimeError(f"Flower's view of the last task is wrong: {copied}")
    print(
        f"Flower lists {total:,} tasks; /api/tasks gives {len(first)} rows at offset 0 and "
        f"{len(deep)} at offset {tasks // 2:,}; its fields of a seeded task are the worker-run "
        f"template's ({', '.join(filled)})"
    )


def filled(row: dict[str, Any]) -> list[str]:
    return sorted(k for k, v in row.items() if v not in (None, "", [], {}))


def verify_jobbridge(
    bridge: Server, producer: Producer, tasks: int, waiting: int, newest_waiting: str
) -> None:
    """jobbridge's numbers are real: all tasks and messages, newest first, a seeded task's row
    filled like the worker-run template's."""
    pages = math.ceil(tasks / PER_PAGE)
    first = json_get(snapshot_url(bridge, "completed", 1))["lists"]["completed"]
    last = json_get(snapshot_url(bridge, "completed", pages))["lists"]["completed"]
    if first["total"] != tasks or not first["items"] or not last["items"]:
        raise RuntimeError(f"jobbridge's completed list holds {first['total']:,}, not {tasks:,}")
    newest, oldest = first["items"][0], last["items"][-1]
    # Scored by date_done in ms: tasks done within one ms may come in any order.
    if newest["id"] not in producer.ids[-PER_PAGE:] or oldest["id"] != producer.ids[0]:
        raise RuntimeError("jobbridge's completed list is not the history, newest first")
    if filled(newest) != filled(oldest) or (newest["worker"], newest["name"]) != (WORKER, TASK):
        raise RuntimeError(
            f"jobbridge shows a seeded task unlike the template:\n{oldest}\n{newest}"
        )
    enqueued = json_get(snapshot_url(bridge, "enqueued", 1))["lists"]["enqueued"]
    if enqueued["total"] != waiting or enqueued["items"][0]["id"] != newest_waiting:
        raise RuntimeError(
            f"jobbridge's enqueued list holds {enqueued['total']:,} (expected {waiting:,}), "
            f"first {enqueued['items'][0]['id'] if enqueued['items'] else None}"
        )
    print(
        f"jobbridge lists {tasks:,} completed tasks and {waiting:,} waiting messages, newest "
        f"first; its fields of a seeded task are the template's ({', '.join(filled(newest))})"
    )


# --- timing ----------------------------------------------------------------------------------


#: the columns of the timing table, in order
TOOLS = ("Flower API", "Flower tasks page", "jobbridge")


@dataclass
class Row:
    label: str
    runs: dict[str, Measured]
    #: why a tool has no figure here
    notes: dict[str, str] = field(default_factory=dict)


def rows_to_time(fl: Server, bridge: Server | None, tasks: int, waiting: int) -> list[Row]:
    lengths = Measured(fl, f"{fl.base}/api/queues/length", ("active_queues",))
    rows = [Row("queue lengths", {"Flower API": lengths})]
    if bridge is not None:
        counters = Measured(bridge, f"{bridge.base}/admin/api/counters", ("sources",))
        rows[0].runs["jobbridge"] = counters
    rows[0].notes["Flower tasks page"] = "-"
    pages = math.ceil(waiting / PER_PAGE)
    for page in dict.fromkeys((1, max(1, pages // 2))):
        row = Row(f"waiting page {page:,} of {pages:,}", {})
        row.notes["Flower API"] = row.notes["Flower tasks page"] = "cannot"
        if bridge is not None:
            url = snapshot_url(bridge, "enqueued", page)
            row.runs["jobbridge"] = Measured(bridge, url, ("lists", "enqueued", "items"))
        rows.append(row)
    for offset in dict.fromkeys((0, tasks // 2)):
        page = offset // PER_PAGE + 1
        row = Row(
            f"history offset {offset:,} (page {page:,})",
            {
                "Flower API": Measured(
                    fl, f"{fl.base}/api/tasks?limit={PER_PAGE}&offset={offset}", ()
                ),
                "Flower tasks page": Measured(
                    fl, f"{fl.base}/tasks/datatable?{datatable_query(offset, PER_PAGE)}", ("data",)
                ),
            },
        )
        if bridge is not None:
            url = snapshot_url(bridge, "completed", page)
            row.runs["jobbridge"] = Measured(bridge, url, ("lists", "completed", "items"))
        rows.append(row)
    return rows


def compare(rows: list[Row], args: argparse.Namespace) -> None:
    # Warm up (imports, templates, connections): not timed.
    for row in rows:
        for run in row.runs.values():
            get(run.url, args.timeout)
    for row in rows:
        measure(list(row.runs.values()), args)
        cells = [f"{tool} {run.timing.cell(args.timeout)}" for tool, run in row.runs.items()]
        print(f"  {row.label}: {', '.join(cells)}", flush=True)


def ratio(row: Row, timeout_s: float) -> str:
    flower_run, bridge_run = row.runs.get("Flower API"), row.runs.get("jobbridge")
    if flower_run is None or bridge_run is None:
        return "-"
    return median_ratio(flower_run.timing, bridge_run.timing, timeout_s)


def report(rows: list[Row], args: argparse.Namespace) -> None:
    print("\nmedian / p95 ms (n requests); ratio = Flower API median / jobbridge median")
    table = []
    for row in rows:
        cells = []
        for tool in TOOLS:
            run = row.runs.get(tool)
            cells.append(run.timing.cell(args.timeout) if run else row.notes.get(tool, "-"))
        table.append((row.label, *cells, ratio(row, args.timeout)))
    print_table(("endpoint (per_page 25)", *(f"{t} ms" for t in TOOLS), "ratio"), table)
    print("\nwhat each answer held (first request):")
    for row in rows:
        held = [
            f"{tool} {run.timing.rows} rows, {run.timing.size:,} bytes"
            for tool, run in row.runs.items()
        ]
        print(f"  {row.label:<36} {'; '.join(held)}")


def report_memory(checkpoints: list[Checkpoint], names: list[str]) -> None:
    print(
        "\nresident memory (RSS, peak RSS in parentheses) once both had caught up, which took "
        "the time in the last column"
    )
    table = [
        (
            f"{c.tasks:,}",
            *(str(c.memory.get(name, Memory())) for name in names),
            f"{c.redis_mb:.0f} MB",
            f"{c.index_mb:.1f} MB",
            f"{c.caught_up_s:.1f} s",
        )
        for c in checkpoints
    ]
    head = ("tasks", *names, "redis used_memory", "jobbridge index in Redis", "catch-up")
    print_table(head, table)
    print("(the waiting messages are in Redis from the second row on)")
    first, last = checkpoints[0], checkpoints[-1]
    used = [f"{name} {last.cpu_s[name] - first.cpu_s[name]:.1f} s" for name in names]
    print(
        f"CPU time (user + system) spent taking in the {last.tasks:,} tasks "
        f"(and answering the progress checks): {', '.join(used)}"
    )


# --- the run ---------------------------------------------------------------------------------


#: the second jobbridge's own key prefix, so that it builds an index of its own
BACKFILL_PREFIX = "jbbackfill:"


def backfill_progress(client: redis.Redis) -> dict[str, str]:
    """The second jobbridge's stored backfill progress (its index's ``<base>backfill`` hash,
    found by SCAN: this is the benchmark's own Redis)."""
    for key in client.scan_iter(match=f"{BACKFILL_PREFIX}*index:backfill", count=1000):
        raw = cast("dict[bytes, bytes]", client.hgetall(key))
        return {k.decode(): v.decode() for k, v in raw.items()}
    return {}


def backfill(
    client: redis.Redis,
    redis_url: str,
    workdir: Path,
    servers: list[Server],
    tasks: int,
    timeout_s: float,
) -> None:
    """A second jobbridge with an index of its own: how long until it counts every meta."""
    late = jobbridge(redis_url, workdir, "jobbridge-2", BACKFILL_PREFIX)
    servers.append(late)
    late.start()
    ready_s = time.perf_counter() - late.started_at
    at_ready = late.memory()
    counted_s: float | None = None

    def done() -> bool:
        nonlocal counted_s
        late.check_alive()
        if counted_s is None and completed_total(late) >= tasks:
            counted_s = time.perf_counter() - late.started_at
        return counted_s is not None and bool(backfill_progress(client).get("last_pass_ended_ms"))

    wait_for(f"the second jobbridge to index {tasks:,} metas", done, timeout_s, 0.1)
    elapsed = time.perf_counter() - late.started_at
    at_end = late.memory()
    progress = backfill_progress(client)
    assert counted_s is not None
    print(
        f"\nbackfill: a second jobbridge (jobbridge_prefix {BACKFILL_PREFIX!r}, so an index of "
        f"its own) answered /healthz {ready_s:.1f} s after its start; its completed total "
        f"reached {tasks:,} after {counted_s:.1f} s ({tasks / counted_s:,.0f} metas/s), its "
        f"first backfill pass was recorded as ended after {elapsed:.1f} s (last_pass_s "
        f"{progress.get('last_pass_s', '?')}, last_pass_keys {progress.get('last_pass_keys', '?')}"
        f"); RSS when ready {at_ready}, when done {at_end}"
    )
    late.stop()
    servers.remove(late)


def run(args: argparse.Namespace, workdir: Path, servers: list[Server]) -> Iterator[RedisServer]:
    """Start Redis (yielded at once, for the caller to stop), the readers, seed, compare."""
    redis_server = start_redis_server()
    yield redis_server
    url = redis_server.url(DB)
    client = redis.Redis.from_url(url)
    print(
        f"redis-server {redis_server.version()} on port {redis_server.port}; celery "
        f"{version('celery')}, kombu {version('kombu')}, flower {version('flower')}, "
        f"jobbridge {version('jobbridge')}; {os.cpu_count()} CPUs"
    )
    fl = flower(url, workdir)
    servers.append(fl)
    fl.start()
    wait_subscribed(client, fl)
    bridge = None
    if not args.skip_jobbridge:
        bridge = jobbridge(url, workdir, "jobbridge", BRIDGE_PREFIX)
        servers.append(bridge)
        bridge.start()
    names = [s.name for s in servers]
    print("memory as the history grows (each reader caught up):")
    started = checkpoint(client, servers, 0, 0.0)
    producer = Producer(client, History(run_template_task(url, workdir)), fl, bridge, args)
    producer.history.verify()
    producer.checkpoints.append(started)
    waited = seed_waiting(client, url, args.waiting, args.waiting_batch)
    producer.run()
    rate = (args.tasks - 1) / producer.produce_s if producer.produce_s else 0.0
    print(
        f"history: task 1 run by a real worker ({WORKER}, solo pool, -E), tasks 2..{args.tasks:,} "
        f"copied from its metas and events in {producer.produce_s:.1f} s ({rate:,.0f} tasks/s; "
        f"{producer.backlog_s:.1f} s of it waiting for pub/sub backlogs, {producer.flower_s:.1f} s "
        f"for Flower's event loop); waiting messages: "
        f"{args.waiting:,} in {QUEUE!r} in {waited:.1f} s (LLEN {client.llen(QUEUE):,}); "
        f"redis memory {client.info('memory')['used_memory_human']}"
    )
    verify_flower(fl, producer, args.tasks)
    lengths = json_get(f"{fl.base}/api/queues/length")
    print(f"Flower /api/queues/length: {dumps(lengths)}")
    if bridge is not None:
        head = json.loads(cast("bytes", client.lindex(QUEUE, 0)))
        verify_jobbridge(bridge, producer, args.tasks, args.waiting, head["headers"]["id"])
    report_memory(producer.checkpoints, names)
    if bridge is not None and not args.skip_backfill:
        backfill(client, url, workdir, servers, args.tasks, args.settle_timeout)
    client.close()
    print(f"\nload average before timing: {load_average()}")
    rows = rows_to_time(fl, bridge, args.tasks, args.waiting)
    compare(rows, args)
    report(rows, args)
    print(f"\nafter the run (load average {load_average()}):")
    for server in servers:
        print(f"  {server.name}: {server.memory()}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--tasks", type=int, default=100_000, help="finished tasks (default 100,000)"
    )
    parser.add_argument(
        "--waiting",
        type=int,
        default=100_000,
        help=f"messages waiting in {QUEUE!r} (default 100,000)",
    )
    add_timing_arguments(parser)
    parser.add_argument(
        "--batch", type=int, default=500, help="history tasks per pipeline (default 500)"
    )
    parser.add_argument(
        "--waiting-batch", type=int, default=5_000, help="messages per LPUSH (default 5,000)"
    )
    parser.add_argument(
        "--omem-limit-mb",
        type=float,
        default=4.0,
        help="pause the history while a subscriber has more pub/sub output waiting (default 4)",
    )
    parser.add_argument(
        "--settle-timeout",
        type=float,
        default=900.0,
        help="seconds a reader may take to catch up or backfill before giving up (default 900)",
    )
    parser.add_argument(
        "--skip-jobbridge",
        action="store_true",
        help="run Flower alone (while jobbridge cannot serve a Celery source)",
    )
    parser.add_argument(
        "--skip-backfill", action="store_true", help="do not time a second jobbridge's backfill"
    )
    args = parser.parse_args()
    if min(args.tasks, args.waiting, args.repeat, args.batch, args.waiting_batch) < 1:
        parser.error("--tasks, --waiting, --repeat and the batches must be at least 1")
    if args.tasks > 100_000:
        print("note: Flower keeps 100,000 tasks (--max_tasks); it forgets the oldest beyond")
    return args


def main() -> None:
    run_benchmark(run, parse_args(), "jobbridge-bench-celery-", failing_as="bench_celery")


if __name__ == "__main__":
    main()
