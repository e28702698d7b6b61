"""RQ's contract harness (tests/contract/harness.py): jobs made through RQ's own API, run by
RQ's in-process ``SimpleWorker`` where a worker's hand is needed (its own steps, without its
loop: a job is dequeued, then run or left running)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import timedelta

import redis
from rq import Queue, SimpleWorker
from rq.job import Job

from jobbridge.settings import SourceConfig
from tests.contract.harness import State
from tests.rq import tasks

#: waiting jobs wait here; jobs a worker takes go through WORK, so a burst never runs them
QUEUES = ("default", "work")
WORK = "work"
#: keyword arguments a seeded call carries (a correlation id, a principal id)
Tags = dict[str, object]


class RqHarness:
    system = "rq"
    states = frozenset(State)

    def __init__(self, redis_url: str) -> None:
        self.redis_url = redis_url
        self.conn = redis.Redis.from_url(redis_url)
        self.waiting = Queue("default", connection=self.conn)
        self.work = Queue(WORK, connection=self.conn)

    def source(self, name: str) -> SourceConfig:
        return SourceConfig(name=name, system="rq", redis_url=self.redis_url, queues=QUEUES)

    def _dequeue(self, func: Callable[..., object], n: int, tags: Tags) -> tuple[SimpleWorker, Job]:
        """A job enqueued and dequeued by a worker, as ``rq worker`` takes one."""
        job = self.work.enqueue(func, args=(n,), kwargs=tags)
        worker = SimpleWorker([self.work], connection=self.conn)
        worker.register_birth()  # type: ignore[no-untyped-call]
        taken = worker.dequeue_job_and_maintain_ttl(timeout=1)
        assert taken is not None and taken[0].id == job.id, taken
        return worker, job

    def _run(self, func: Callable[..., object], n: int, tags: Tags) -> str:
        """A job run to its end (finished or failed) by RQ's in-process worker."""
        worker, job = self._dequeue(func, n, tags)
        worker.execute_job(job, self.work)
        worker.register_death()  # type: ignore[no-untyped-call]
        return job.id

    def _take(self, n: int, tags: Tags) -> str:
        """A job a worker took and is running: dequeued, its execution recorded."""
        worker, job = self._dequeue(tasks.add, n, tags)
        worker.prepare_execution(job)
        worker.prepare_job_execution(job, remove_from_intermediate_queue=True)
        return job.id

    def seed(self, wanted: Mapping[State, int]) -> dict[State, list[str]]:
        made: dict[State, list[str]] = {state: [] for state in wanted}
        for state, count in wanted.items():
            made[state] = [self._one(state, n, {}) for n in range(count)]
        return made

    def seed_tagged(
        self, state: State, count: int, *, correlation_id: str, principal_id: str
    ) -> list[str]:
        # RQ's producers pass them as keyword arguments of the call.
        tags = {"correlation_id": correlation_id, "principal_id": principal_id}
        return [self._one(state, n, tags) for n in range(count)]

    def _one(self, state: State, n: int, tags: Tags) -> str:
        if state is State.ENQUEUED:
            return self.waiting.enqueue(tasks.add, args=(n,), kwargs=tags).id
        if state is State.SCHEDULED:
            later = timedelta(hours=1)
            return self.waiting.enqueue_in(later, tasks.add, args=(n,), kwargs=tags).id
        if state is State.RUNNING:
            return self._take(n, tags)
        if state is State.COMPLETED:
            return self._run(tasks.add, n, tags)
        return self._run(tasks.fail, n, tags)

    def counts(self) -> dict[State, int]:
        counted = dict.fromkeys(State, 0)
        for name in QUEUES:
            queue = Queue(name, connection=self.conn)
            counted[State.ENQUEUED] += queue.count
            counted[State.SCHEDULED] += queue.scheduled_job_registry.get_job_count(cleanup=False)
            counted[State.SCHEDULED] += queue.deferred_job_registry.get_job_count(cleanup=False)
            counted[State.RUNNING] += queue.started_job_registry.get_job_count(cleanup=False)
            counted[State.COMPLETED] += queue.finished_job_registry.get_job_count(cleanup=False)
            counted[State.FAILED] += queue.failed_job_registry.get_job_count(cleanup=False)
        return counted

    def hostile(self) -> State:
        # A job hash whose pickled call is garbage and whose times are not times.
        self.conn.hset(
            "rq:job:hostile-1",
            mapping={"status": "queued", "data": b"\x80\x05garbage", "created_at": "yesterday"},
        )
        self.conn.rpush(self.waiting.key, "hostile-1")
        return State.ENQUEUED

    def close(self) -> None:
        self.conn.close()
