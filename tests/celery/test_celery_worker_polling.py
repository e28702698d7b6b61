"""The worker watch finds and follows Celery workers that send no heartbeats.

A worker started with ``--without-heartbeat`` publishes no worker event at all (not even
``worker-online`` or ``worker-offline``; ``--without-gossip`` and ``--without-mingle``, which
the harness always passes, change nothing there): the watch knows it only by its answers to
inspections. The first tests drive the rules on a watch that is never started (no Redis
I/O), with times made up around ``time.monotonic``; the others run real ``celery worker``
processes on the test Redis, and wait with deadlines derived from the watch's constants.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis.asyncio

from jobbridge.adapters.celery import worker_state as celery_worker_state
from jobbridge.adapters.celery.worker_state import (
    ANSWER_TTL_S,
    FORGET_AFTER_S,
    INSPECT_NO_HEARTBEAT_S,
    WorkerDetails,
)
from jobbridge.adapters.celery.workers import (
    INSPECT_DISCOVER_S,
    INSPECT_EVERY_S,
    INSPECT_METHODS,
    MAX_EARLY_ASKS,
    MIN_INSPECT_GAP_S,
    REPLY_WINDOW_S,
    REVIVE_AFTER_S,
    WorkerWatch,
)
from tests.celery.celery_jobbridge import celery_api, wait_row
from tests.celery.celery_support import CeleryWorker, send, wait_for_state
from tests.rq.rq_support import async_wait_for

#: how long one round of inspection may take beyond its pace: the reply window, and a
#: loaded two-core machine running other tests
SLACK_S = REPLY_WINDOW_S + 4.0
#: a worker without heartbeats, as the tests start it
NO_HEARTBEAT = ["--without-heartbeat"]


def event(kind: str = "worker-heartbeat", **fields: Any) -> bytes:
    """A worker event of ``w1@host`` as a worker publishes it (kombu's JSON envelope)."""
    body = {"hostname": "w1@host", "freq": 2.0, "active": 0, "timestamp": time.time()}
    body.update(fields, type=kind)
    return json.dumps(
        {
            "body": base64.b64encode(json.dumps(body).encode()).decode(),
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": {},
            "properties": {"body_encoding": "base64", "delivery_tag": "t"},
        }
    ).encode()


def db_of(redis_url: str) -> int:
    return int(urlsplit(redis_url).path.lstrip("/") or 0)


def details_of(watch: WorkerWatch, name: str) -> WorkerDetails | None:
    return next((d for d in watch.details() if d.worker.name == name), None)


def worker_state(watch: WorkerWatch, name: str) -> str | None:
    details = details_of(watch, name)
    return None if details is None else details.worker.state


def answers(node: str, **by_method: Any) -> dict[str, dict[str, Any]]:
    """Replies as ``_collect`` returns them: every method, ``node``'s answer where given."""
    return {m: ({node: by_method[m]} if m in by_method else {}) for m in INSPECT_METHODS}


STATS = {
    "pid": 4242,
    "uptime": 90,
    "pool": {"implementation": "celery.concurrency.prefork:TaskPool", "max-concurrency": 4},
}
FULL = {
    "stats": STATS,
    "active_queues": [{"name": "celery"}, {"name": "mail"}],
    "reserved": [{}],
    "scheduled": [],
    "active": [{"id": "a"}, {"id": "b"}],
}


@pytest.fixture
def idle_watch() -> WorkerWatch:
    """A watch that is never started: the tests hand it replies and events."""
    return WorkerWatch(
        redis.asyncio.Redis(host="unused.invalid"), global_keyprefix="", db=0, source="poll"
    )


# ------------------------------------------------------------------ the rules, without I/O


def test_answers_alone_keep_a_worker_online_for_the_answer_ttl(idle_watch: WorkerWatch):
    now = time.monotonic()
    idle_watch._apply_replies(answers("q@h", **FULL), now - 1.0, now)
    (details,) = idle_watch.details()
    worker = details.worker
    assert (worker.state, worker.hostname) == ("online", "h")
    assert (worker.pool, worker.concurrency, worker.queues) == ("prefork", 4, ("celery", "mail"))
    assert (worker.active, worker.reserved, worker.pid) == (2, 1, 4242)
    # no heartbeat came: none is shown; the answer's time is in the details
    assert worker.last_heartbeat is None
    assert details.heartbeats is False
    assert details.last_answer is not None
    assert abs(details.last_answer - datetime.now(UTC)) < timedelta(seconds=5)
    assert worker.birth is not None
    assert abs(details.last_answer - worker.birth - timedelta(seconds=90)) < timedelta(seconds=2)
    seen = idle_watch._hosts["q@h"]
    sent = now - 1.0
    assert seen.offline_since(sent + ANSWER_TTL_S - 0.01) is None
    assert seen.offline_since(sent + ANSWER_TTL_S + 0.01) == sent + ANSWER_TTL_S
    assert idle_watch.online() == 1


def test_a_worker_whose_answers_stop_goes_offline_then_is_forgotten(idle_watch: WorkerWatch):
    now = time.monotonic()
    idle_watch._apply_replies(answers("late@h", **FULL), now - ANSWER_TTL_S - 1, now)
    idle_watch._apply_replies(
        answers("gone@h", **FULL), now - ANSWER_TTL_S - FORGET_AFTER_S - 1, now
    )
    assert [(w.name, w.state) for w in idle_watch.workers()] == [("late@h", "offline")]
    assert idle_watch.online() == 0
    idle_watch._prune(time.monotonic())
    assert list(idle_watch._hosts) == ["late@h"]


def test_heartbeats_take_over_from_answers_and_back(idle_watch: WorkerWatch):
    expiry = celery_worker_state.DEFAULT_FREQ * celery_worker_state.EXPIRE_FACTOR
    base = time.monotonic() - 3 * expiry  # times in the past, so the last step is now
    # first heard of by its answer (the watch started after the worker)
    idle_watch._apply_replies(answers("w1@host", **FULL), base, base + 0.1)
    seen = idle_watch._hosts["w1@host"]
    assert seen.by_answers() and seen.offline_since(base + 1) is None
    # its heartbeat: Celery's rule from then on; the active count is the newest word, an
    # answer to a broadcast sent after the heartbeat, else the heartbeat's
    idle_watch.on_message(event(active=1), base + 1)
    idle_watch._apply_replies(answers("w1@host", **FULL), base + 0.9, base + 1.6)
    assert not seen.by_answers() and seen.active == 1
    idle_watch._apply_replies(answers("w1@host", **FULL), base + 1.5, base + 1.6)
    assert not seen.by_answers() and seen.active == 2
    assert seen.offline_since(base + 1 + expiry - 0.01) is None
    assert seen.offline_since(base + 1 + expiry + 0.01) is not None
    last_heartbeat = seen.last_heartbeat
    assert last_heartbeat is not None
    # its heartbeats stop arriving, but it answers a broadcast sent after they expired
    now = time.monotonic()
    idle_watch._apply_replies(answers("w1@host", **FULL), now, now)
    (details,) = idle_watch.details()
    assert (details.worker.state, details.heartbeats, details.worker.active) == ("online", False, 2)
    # the last heartbeat it did send is still the one shown
    assert details.worker.last_heartbeat == last_heartbeat
    # and a heartbeat again: Celery's rule again
    idle_watch.on_message(event(active=0), time.monotonic())
    (details,) = idle_watch.details()
    assert (details.worker.state, details.heartbeats, details.worker.active) == ("online", True, 0)


def test_an_answer_soon_after_worker_offline_does_not_revive(idle_watch: WorkerWatch):
    now = time.monotonic()
    idle_watch.on_message(event(hostname="bye@h"), now - 20.0)
    idle_watch.on_message(event("worker-offline", hostname="bye@h"), now - 10.0)
    # the last answer of a warm shutdown, to a broadcast sent just before or after it
    idle_watch._apply_replies(answers("bye@h", **FULL), now - 10.0 + 0.1, now)
    assert idle_watch.workers()[0].state == "offline"
    # a broadcast sent well after: the worker is back without heartbeats
    idle_watch._apply_replies(answers("bye@h", **FULL), now - 10.0 + REVIVE_AFTER_S, now)
    assert idle_watch.workers()[0].state == "online"
    assert idle_watch.details()[0].heartbeats is False


def test_the_pace_follows_what_is_known(idle_watch: WorkerWatch):
    assert min(INSPECT_DISCOVER_S, INSPECT_EVERY_S, INSPECT_NO_HEARTBEAT_S) >= MIN_INSPECT_GAP_S
    assert ANSWER_TTL_S >= 2 * (INSPECT_NO_HEARTBEAT_S + REPLY_WINDOW_S)
    # nobody known: slow discovery
    assert idle_watch._pace() == INSPECT_DISCOVER_S
    # a heartbeat worker that has not answered yet: asked again soon, a few times
    now = time.monotonic()
    idle_watch.on_message(event(hostname="hb@h"), now)
    assert [idle_watch._pace() for _ in range(MAX_EARLY_ASKS)] == [MIN_INSPECT_GAP_S] * 3
    assert idle_watch._pace() == INSPECT_EVERY_S
    idle_watch._apply_replies(answers("hb@h", **FULL), now, now)
    assert idle_watch._pace() == INSPECT_EVERY_S
    # and one without heartbeats beside it: its answers must stay fresh
    idle_watch._apply_replies(answers("q@h", **FULL), now, now)
    assert idle_watch._pace() == INSPECT_NO_HEARTBEAT_S
    # once it is offline, back to the heartbeat pace
    idle_watch._hosts["q@h"].answered_at = now - ANSWER_TTL_S - 1
    assert idle_watch._pace() == INSPECT_EVERY_S


@pytest.mark.parametrize(
    "hostile",
    [
        {"stats": ["x"], "active": "many", "reserved": {}, "scheduled": None},
        {"stats": {"pid": -1, "uptime": 10**12}, "active": {"a": 1}},
        {"stats": {"pid": True, "uptime": "1h", "pool": []}, "active": list(range(100_000))},
        {"stats": {"pid": 2**70, "uptime": 1.5}, "active_queues": "celery"},
    ],
)
def test_hostile_answers_read_as_unknown(idle_watch: WorkerWatch, hostile: dict[str, Any]):
    now = time.monotonic()
    idle_watch._apply_replies(answers("bad@h", **hostile), now, now)
    (worker,) = idle_watch.workers()
    assert worker.state == "online"
    assert (worker.pid, worker.birth, worker.pool, worker.concurrency) == (None,) * 4
    assert worker.queues == ()
    assert worker.reserved is None
    active = hostile.get("active")
    assert worker.active == (len(active) if isinstance(active, list) else None)


# ------------------------------------------------------------------ real workers


@pytest.mark.redis
async def test_a_worker_without_heartbeats_started_after_the_watch(
    celery_app, celery_workers, redis_url, redis_client
):
    watch = WorkerWatch(redis_client, global_keyprefix="", db=db_of(redis_url), source="t")
    await watch.start()
    try:
        # nobody is online, yet the watch keeps asking
        await async_wait_for(lambda: watch.inspections >= 1, "the inspection at start", 5)
        worker: CeleryWorker = await asyncio.to_thread(
            celery_workers.start, pool="prefork", concurrency=2, extra=NO_HEARTBEAT
        )

        def described() -> bool:
            details = details_of(watch, worker.hostname)
            return details is not None and details.worker.state == "online"

        started = time.monotonic()
        await async_wait_for(described, "discovery", INSPECT_DISCOVER_S + SLACK_S)
        print(f"discovered {time.monotonic() - started:.1f}s after it was ready")
        details = details_of(watch, worker.hostname)
        assert details is not None
        found = details.worker
        assert (found.pool, found.concurrency) == ("prefork", 2)
        assert set(found.queues) == set(worker.queues)
        assert (found.active, found.reserved) == (0, 0)
        assert found.pid == worker.process.pid
        assert found.last_heartbeat is None and details.heartbeats is False
        assert details.last_answer is not None and found.birth is not None

        # a running task is counted, by the pace kept while it lacks heartbeats
        result = send(celery_app, "sleep", INSPECT_NO_HEARTBEAT_S + 3.0)
        wait_round = INSPECT_NO_HEARTBEAT_S + SLACK_S
        await async_wait_for(lambda: watch.workers()[0].active == 1, "active 1", wait_round)
        assert watch.workers()[0].state == "online"
        await asyncio.to_thread(wait_for_state, celery_app, result.id, "SUCCESS", 3 * wait_round)
        await async_wait_for(
            lambda: watch.workers()[0].active == 0, "active 0 again", 2 * wait_round
        )

        # stopped: no worker-offline, its answers stop and it expires
        await asyncio.to_thread(worker.stop)
        stopped = time.monotonic()
        await async_wait_for(
            lambda: watch.workers()[0].state == "offline",
            "the worker to go offline",
            ANSWER_TTL_S + INSPECT_NO_HEARTBEAT_S + SLACK_S,
        )
        print(f"offline {time.monotonic() - stopped:.1f}s after it stopped")
        seen = watch._hosts[worker.hostname]
        assert seen.offline_at is None and seen.beat_at is None
        assert watch.online() == 0
    finally:
        await watch.close()


@pytest.mark.redis
async def test_a_worker_without_heartbeats_beside_a_heartbeat_worker(
    celery_workers, redis_url, redis_client
):
    quiet: CeleryWorker = await asyncio.to_thread(
        celery_workers.start, pool="solo", extra=NO_HEARTBEAT
    )
    beating: CeleryWorker = await asyncio.to_thread(celery_workers.start, pool="solo")
    watch = WorkerWatch(redis_client, global_keyprefix="", db=db_of(redis_url), source="t")
    await watch.start()
    try:
        # the inspection at start finds both
        await async_wait_for(
            lambda: (
                {w.name for w in watch.workers() if w.pool == "solo"}
                >= {quiet.hostname, beating.hostname}
            ),
            "the inspection at start",
            5,
        )

        def heartbeat_of_beating() -> bool:
            details = details_of(watch, beating.hostname)
            return details is not None and details.heartbeats

        # the heartbeat worker: Celery's rule, as before (a heartbeat within 2 s)
        await async_wait_for(heartbeat_of_beating, "a heartbeat", 5)
        hb = details_of(watch, beating.hostname)
        assert hb is not None and hb.worker.last_heartbeat is not None
        assert hb.worker.state == "online" and hb.worker.active == 0
        q = details_of(watch, quiet.hostname)
        assert q is not None and (q.heartbeats, q.worker.last_heartbeat) == (False, None)
        assert (q.worker.state, q.worker.active, q.worker.pid) == ("online", 0, quiet.process.pid)
        assert watch.online() == 2
        assert watch._pace() == INSPECT_NO_HEARTBEAT_S

        # the heartbeat worker stops: offline through its worker-offline event, as before
        await asyncio.to_thread(beating.stop)
        await async_wait_for(
            lambda: worker_state(watch, beating.hostname) == "offline",
            "the heartbeat worker offline",
            5,
        )
        assert watch._hosts[beating.hostname].offline_at is not None
        # the other one is still answering, rounds later
        answered = watch._hosts[quiet.hostname].answered_at
        await async_wait_for(
            lambda: watch._hosts[quiet.hostname].answered_at != answered,
            "another answer",
            INSPECT_NO_HEARTBEAT_S + SLACK_S,
        )
        assert worker_state(watch, quiet.hostname) == "online"
    finally:
        await watch.close()


# ------------------------------------------------------------------ a running task's worker gone


async def test_a_started_task_of_a_killed_worker_is_overdue(
    celery_app, celery_workers, redis_url
) -> None:
    """SIGKILL (no worker-offline, no result): the task's STARTED meta stays, as in Celery.
    Once the watch counts the worker offline, the row and the job page say it is overdue."""
    from jobbridge.adapters.celery.adapter import LOST_NOTE

    async with celery_api(redis_url) as api:
        worker = celery_workers.start(pool="prefork", concurrency=1)
        adapter = api.service.adapter(api.source)
        await async_wait_for(
            lambda: any(w.pool == "prefork" for w in adapter.watch.workers()),
            "the worker's pool",
            timeout=30,
        )
        task = send(celery_app, "sleep", 60)
        row = await wait_row(api, "running", task.id)
        assert row["overdue_since"] is None and row["worker"] == worker.hostname
        os.killpg(worker.process.pid, signal.SIGKILL)
        await async_wait_for(
            lambda: adapter.watch.went_offline(worker.hostname) is not None,
            "the worker offline",
            timeout=30,
        )
        row = await wait_row(api, "running", task.id)
        assert row["overdue_since"] is not None and row["extra"]["overdue"] == LOST_NOTE
        status, page = await api.get(f"/jobs/{api.source}/{task.id}")
        assert status == 200 and "will not finish there" in page and "overdue" in page


def test_only_a_known_non_solo_worker_offline_makes_a_task_overdue() -> None:
    """The rules of CeleryAdapter._mark_lost, on a watch handed what it knows (no I/O)."""
    from jobbridge.adapters.celery.adapter import CeleryAdapter
    from jobbridge.model import JobRecord, JobStatus

    adapter = CeleryAdapter(redis.asyncio.Redis(host="unused.invalid"), source="c")
    now = time.monotonic()
    for name, pool, offline in (
        ("gone@h", "prefork", True),
        ("solo@h", "solo", True),
        ("quiet@h", None, True),
        ("alive@h", "prefork", False),
    ):
        seen, _ = adapter.watch._host(name, now)
        seen.pool = pool
        seen.beat_at = now - (100.0 if offline else 0.0)

    def overdue(worker: str | None, status: JobStatus = JobStatus.RUNNING) -> bool:
        row = JobRecord(
            source="c", system="celery", id="t", name="n", queue="q", status=status, raw_status="x"
        )
        return adapter._mark_lost(replace(row, worker=worker)).overdue_since is not None

    assert overdue("gone@h")
    assert not overdue("gone@h", JobStatus.COMPLETED)
    assert not overdue("solo@h")  # silent while it runs a task: offline says nothing
    assert not overdue("quiet@h")  # its pool never told
    assert not overdue("alive@h")
    assert not overdue("never-heard@h")
    assert not overdue(None)
