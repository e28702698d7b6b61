"""The workers panel's rules for Celery, on a watch that is never started (no Redis I/O): what
inspect's answers, heartbeats and task events make of a worker's counts and current tasks."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis.asyncio

from jobbridge.adapters.celery.worker_state import MAX_TASK_IDS, read_task_ids, read_total
from jobbridge.adapters.celery.workers import INSPECT_METHODS, WorkerWatch
from jobbridge.model import Worker
from tests.celery.test_celery_worker_polling import event

NODE = "w1@host"
STATS = {
    "pid": 4242,
    "uptime": 90,
    "pool": {"implementation": "celery.concurrency.prefork:TaskPool", "max-concurrency": 2},
    "total": {"tasks.add": 2, "tasks.fail": 3},
}


def answers(**by_method: Any) -> dict[str, dict[str, Any]]:
    return {m: ({NODE: by_method[m]} if m in by_method else {}) for m in INSPECT_METHODS}


def full(active: list[str], *, reserved: int = 1, scheduled: int = 2) -> dict[str, Any]:
    return answers(
        stats=STATS,
        active_queues=[{"name": "celery"}],
        reserved=[{"id": f"r{n}"} for n in range(reserved)],
        scheduled=[{"request": {"id": f"s{n}"}} for n in range(scheduled)],
        active=[{"id": task} for task in active],
    )


@pytest.fixture
def watch() -> WorkerWatch:
    return WorkerWatch(
        redis.asyncio.Redis(host="unused.invalid"), global_keyprefix="", db=0, source="unit"
    )


def shown(watch: WorkerWatch) -> Worker:
    (worker,) = watch.workers()
    return worker


def test_inspect_answers_give_the_counts_and_current_tasks(watch: WorkerWatch) -> None:
    now = time.monotonic()
    watch._apply_replies(full(["t1", "t2"]), now, now)
    worker = shown(watch)
    # reserved and scheduled as inspect counts them: eta tasks are not reserved
    assert (worker.active, worker.reserved, worker.scheduled) == (2, 1, 2)
    assert (worker.current_job, worker.current_jobs) == ("t1", ("t1", "t2"))
    assert worker.processed == 5  # stats' total summed over task names
    # no task events followed: failures are unknown, not 0
    assert (worker.failed, worker.failed_since) == (None, None)
    assert worker.last_seen is not None and worker.last_heartbeat is None


def test_task_events_keep_current_tasks_and_count_failures(watch: WorkerWatch) -> None:
    now = time.monotonic()
    watch.follow_task_events()
    watch._apply_replies(full(["t1"]), now - 5, now - 5)
    watch.on_task_event("task-received", "t2", NODE, now - 4)
    assert shown(watch).failed == 0  # it sends task events: its count is known
    watch.on_task_event("task-started", "t2", NODE, now - 4)
    watch.on_task_event("task-succeeded", "t1", NODE, now - 3)
    assert shown(watch).current_jobs == ("t2",)
    watch.on_task_event("task-failed", "t2", NODE, now - 2)
    worker = shown(watch)
    assert (worker.current_jobs, worker.failed) == ((), 1)
    # an answer made before t2 ended (to a broadcast sent before) does not bring it back
    watch._apply_replies(full(["t2", "t3"]), now - 2.5, now)
    assert shown(watch).current_jobs == ("t3",)
    # events of a worker the watch does not know make up no worker
    watch.on_task_event("task-failed", "x", "other@host", now)
    assert [w.name for w in watch.workers()] == [NODE]


def test_failures_say_since_when_for_an_older_worker(watch: WorkerWatch) -> None:
    now = time.monotonic()
    watch.counting_since = datetime.now(UTC)
    watch._apply_replies(full([]), now, now)  # stats: up for 90 s, before the counting
    watch.on_task_event("task-failed", "t1", NODE, now)
    worker = shown(watch)
    assert worker.failed == 1 and worker.failed_since == watch.counting_since
    # one born after the counting began: its whole life is counted
    watch._hosts[NODE].birth = watch.counting_since + timedelta(seconds=1)
    assert shown(watch).failed_since is None


def test_a_heartbeat_with_nothing_active_clears_current_tasks(watch: WorkerWatch) -> None:
    now = time.monotonic()
    watch.on_message(event(hostname=NODE, active=1, processed=7), now)
    watch._apply_replies(full(["t1"]), now, now)
    worker = shown(watch)
    # with heartbeats, active is theirs; the answer names the task
    assert (worker.active, worker.current_jobs, worker.processed) == (1, ("t1",), 5)
    watch.on_message(event(hostname=NODE, active=0, processed=8), time.monotonic())
    worker = shown(watch)
    assert (worker.active, worker.current_jobs, worker.processed) == (0, (), 8)
    assert worker.last_seen is not None and worker.last_heartbeat is not None


@pytest.mark.parametrize(
    ("stats", "expected"),
    [
        ({"total": {}}, 0),
        ({"total": {"a": 1, "b": 2}}, 3),
        ({"total": {"a": -1}}, None),
        ({"total": {"a": True}}, None),
        ({"total": {"a": 2**62, "b": 2**62}}, None),
        ({"total": "many"}, None),
        ({}, None),
        (["x"], None),
    ],
)
def test_hostile_totals_read_as_unknown(stats: Any, expected: int | None) -> None:
    assert read_total(stats) == expected


def test_hostile_active_answers() -> None:
    assert read_task_ids("t1") is None
    assert read_task_ids([{"id": "a"}, {"id": 3}, "b", {}, {"id": ""}, {"id": "c"}]) == ("a", "c")
    many = read_task_ids([{"id": str(n)} for n in range(10 * MAX_TASK_IDS)])
    assert many is not None and len(many) == MAX_TASK_IDS
    assert read_task_ids([{"id": "x" * 10_000}]) != ("x" * 10_000,)
