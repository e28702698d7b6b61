"""Messages held in ``unacked`` as kombu writes them (``[message, exchange, routing_key]``
under a delivery tag, the tag in ``unacked_index`` scored by delivery time), made fast for
tests and the benchmark of the background sort."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import redis

from jobbridge.adapters.celery_control import build_task_message


def held_value(task_id: str, eta: datetime | None) -> bytes:
    """One ``unacked`` value: a real protocol 2 message, with an eta when given."""
    message = json.loads(
        build_task_message(
            task="examples.celery_app.add",
            task_id=task_id,
            args=[1, 2],
            kwargs={},
            queue="celery",
            priority=None,
            parent_id=None,
            root_id=task_id,
            origin="seed@test",
        )
    )
    if eta is not None:
        message["headers"]["eta"] = eta.isoformat()
    return json.dumps([message, "", "celery"]).encode()


def seed_held(
    conn: redis.Redis, count: int, *, start_s: float = 1_700_000_000.0, every_other_eta: bool = True
) -> dict[str, tuple[str, datetime | None, float]]:
    """``count`` held messages; every other one with an eta (in an order unlike delivery's).

    Returns:
        tag -> (task id, eta, delivered at)
    """
    made: dict[str, tuple[str, datetime | None, float]] = {}
    base = datetime(2030, 1, 1, tzinfo=UTC)
    pipe = conn.pipeline(transaction=False)
    for n in range(count):
        tag, task_id = str(uuid.uuid4()), str(uuid.uuid4())
        eta = base + timedelta(seconds=(n * 7919) % count) if every_other_eta and n % 2 else None
        delivered = start_s + n
        pipe.hset("unacked", tag, held_value(task_id, eta))
        pipe.zadd("unacked_index", {tag: delivered})
        made[tag] = (task_id, eta, delivered)
        if len(pipe) >= 2000:
            pipe.execute()
    pipe.execute()
    return made
