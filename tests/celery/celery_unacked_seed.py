"""Messages held in ``unacked`` as kombu writes them (``[message, exchange, routing_key]``
under a delivery tag, the tag in ``unacked_index`` scored by delivery time), and event
messages as a worker publishes them, made fast for tests and the benchmarks."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import redis

from jobbridge.adapters.celery.control import build_task_message


def held_value(
    task_id: str, eta: datetime | None, *, properties: dict[str, object] | None = None
) -> bytes:
    """One ``unacked`` value: a real protocol 2 message, with an eta when given and
    ``properties`` set over its own (as they are: a test may set any value)."""
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
    message["properties"].update(properties or {})
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


def events_channel(global_keyprefix: str, db: int, event_type: str) -> str:
    """The channel kombu PUBLISHes an event of this type on: ``P/<db>.celeryev/worker.heartbeat``
    for ``worker-heartbeat`` (the event's routing key is its type with ``-`` made ``.``)."""
    return f"{global_keyprefix}/{db}.celeryev/{event_type.replace('-', '.')}"


def event_message(body: Any, hostname: str = "w1@h") -> bytes:
    """A message of an event channel as kombu publishes it: a JSON envelope whose body is
    the event (or, on ``task.multi``, a list of them), base64."""
    encoded = base64.b64encode(json.dumps(body).encode()).decode()
    return json.dumps(
        {
            "body": encoded,
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": {"hostname": hostname},
            "properties": {"body_encoding": "base64", "delivery_tag": "t", "priority": 0},
        }
    ).encode()
