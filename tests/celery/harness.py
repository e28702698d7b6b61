"""Celery's contract harness (tests/contract/harness.py): messages sent and results stored
through Celery's own client app and result backend, as its producers and workers leave them.

Held ETA tasks exist only while a worker holds them, so this harness seeds no scheduled task.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from contextlib import ExitStack

import redis
from celery import states  # type: ignore[import-untyped]
from celery.app.task import Context  # type: ignore[import-untyped]

from examples.celery_app import MAIL_QUEUE, task_name
from jobbridge.settings import SourceConfig
from tests.celery.celery_support import client_app, send
from tests.contract.harness import State

QUEUES = ("celery", MAIL_QUEUE)
#: the result backend's key of a task's meta (Celery's own naming)
META_PREFIX = b"celery-task-meta-"
HOSTNAME = "w1@contract"


class CeleryHarness:
    system = "celery"
    states = frozenset({State.ENQUEUED, State.RUNNING, State.COMPLETED, State.FAILED})

    def __init__(self, redis_url: str) -> None:
        self.redis_url = redis_url
        self._stack = ExitStack()
        self.app = self._stack.enter_context(client_app(redis_url))
        self.conn = self._stack.enter_context(redis.Redis.from_url(redis_url))

    def source(self, name: str) -> SourceConfig:
        return SourceConfig(name=name, system="celery", redis_url=self.redis_url, queues=QUEUES)

    def _request(self, task_id: str, n: int, tags: dict[str, str]) -> Context:
        """The request a worker stores results with (result_extended keeps its fields)."""
        return Context(
            id=task_id,
            task=task_name("add"),
            args=[n, 2],
            kwargs=tags,
            hostname=HOSTNAME,
            retries=0,
            delivery_info={"routing_key": "celery"},
        )

    def _stored(self, state: State, n: int, tags: dict[str, str]) -> str:
        task_id = str(uuid.uuid4())
        backend, request = self.app.backend, self._request(task_id, n, tags)
        if state is State.RUNNING:
            backend.store_result(
                task_id, {"pid": 4242, "hostname": HOSTNAME}, states.STARTED, request=request
            )
        elif state is State.COMPLETED:
            backend.mark_as_done(task_id, n + 2, request=request)
        else:
            error = ValueError(f"boom {n}")
            backend.mark_as_failure(task_id, error, traceback="Traceback ...", request=request)
        return task_id

    def seed(self, wanted: Mapping[State, int]) -> dict[State, list[str]]:
        made: dict[State, list[str]] = {state: [] for state in wanted}
        for state, count in wanted.items():
            assert state in self.states, state
            made[state] = [self._one(state, n, {}) for n in range(count)]
        return made

    def seed_tagged(
        self, state: State, count: int, *, correlation_id: str, principal_id: str
    ) -> list[str]:
        # Celery's producers pass them as keyword arguments of the task.
        assert state in self.states, state
        tags = {"correlation_id": correlation_id, "principal_id": principal_id}
        return [self._one(state, n, tags) for n in range(count)]

    def _one(self, state: State, n: int, tags: dict[str, str]) -> str:
        if state is State.ENQUEUED:
            return str(send(self.app, "add", n, 2, kwargs=tags).id)
        return self._stored(state, n, tags)

    def counts(self) -> dict[State, int]:
        by_status: dict[str, int] = {}
        for key in self.conn.scan_iter(match=META_PREFIX + b"*", count=1000):
            raw = self.conn.get(key)
            status = str(json.loads(raw)["status"]) if raw else ""
            by_status[status] = by_status.get(status, 0) + 1
        return {
            State.ENQUEUED: sum(self.conn.llen(q) for q in QUEUES),
            # held ETA tasks sit in kombu's unacked hash; no worker holds any here
            State.SCHEDULED: self.conn.hlen("unacked"),
            State.RUNNING: by_status.get(states.STARTED, 0),
            State.COMPLETED: by_status.get(states.SUCCESS, 0),
            State.FAILED: by_status.get(states.FAILURE, 0),
        }

    def hostile(self) -> State:
        # A broker message that is not kombu's JSON envelope at all.
        self.conn.lpush("celery", b'{"body": "not base64", "headers": ')
        return State.ENQUEUED

    def close(self) -> None:
        self._stack.close()
