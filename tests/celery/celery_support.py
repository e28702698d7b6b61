"""Helpers for the Celery integration tests: real ``celery worker`` processes on the test Redis.

Workers run ``examples.celery_app`` through the venv's ``celery`` command, each in its own
session (so a stop also reaches its prefork children), logging to files that are shown whenever
a worker does not behave. The test side talks to them through ``client_app``: the same
configuration without the tasks, so tasks are sent by name (``send``) and results read from the
backend by polling (``wait_for_state``), never through a blocking ``AsyncResult.get``.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sys
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import kombu.pools
import redis
from celery import Celery
from celery.result import AsyncResult

from examples import celery_app as example
from tests.integration.processes import ROOT, ProcessPool, WorkerProcess, running, spawn
from tests.rq.rq_support import wait_for

#: the venv's ``celery`` command (the same interpreter as the tests)
CELERY_COMMAND = Path(sys.executable).parent / "celery"
APP_MODULE = "examples.celery_app"
#: every queue the example app routes to
ALL_QUEUES = ("celery", example.MAIL_QUEUE)


# -------------------------------------------------------------------- the test's client


@contextmanager
def client_app(redis_url: str) -> Iterator[Celery]:
    """A Celery client (broker and backend on ``redis_url``), closed afterwards."""
    app = example.make_app(redis_url)
    try:
        yield app
    finally:
        # ``Celery.close`` only forgets the broker pool; close the sockets so none leaks into
        # the next test. The backend (built only if used) subscribed to each sent task's meta
        # channel and keeps a client pool of its own.
        backend = app._backend
        if backend is not None:
            backend.result_consumer.stop()
            backend.client.connection_pool.disconnect()
        if app._pool is not None:
            app._pool.force_close_all()
        app.close()
        # That pool lives in kombu's process-wide registry, keyed by broker URL: a later app on
        # the same URL (the test databases rotate) would get it closed. Start afresh.
        kombu.pools.reset()


def send(app: Celery, short_name: str, *args: Any, **options: Any) -> AsyncResult:
    """Send one of the example tasks by its short name (``"add"``), like ``task.apply_async``."""
    return app.send_task(example.task_name(short_name), args=args, **options)


def state_of(app: Celery, task_id: str) -> str:
    """The task's state as the backend has it (``PENDING`` when no meta is stored)."""
    return str(AsyncResult(task_id, app=app).state)


def wait_for_state(
    app: Celery,
    task_id: str,
    state: str,
    timeout: float = 10.0,
    *,
    workers: CeleryWorkerPool | None = None,
) -> AsyncResult:
    """Poll the backend until ``task_id`` is in ``state``; its ``AsyncResult``.

    Raises:
        AssertionError: on timeout, naming the last state seen and showing the workers' logs.
    """
    seen: list[str] = []

    def reached() -> bool:
        current = state_of(app, task_id)
        if not seen or seen[-1] != current:
            seen.append(current)
        return current == state

    try:
        wait_for(reached, f"task {task_id} to be {state}", timeout)
    except AssertionError as exc:
        logs = f"\n\n{workers.describe()}" if workers else ""
        raise AssertionError(f"{exc}; states seen: {seen}{logs}") from None
    return AsyncResult(task_id, app=app)


def watch_states(
    app: Celery, task_id: str, until: str, timeout: float = 10.0, every: float = 0.02
) -> list[str]:
    """Every distinct state ``task_id`` passes through (as polled) until it reaches ``until``."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while not seen or seen[-1] != until:
        current = state_of(app, task_id)
        if not seen or seen[-1] != current:
            seen.append(current)
        if time.monotonic() > deadline:
            raise AssertionError(f"task {task_id} not {until} after {timeout}s; saw {seen}")
        time.sleep(every)
    return seen


def meta_key(task_id: str) -> str:
    """The result backend's key for one task's meta."""
    return f"celery-task-meta-{task_id}"


def ran_ids(conn: redis.Redis) -> list[str]:
    """Task ids ``record`` pushed, in order (duplicates kept)."""
    return [v.decode() for v in conn.lrange(example.RAN_KEY, 0, -1)]


@dataclass(frozen=True)
class KeyInfo:
    """One key of the test database: its name (raw bytes), type, TTL and size."""

    name: bytes
    type: str
    ttl: int
    size: int | None

    def __str__(self) -> str:
        size = "" if self.size is None else f" size={self.size}"
        return f"{self.name!r:60} {self.type:6} ttl={self.ttl}{size}"


def key_layout(conn: redis.Redis) -> list[KeyInfo]:
    """Every key of the (private) test database, sorted: ``KEYS *`` is fine here only."""
    sizes = {"list": conn.llen, "hash": conn.hlen, "set": conn.scard, "zset": conn.zcard}
    found = []
    for name in sorted(conn.keys("*")):
        kind = conn.type(name).decode()
        size = sizes[kind](name) if kind in sizes else None
        found.append(KeyInfo(name, kind, int(conn.ttl(name)), size))
    return found


# -------------------------------------------------------------------- workers


def _worker_env(redis_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JOBBRIDGE_", "CELERY_"))}
    env[example.BROKER_ENV] = redis_url
    env[example.BACKEND_ENV] = redis_url
    env["PYTHONPATH"] = str(ROOT)
    env["PYTHONUNBUFFERED"] = "1"
    if os.geteuid() == 0:
        # A root worker that accepts pickle refuses to start (exit 1) unless forced; the app
        # accepts pickle so tests can publish pickled messages. Only containers run us as root.
        env["C_FORCE_ROOT"] = "1"
    return env


@dataclass
class CeleryWorker(WorkerProcess):
    """One ``celery worker`` subprocess (``name`` is its ``--hostname``)."""

    queues: tuple[str, ...] = ()
    pool: str = "solo"
    concurrency: int = 1
    command: list[str] = field(default_factory=list)

    #: a warm shutdown lets running tasks finish
    GRACE: ClassVar[float] = 10.0
    #: a second SIGTERM would not hurry Celery: SIGQUIT is its cold shutdown
    FOLLOW_UP: ClassVar[tuple[signal.Signals, float]] = (signal.SIGQUIT, 3.0)

    @property
    def hostname(self) -> str:
        return self.name

    def is_ready(self) -> bool:
        """Whether the worker logged ``<hostname> ready.`` (its consumer is running)."""
        return f"{self.hostname} ready." in self.logs(tail=10**6)

    def wait_ready(self, timeout: float = 20.0) -> None:
        """Wait for the worker's "ready." log line.

        Raises:
            AssertionError: if it exits first or the deadline passes (with its log).
        """

        def ready() -> bool:
            if not self.alive:
                raise AssertionError(f"worker exited before ready: {self.describe()}")
            return self.is_ready()

        try:
            wait_for(ready, f"worker {self.hostname} to be ready", timeout, every=0.05)
        except AssertionError as exc:
            if "exited" in str(exc):
                raise
            raise AssertionError(f"{exc}: {self.describe()}") from None

    def ping(self, app: Celery, timeout: float = 1.0) -> bool:
        """Whether the worker answers a remote-control ping (its pidbox is subscribed)."""
        replies = app.control.ping(destination=[self.hostname], timeout=timeout)
        return any(self.hostname in reply for reply in replies)


@dataclass
class CeleryWorkerPool(ProcessPool[CeleryWorker]):
    """Celery workers started for one test; ``close`` stops whatever is still running."""

    def start(
        self,
        queues: Iterable[str] = ALL_QUEUES,
        *,
        pool: str = "solo",
        concurrency: int = 1,
        name: str | None = None,
        events: bool = True,
        extra: Iterable[str] = (),
        wait: bool = True,
        config: tuple[str, Path] | None = None,
        app: tuple[str, Path] | None = None,
    ) -> CeleryWorker:
        """Start ``celery -A examples.celery_app worker`` on ``queues``.

        Args:
            queues: the queues it consumes (``-Q``).
            pool: ``solo`` (one task at a time, in the main process) or ``prefork``.
            concurrency: pool processes (prefork only).
            name: the node name's left part; unique by default. The hostname is
                ``<name>@jbtest``.
            events: send task events (``-E``).
            extra: more command-line arguments.
            wait: wait for its "ready." line before returning.
            config: a configuration module (Celery's ``--config``) and the folder it is in,
                put on the worker's ``PYTHONPATH``.
            app: another app than the example's (``module:attribute`` for ``-A``) and the
                folder its module is in, put on the worker's ``PYTHONPATH``.
        """
        queues = tuple(queues)
        name = name or f"w{len(self.workers)}-{os.getpid()}-{time.monotonic_ns() % 10**9}"
        hostname = f"{name}@jbtest"
        command = [
            str(CELERY_COMMAND),
            *(("--config", config[0]) if config else ()),
            "-A",
            app[0] if app else APP_MODULE,
            "worker",
            "--loglevel",
            "INFO",
            "--pool",
            pool,
            "--concurrency",
            str(concurrency),
            "-Q",
            ",".join(queues),
            "--hostname",
            hostname,
            "--without-gossip",
            "--without-mingle",
        ]
        if events:
            command.append("-E")
        command += list(extra)
        log_path = self.log_dir / f"{name}.log"
        env = _worker_env(self.redis_url)
        folders = [str(extra_path[1]) for extra_path in (config, app) if extra_path]
        if folders:
            env["PYTHONPATH"] = os.pathsep.join((str(ROOT), *folders))
        process = spawn(command, env, log_path)
        worker = CeleryWorker(
            hostname,
            process,
            log_path,
            queues=queues,
            pool=pool,
            concurrency=concurrency,
            command=command,
        )
        self.workers.append(worker)
        if wait:
            worker.wait_ready()
        return worker


def celery_workers(redis_url: str, log_dir: Path) -> AbstractContextManager[CeleryWorkerPool]:
    """A pool whose workers are stopped (SIGTERM, SIGQUIT, then SIGKILL) however the test ends."""
    return running(CeleryWorkerPool(redis_url, log_dir))


# -------------------------------------------------------------------- result metas at scale

#: the states ``seed_metas`` writes, with how often (out of 20)
SEED_STATES = ("SUCCESS",) * 14 + ("FAILURE",) * 3 + ("REVOKED", "STARTED", "RETRY")


def realistic_meta(
    task_id: str, state: str, date_done: datetime | None, *, n: int = 0, pad: int = 0
) -> bytes:
    """A meta as Celery's Redis backend writes it with ``result_extended`` (kombu's JSON,
    keys in Celery's order). ``pad`` adds that many characters to the result."""
    exc = {"exc_type": "ValueError", "exc_message": [f"bad input {n}"], "exc_module": "builtins"}
    result: Any = {
        "SUCCESS": n * 2,
        "FAILURE": exc,
        "RETRY": {**exc, "exc_type": "RuntimeError", "exc_message": [f"retry 1 of {n}"]},
        "REVOKED": {"exc_type": "TaskRevokedError", "exc_message": ["revoked"], "exc_module": ""},
        "STARTED": {"pid": 4242, "hostname": "w1@seed"},
    }[state]
    if pad:
        result = "x" * pad
    failed = state in ("FAILURE", "RETRY")
    traceback = "Traceback (most recent call last):\n  ...\nValueError: bad"
    meta = {
        "status": state,
        "result": result,
        "traceback": traceback if failed else None,
        "children": [],
        "date_done": date_done.isoformat() if date_done else None,
        "name": example.task_name("add"),
        "args": [n, 2],
        "kwargs": {},
        "worker": "w1@seed",
        "retries": 1 if state == "RETRY" else 0,
        "queue": "celery",
        "task_id": task_id,
    }
    return json.dumps(meta).encode()


def seed_metas(
    conn: redis.Redis,
    n: int,
    *,
    seed: int = 0,
    spread_s: float = 72_000.0,
    now: datetime | None = None,
    chunk: int = 5000,
) -> list[str]:
    """Write ``n`` realistic result metas fast (pipelined ``SETEX``, Celery's one-day TTL),
    in the mix of :data:`SEED_STATES`, finished ones done over the last ``spread_s`` seconds.
    Returns their task ids, in order."""
    rng = random.Random(seed)
    now = now or datetime.now(UTC)
    ids: list[str] = []
    pipe = conn.pipeline(transaction=False)
    for i in range(n):
        task_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        state = SEED_STATES[i % len(SEED_STATES)]
        finished = state in ("SUCCESS", "FAILURE", "REVOKED")
        done = now - timedelta(seconds=rng.uniform(0, spread_s)) if finished else None
        pipe.set(meta_key(task_id), realistic_meta(task_id, state, done, n=i), ex=86_400)
        ids.append(task_id)
        if len(pipe) >= chunk:
            pipe.execute()
    pipe.execute()
    return ids


# -------------------------------------------------------------------- workers with options


def start_with_transport_options(
    workers: CeleryWorkerPool,
    options: dict[str, Any],
    config_dir: Path,
    *,
    queues: Iterable[str] = ALL_QUEUES,
    pool: str = "solo",
    concurrency: int = 1,
) -> CeleryWorker:
    """Start a worker like ``CeleryWorkerPool.start`` whose ``broker_transport_options`` are
    ``options`` (``global_keyprefix``...), given through Celery's ``--config``: a module
    written to ``config_dir`` and put on the worker's ``PYTHONPATH``. The example app sets no
    transport options, so the module's apply. The worker is stopped with the pool."""
    config_dir.mkdir(parents=True, exist_ok=True)
    module = f"jb_transport_options_{len(workers.workers)}"
    (config_dir / f"{module}.py").write_text(f"broker_transport_options = {options!r}\n")
    name = f"o{len(workers.workers)}-{os.getpid()}-{time.monotonic_ns() % 10**9}"
    return workers.start(
        queues,
        pool=pool,
        concurrency=concurrency,
        name=name,
        events=False,
        config=(module, config_dir),
    )
