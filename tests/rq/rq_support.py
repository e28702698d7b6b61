"""Helpers for the RQ integration tests: real ``rq worker`` processes and a jobbridge app.

Workers are subprocesses of the venv's ``rq`` command, each in its own session (so a stop also
reaches the work horse it forked), logging to files that are shown whenever a worker does not
behave. The app is the real one (``create_app``) with one RQ source on the test Redis, called
through aiohttp's test client with an operator's bearer token (no CSRF token needed).
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import os
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AbstractContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import redis
from aiohttp.test_utils import TestClient, TestServer
from rq import Queue, Worker
from rq.job import Job
from rq.registry import FailedJobRegistry

from jobbridge.model import Action, ActionResult
from jobbridge.service import JobService
from jobbridge.settings import AuthConfig, ServerConfig, Settings, SourceConfig, TokenConfig
from jobbridge.web import keys
from jobbridge.web.app import create_app
from tests.integration.processes import (
    ROOT,
    ProcessPool,
    WorkerProcess,
    running,
    scaled,
    spawn,
)
from tests.rq import tasks as rq_tasks

T = TypeVar("T")

#: the venv's ``rq`` command (the same interpreter as the tests)
RQ_COMMAND = Path(sys.executable).parent / "rq"
#: the RQ source's name in every app and config these tests build
SOURCE = "work"
OPERATOR_TOKEN = "rq-operator-token-0123456789"
OPERATOR = TokenConfig(
    name="rq-ops",
    role="operator",
    token_sha256=hashlib.sha256(OPERATOR_TOKEN.encode()).hexdigest(),
)
#: how the audit log names the operator above
ACTOR = "token:rq-ops"
PREFIX = "/admin"


# -------------------------------------------------------------------- polling


def wait_for(check: Callable[[], T], what: str, timeout: float = 10.0, every: float = 0.02) -> T:
    """Poll ``check`` until it returns something truthy, at most ``timeout`` seconds (on a
    quiet machine: ``scaled``).

    Raises:
        AssertionError: naming ``what`` when the deadline passes.
    """
    timeout = round(scaled(timeout), 1)
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)


async def async_wait_for(
    check: Callable[[], Any], what: str, timeout: float = 10.0, every: float = 0.02
) -> Any:
    """``wait_for`` for coroutines: ``check`` may return an awaitable."""
    timeout = round(scaled(timeout), 1)
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(every)


# -------------------------------------------------------------------- RQ's side


def sync_redis(redis_url: str) -> redis.Redis:
    """A plain client for RQ's own API (RQ needs bytes replies)."""
    return redis.Redis.from_url(redis_url)


def ran_ids(conn: redis.Redis) -> list[str]:
    """Job ids the tasks recorded as run, in order (duplicates kept)."""
    return [v.decode() for v in conn.lrange(rq_tasks.RAN_KEY, 0, -1)]


def status_of(conn: redis.Redis, job_id: str) -> str:
    """RQ's own word for a job's status (its ``JobStatus`` value)."""
    return Job.fetch(job_id, connection=conn).get_status().value


def enqueue(conn: redis.Redis, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Job:
    """Enqueue on the ``queue`` keyword's queue (default "default") through RQ's API."""
    queue = Queue(kwargs.pop("queue", "default"), connection=conn)
    return queue.enqueue(func, *args, **kwargs)


def _worker_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JOBBRIDGE_", "RQ_"))}
    env["PYTHONPATH"] = str(ROOT)
    env["PYTHONUNBUFFERED"] = "1"
    return env


#: how long a burst worker that logged it is done gets to exit by itself (quiet machine)
EXIT_GRACE = 3.0


@dataclass
class RqWorker(WorkerProcess):
    """One ``rq worker`` subprocess."""

    queues: tuple[str, ...] = ()
    burst: bool = False
    #: a burst worker that finished its work but had to be stopped to exit (see ``wait_exit``)
    stopped_after_done: bool = False

    def describe(self) -> str:
        note = " (stopped after it was done: its exit hung)" if self.stopped_after_done else ""
        return super().describe() + note

    def wait_registered(self, conn: redis.Redis, timeout: float = 15.0) -> None:
        """Wait until RQ lists this worker (its key in ``rq:workers``) and it has left its
        start-up: RQ registers a worker, then installs its signal handlers, then sets it idle
        (or busy). A SIGTERM before the handlers kills it without its shutdown, so a test that
        stops the worker must not begin while its state still says "started"."""

        def registered() -> bool:
            if not self.alive:
                raise AssertionError(f"worker exited before registering: {self.describe()}")
            return any(
                w.name == self.name and w.get_state() not in ("started", "?")
                for w in Worker.all(connection=conn)
            )

        wait_for(registered, f"worker {self.name} to register", timeout)

    def is_done(self) -> bool:
        """Whether a burst worker logged that it found its queues empty and is quitting."""
        return f"Worker {self.name}: done, quitting" in self.logs(tail=10**7)

    def exiting(self) -> bool:
        """Its teardown has begun (see ``wait_exit`` for how that can hang)."""
        return f"Worker {self.name}: unsubscribing from channel" in self.logs(tail=10**7)

    def wait_exit(self, timeout: float = 30.0) -> int:
        """Wait for a burst worker to finish; its exit code (asserted 0 by ``assert_clean``).

        A worker that logged "done, quitting" has run every job of its queues; if it is still
        there ``EXIT_GRACE`` later it is stopped, and that counts as a clean exit (0). RQ's
        teardown can hang for a minute: it unsubscribes its command channel and then stops
        the pub/sub thread with an unbounded join (redis-py's ``PubSubWorkerThread.stop``);
        if the thread reads the UNSUBSCRIBE reply before the stop, it next waits 60 s (RQ's
        ``sleep_time``) for a subscription that never comes. A loaded machine makes that
        ordering likely. A worker that never says it is done fails, with its log.
        """
        deadline = time.monotonic() + scaled(timeout)
        done_at: float | None = None
        while (code := self.process.poll()) is None:
            now = time.monotonic()
            if done_at is None and self.is_done():
                done_at = now
            if done_at is not None and now - done_at > scaled(EXIT_GRACE):
                self.stopped_after_done = True
                self.stop()
                return 0
            if done_at is None and now > deadline:
                raise AssertionError(
                    f"worker did not finish within {scaled(timeout):.0f}s: {self.describe()}"
                )
            time.sleep(0.05)
        return code

    def assert_clean_exit(self, timeout: float = 30.0) -> None:
        code = self.wait_exit(timeout)
        assert code == 0, f"worker exited with {code}: {self.describe()}"


@dataclass
class WorkerPool(ProcessPool[RqWorker]):
    """Workers started for one test; ``close`` stops whatever is still running."""

    def start(
        self,
        queues: Iterable[str] = ("default",),
        *,
        burst: bool = False,
        scheduler: bool = False,
        name: str | None = None,
        extra: Iterable[str] = (),
    ) -> RqWorker:
        """Start ``rq worker`` on ``queues`` (RQ's default pickle serializer, fork per job)."""
        queues = tuple(queues)
        name = name or f"jbtest-{os.getpid()}-{len(self.workers)}-{time.monotonic_ns() % 10**9}"
        command = [str(RQ_COMMAND), "worker", "--url", self.redis_url, "--name", name]
        if burst:
            command.append("--burst")
        if scheduler:
            command.append("--with-scheduler")
        command += [*extra, *queues]
        log_path = self.log_dir / f"{name}.log"
        process = spawn(command, _worker_env(), log_path)
        worker = RqWorker(name, process, log_path, queues=queues, burst=burst)
        self.workers.append(worker)
        return worker

    def run_burst(
        self, queues: Iterable[str] = ("default",), *, scheduler: bool = False, timeout: float = 30
    ) -> RqWorker:
        """Run a burst worker until the queues are drained; assert it exited 0."""
        worker = self.start(queues, burst=True, scheduler=scheduler)
        worker.assert_clean_exit(timeout)
        return worker


def worker_pool(redis_url: str, log_dir: Path) -> AbstractContextManager[WorkerPool]:
    """A pool whose workers are stopped (SIGTERM, then SIGKILL) however the test ends."""
    return running(WorkerPool(redis_url, log_dir))


def make_failed(
    conn: redis.Redis, pool: WorkerPool, count: int = 1, *, queue: str = "default", **kw: Any
) -> list[str]:
    """``count`` jobs of ``rq_tasks.fail`` run by a burst worker into the failed registry."""
    jobs = [enqueue(conn, rq_tasks.fail, f"boom {n}", queue=queue, **kw) for n in range(count)]
    pool.run_burst([queue])
    failed = set(FailedJobRegistry(queue, connection=conn).get_job_ids(cleanup=False))
    ids = [job.id for job in jobs]
    assert set(ids) <= failed, pool.describe()
    return ids


# -------------------------------------------------------------------- jobbridge's side


def rq_settings(
    redis_url: str, *, queues: tuple[str, ...] | None = ("default",), read_only: bool = False
) -> Settings:
    """Settings with one RQ source on the test Redis, the operator token, no cache."""
    return Settings(
        server=ServerConfig(prefix=PREFIX, cache_ttl_s=0.0, read_only=read_only),
        sources=(SourceConfig(name=SOURCE, system="rq", redis_url=redis_url, queues=queues),),
        auth=AuthConfig(tokens=(OPERATOR,), session_secret="rq-test-session-secret-0123456789"),
    )


def write_config(path: Path, redis_url: str, queues: tuple[str, ...] = ("default",)) -> Path:
    """A jobbridge TOML config naming the same source, for the CLI."""
    listed = ", ".join(f'"{q}"' for q in queues)
    path.write_text(
        "[[sources]]\n"
        f'name = "{SOURCE}"\nsystem = "rq"\nredis_url = "{redis_url}"\nqueues = [{listed}]\n'
    )
    return path


def stop_route_exists() -> bool:
    """Whether the app routes ``.../stop`` (being added; else the service is called)."""
    from jobbridge.web import routes

    return "stop" in routes.ACTIONS


@dataclass
class RqApi:
    """The JSON API of an app with one RQ source, as an operator calls it."""

    client: TestClient
    source: str = SOURCE

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {OPERATOR_TOKEN}"}

    @property
    def service(self) -> JobService:
        return self.client.app[keys.SERVICE]

    async def get(self, path: str) -> tuple[int, Any]:
        """GET ``path`` (under the prefix); (status, JSON body or text)."""
        response = await self.client.get(PREFIX + path, headers=self.headers)
        if response.content_type == "application/json":
            return response.status, await response.json()
        return response.status, await response.text()

    async def act(self, job_id: str, action: Action | str) -> tuple[int, dict[str, Any]]:
        """POST an action; (HTTP status, JSON body). ``stop`` goes to the service while the
        API has no route for it (the body is then built as the API would)."""
        action = Action(action)
        if action is Action.STOP and not stop_route_exists():
            return await self._act_through_service(job_id, action)
        path = f"{PREFIX}/api/sources/{self.source}/jobs/{job_id}/{action.value}"
        response = await self.client.post(path, headers=self.headers)
        body = await response.json()
        return response.status, body

    async def _act_through_service(self, job_id: str, action: Action) -> tuple[int, Any]:
        from jobbridge.serialize import action_json
        from jobbridge.web.api import OUTCOME_STATUS

        result: ActionResult = await self.service.act(self.source, job_id, action, ACTOR)
        return OUTCOME_STATUS[result.outcome], action_json(result)

    async def job(self, job_id: str) -> tuple[int, Any]:
        return await self.get(f"/api/sources/{self.source}/jobs/{job_id}")

    async def snapshot(self, query: str = "") -> dict[str, Any]:
        status, body = await self.get(f"/api/sources/{self.source}/snapshot{query}")
        assert status == 200, body
        return body  # type: ignore[no-any-return]

    async def audit(self, limit: int = 1000) -> list[dict[str, Any]]:
        status, body = await self.get(f"/api/audit?source={self.source}&limit={limit}")
        assert status == 200, body
        return body["entries"]  # type: ignore[no-any-return]


@asynccontextmanager
async def rq_api(redis_url: str, **settings: Any) -> AsyncIterator[RqApi]:
    """The real app (its own service, as in production) behind a test server."""
    app = create_app(rq_settings(redis_url, **settings))
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield RqApi(client)
    finally:
        await client.close()


def listed_ids(snapshot: dict[str, Any], name: str) -> list[str]:
    """Ids on the first page of one list of a snapshot body."""
    return [item["id"] for item in snapshot["lists"][name]["items"]]


def find_row(snapshot: dict[str, Any], job_id: str) -> tuple[str, dict[str, Any]] | None:
    """(list name, row) of a job on any list's first page of a snapshot body."""
    for name, page in snapshot["lists"].items():
        for item in page["items"]:
            if item["id"] == job_id:
                return name, item
    return None
