"""The toy system's contract harness (tests/contract/harness.py): jobs made by the toy's own
client (toy_jobbridge.client), as its producers and workers would. The toy is installed while
a harness is open (tests/toy_system/install.py)."""

from __future__ import annotations

from collections.abc import Mapping

import redis

from jobbridge.settings import SourceConfig
from tests.contract.harness import State
from tests.toy_system.install import installed

#: waiting jobs wait in the first; jobs a worker takes go through the second
QUEUES = ("default", "work")


class ToyHarness:
    system = "toy"
    states = frozenset({State.ENQUEUED, State.RUNNING, State.FAILED})

    def __init__(self, redis_url: str) -> None:
        self._installed = installed()
        self._installed.__enter__()
        from toy_jobbridge import client

        self.toy = client
        self.redis_url = redis_url
        self.conn = redis.Redis.from_url(redis_url)

    def source(self, name: str) -> SourceConfig:
        return SourceConfig(name=name, system="toy", redis_url=self.redis_url, queues=QUEUES)

    def seed(self, wanted: Mapping[State, int]) -> dict[State, list[str]]:
        made: dict[State, list[str]] = {state: [] for state in wanted}
        for state, count in wanted.items():
            made[state] = [self._one(state, n, {}) for n in range(count)]
        return made

    def seed_tagged(
        self, state: State, count: int, *, correlation_id: str, principal_id: str
    ) -> list[str]:
        tags = {"correlation_id": correlation_id, "principal_id": principal_id}
        return [self._one(state, n, tags) for n in range(count)]

    def _one(self, state: State, n: int, tags: dict[str, str]) -> str:
        if state is State.ENQUEUED:
            # Waiting jobs wait in "default", which no worker here takes from.
            return str(self.toy.enqueue(self.conn, "add", n, **tags))
        # A worker of "work" takes each job at once: the oldest there is this one.
        job_id = str(self.toy.enqueue(self.conn, "add", n, queue="work", **tags))
        assert self.toy.take(self.conn, "worker-1", queue="work") == job_id
        if state is State.FAILED:
            self.toy.fail(self.conn, job_id, f"ValueError: {n}")
        return job_id

    def counts(self) -> dict[State, int]:
        counted = dict.fromkeys(State, 0)
        counted[State.ENQUEUED] = sum(int(self.conn.llen(f"toy:queue:{q}")) for q in QUEUES)
        counted[State.RUNNING] = int(self.conn.llen("toy:running"))
        counted[State.FAILED] = int(self.conn.llen("toy:failed"))
        return counted

    def hostile(self) -> State:
        self.conn.rpush("toy:failed", b"\xff not a job")
        return State.FAILED

    def close(self) -> None:
        self.conn.close()
        self._installed.__exit__(None, None, None)
