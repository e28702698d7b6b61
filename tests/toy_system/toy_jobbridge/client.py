"""The toy system itself: what its producers and workers do to its keys (blocking redis-py).

jobbridge never imports this module; the tests use it as the toy's own library.
"""

from __future__ import annotations

import json
import time
import uuid

import redis

PREFIX = "toy"


def enqueue(
    conn: redis.Redis, name: str, *args: object, queue: str = "default", **tags: str
) -> str:
    """A new waiting job; its id. ``tags`` (``correlation_id``, ``principal_id``) are kept
    beside its arguments."""
    job_id = uuid.uuid4().hex
    job = {
        "id": job_id,
        "name": name,
        "queue": queue,
        "args": list(args),
        "enqueued_at": time.time(),
        **tags,
    }
    conn.lpush(f"{PREFIX}:queue:{queue}", json.dumps(job))
    return job_id


def take(conn: redis.Redis, worker: str, queue: str = "default") -> str | None:
    """What a worker does: the oldest waiting job moves to the running list; its id."""
    raw = conn.rpop(f"{PREFIX}:queue:{queue}")
    if raw is None:
        return None
    job = json.loads(raw) | {"worker": worker, "started_at": time.time()}
    conn.rpush(f"{PREFIX}:running", json.dumps(job))
    return str(job["id"])


def fail(conn: redis.Redis, job_id: str, error: str) -> None:
    """A running job's end in failure: out of the running list, into the failed list."""
    for raw in conn.lrange(f"{PREFIX}:running", 0, -1):
        job = json.loads(raw)
        if job["id"] == job_id:
            conn.lrem(f"{PREFIX}:running", 1, raw)
            job |= {"error": error, "failed_at": time.time()}
            conn.rpush(f"{PREFIX}:failed", json.dumps(job))
            return
    raise LookupError(job_id)
