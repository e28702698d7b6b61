"""Helpers for Autumn integration tests: the emulator as producer and worker."""

from __future__ import annotations

import json
import time
from typing import Any

import redis

from jobbridge.dev.autumn_emulator import BUILTIN_HANDLERS, Autumn, Worker

DAY_MS = 86_400_000


def failing_job(app: Autumn, name: str = "always_fail", **enqueue: Any) -> str:
    """Enqueue a job with one attempt and run it to the dead list; its id."""
    payload = enqueue.pop("payload", {"message": "boom"})
    job_id = app.enqueue(name, payload, max_attempts=1, **enqueue)
    assert job_id is not None
    worker = Worker(app, [enqueue.get("queue", "default")])
    record = worker.claim()
    assert record is not None and record["id"] == job_id
    worker.execute(record)
    assert app.dead_record_raw(job_id) is not None
    return job_id


def history_record(app: Autumn, *, finished_ms: int, name: str = "noop", **extra: Any) -> str:
    """An encoded terminal record, as Autumn pushes to completed / dead."""
    job_id = extra.pop("id", None) or f"h-{finished_ms}-{time.monotonic_ns()}"
    record = {
        "id": job_id,
        "name": name,
        "queue": extra.pop("queue", "default"),
        "payload": extra.pop("payload", {}),
        "attempt": extra.pop("attempt", 1),
        "max_attempts": 5,
        "initial_backoff_ms": 250,
        "enqueued_at_ms": finished_ms - 10,
        "started_at_ms": finished_ms - 5,
        "finished_at_ms": finished_ms,
        "claimed_by": None,
        "claimed_at_ms": None,
        "last_error": extra.pop("last_error", None),
    }
    record.update(extra)
    return app.encode(record)


def push_dead(app: Autumn, encoded: str) -> str:
    """Push a dead entry and its byte-identical dead-record, as Autumn's settle does."""
    job_id = json.loads(encoded)["id"]
    app.client.lpush(app.dead_key, encoded)
    app.client.set(app.dead_record_key(job_id), encoded)
    return str(job_id)


def queued_decoy(app: Autumn, name: str = "harmless") -> str:
    """A job waiting in the default queue, and a decoy record queued as "decoy" that claims
    the job's id inside it; the victim's id."""
    victim = app.enqueue("charge_card", {"amount": 100})
    assert victim is not None
    decoy = json.loads(app.record_raw(victim) or "{}")
    decoy["name"] = name
    app.client.set(app.record_key("decoy"), json.dumps(decoy))
    app.client.lpush(app.queue_key("default"), "decoy")
    return victim


def drain(app: Autumn, queues: list[str] | None = None, **kw: Any) -> int:
    return Worker(app, queues or ["default"], **kw).run(until_idle=True, max_seconds=30)


def ran(client: redis.Redis, key: str) -> list[str]:
    return [v.decode() for v in client.lrange(key, 0, -1)]


__all__ = [
    "BUILTIN_HANDLERS",
    "DAY_MS",
    "Autumn",
    "Worker",
    "drain",
    "failing_job",
    "history_record",
    "push_dead",
    "queued_decoy",
    "ran",
]
