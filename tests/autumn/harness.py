"""Autumn's contract harness (tests/contract/harness.py): jobs made by the emulator, as
Autumn's producers and workers leave them."""

from __future__ import annotations

from collections.abc import Mapping

import redis

from jobbridge.dev.autumn_emulator import Autumn, Worker
from jobbridge.settings import SourceConfig
from tests.contract.harness import State

#: waiting jobs wait here; jobs a worker takes go through WORK, so a claim never takes them
QUEUES = ("default", "work")
WORK = "work"


class AutumnHarness:
    system = "autumn"
    states = frozenset(State)

    def __init__(self, redis_url: str) -> None:
        self.redis_url = redis_url
        self.client = redis.Redis.from_url(redis_url)
        self.autumn = Autumn(self.client)
        self.worker = Worker(self.autumn, [WORK])

    def source(self, name: str) -> SourceConfig:
        return SourceConfig(name=name, system="autumn", redis_url=self.redis_url, queues=QUEUES)

    def _through_worker(
        self, name: str, *, run: bool, payload: dict[str, object] | None = None
    ) -> str:
        job_id = self.autumn.enqueue(name, payload or {"n": 1}, queue=WORK, max_attempts=1)
        assert job_id is not None
        record = self.worker.claim()
        assert record is not None and record["id"] == job_id, record
        if run:
            self.worker.execute(record)
        return job_id

    def seed(self, wanted: Mapping[State, int]) -> dict[State, list[str]]:
        made: dict[State, list[str]] = {state: [] for state in wanted}
        for state, count in wanted.items():
            made[state] = [self._one(state, {"n": n}) for n in range(count)]
        return made

    def seed_tagged(
        self, state: State, count: int, *, correlation_id: str, principal_id: str
    ) -> list[str]:
        # Autumn's producers put both ids at the top of the payload.
        tags = {"correlation_id": correlation_id, "principal_id": principal_id}
        return [self._one(state, {"n": n, **tags}) for n in range(count)]

    def _one(self, state: State, payload: dict[str, object]) -> str:
        if state is State.ENQUEUED:
            job_id = self.autumn.enqueue("noop", payload)
        elif state is State.SCHEDULED:
            job_id = self.autumn.enqueue("noop", payload, delay_ms=3_600_000)
        elif state is State.RUNNING:
            job_id = self._through_worker("noop", run=False, payload=payload)
        elif state is State.COMPLETED:
            job_id = self._through_worker("noop", run=True, payload=payload)
        else:
            job_id = self._through_worker("always_fail", run=True, payload=payload)
        assert job_id is not None
        return job_id

    def counts(self) -> dict[State, int]:
        a, c = self.autumn, self.client
        return {
            State.ENQUEUED: sum(c.llen(a.queue_key(q)) for q in QUEUES),
            State.SCHEDULED: c.zcard(a.delayed_key),
            State.RUNNING: c.zcard(a.processing_key),
            State.COMPLETED: c.llen(a.completed_key),
            State.FAILED: c.llen(a.dead_key),
        }

    def hostile(self) -> State:
        self.client.set(self.autumn.record_key("hostile-1"), '{"id": "hostile-1", "name": ')
        self.client.lpush(self.autumn.queue_key("default"), "hostile-1")
        return State.ENQUEUED

    def close(self) -> None:
        self.client.close()
