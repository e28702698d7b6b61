"""Seeding Autumn state for the web tests, through jobbridge.dev.autumn_emulator."""

from __future__ import annotations

from dataclasses import dataclass

from jobbridge.dev.autumn_emulator import Autumn, Worker

HOUR_MS = 3_600_000


def fail(autumn: Autumn, message: str = "boom", *, queue: str = "default", **kw: object) -> str:
    """A terminally failed job (in the dead list) whose error is ``message``."""
    job_id = autumn.enqueue("always_fail", {"message": message, **kw}, queue=queue, max_attempts=1)
    assert job_id is not None
    Worker(autumn, [queue]).run(until_idle=True)
    return job_id


def complete(autumn: Autumn, payload: object = None, *, queue: str = "default") -> str:
    job_id = autumn.enqueue("noop", payload, queue=queue)
    assert job_id is not None
    Worker(autumn, [queue]).run(until_idle=True)
    return job_id


def enqueue(autumn: Autumn, name: str = "noop", payload: object = None, **kw: object) -> str:
    """A waiting job (no worker runs)."""
    job_id = autumn.enqueue(name, payload, **kw)  # type: ignore[arg-type]
    assert job_id is not None
    return job_id


def schedule(autumn: Autumn, name: str = "noop", payload: object = None) -> str:
    return enqueue(autumn, name, payload, delay_ms=HOUR_MS)


def retrying(autumn: Autumn, message: str = "first attempt failed") -> str:
    """A job whose first attempt failed, waiting an hour for its retry."""
    job_id = autumn.enqueue(
        "always_fail", {"message": message}, max_attempts=3, initial_backoff_ms=HOUR_MS
    )
    assert job_id is not None
    Worker(autumn, ["default"]).run(until_idle=True)
    return job_id


def running(autumn: Autumn, name: str = "noop") -> str:
    """A job a worker has claimed and not settled."""
    job_id = enqueue(autumn, name)
    record = Worker(autumn, ["default"]).claim()
    assert record is not None and record["id"] == job_id
    return job_id


def stuck(autumn: Autumn, name: str = "noop", *, queue: str = "default") -> str:
    """A job claimed a minute ago, with a 30 s visibility timeout, by a worker now gone."""
    past = Autumn(autumn.client, autumn.prefix, clock=lambda: autumn.now_ms() - 60_000)
    job_id = enqueue(past, name, queue=queue)
    record = Worker(past, [queue], worker_id="gone").claim()
    assert record is not None and record["id"] == job_id
    return job_id


@dataclass(frozen=True)
class Mix:
    failed: str
    completed: str
    enqueued: str
    scheduled: str
    retrying: str
    running: str


def mix(autumn: Autumn) -> Mix:
    """One job in each list (plus a retrying one), with identities in the payloads."""
    failed = fail(autumn, "disk full on /var/spool", principal_id="user-7", request_id="req-1")
    completed = complete(autumn, {"principal_id": "user-8", "correlation_id": "corr-2"})
    retry = retrying(autumn)
    run = running(autumn)
    return Mix(
        failed=failed,
        completed=completed,
        enqueued=enqueue(autumn, "send_email", {"user_id": 42}),
        scheduled=schedule(autumn),
        retrying=retry,
        running=run,
    )
