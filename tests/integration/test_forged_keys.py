"""Class 3 of issue 15: forged data never chooses where a write goes.

Every action that names a key after a stored value (RQ: a job's ``origin`` for its queue and
registries, its ``worker_name`` for the command channel; Celery: a result's ``queue`` for the
list a retry pushes to, a kombu binding for the lists a cancel searches; Autumn: a record's
``queue`` for the list a retry pushes to or a cancel removes from) runs with that value forged
to each hostile value: another system's key, jobbridge's own audit list, a system's own
bookkeeping (kombu's ``unacked``, a binding set, RQ's intermediate list, RQ's queues set), a
queue nobody knows, an empty name, 100,000 characters, control characters, bytes that are not
UTF-8. Each must be refused, audited as refused, and leave every key in the database as it
was (type, content, expiry): the only change allowed is the refusal's own audit entry. The
same setups with a legitimate value are acted on, so a refusal is the guard's doing, not the
setup's.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
import redis
import redis.asyncio

from jobbridge.adapters.autumn.adapter import AutumnAdapter
from jobbridge.adapters.celery.adapter import CeleryAdapter
from jobbridge.adapters.fields import now_ms
from jobbridge.adapters.rq.adapter import RqAdapter
from jobbridge.dev.autumn_emulator import Autumn
from jobbridge.model import ActionResult, Outcome
from tests.autumn.autumn_fixtures import history_record

pytestmark = pytest.mark.redis

AUDIT = b"jobbridge:audit"
SEP = "\x06\x16"

#: the hostile values a stored queue or worker name is forged to
HOSTILE: dict[str, str] = {
    "other-system": "rq:queue:default",
    "jobbridge-audit": "jobbridge:audit",
    "kombu-unacked": "unacked",
    "kombu-binding": "_kombu.binding.celery",
    "rq-intermediate": "default:intermediate",
    "rq-queues": "rq:queues",
    "unknown": "nosuchqueue",
    "empty": "",
    "long": "q" * 100_000,
    "spaces-newlines": "bad queue\r\nname\t",
    # bytes that are not UTF-8, as jobbridge reads them (surrogateescape)
    "not-utf8": "\udcff\udcfe queue",
}


def stored(value: str) -> bytes:
    """The exact bytes a hash field holds for a hostile value."""
    return value.encode("utf-8", "surrogateescape")


# ------------------------------------------------------------------------------------------
# The database: every key, and the audit list apart


def content(conn: redis.Redis, key: bytes) -> tuple[bytes, Any, bool]:
    """A key's type, exact content and whether it expires. Not DUMP itself: a large hash or
    set is a hash table whose DUMP order changes when a mere read rehashes it."""
    kind = conn.type(key)
    value: Any = {
        b"string": lambda: conn.get(key),
        b"list": lambda: conn.lrange(key, 0, -1),
        b"hash": lambda: sorted(conn.hgetall(key).items()),
        b"set": lambda: sorted(conn.smembers(key)),
        b"zset": lambda: conn.zrange(key, 0, -1, withscores=True),
    }.get(kind, lambda: conn.dump(key))()
    return kind, value, conn.pttl(key) > 0


def keyspace(conn: redis.Redis) -> dict[bytes, tuple[bytes, Any, bool]]:
    """Every key but the audit list, with its content."""
    return {key: content(conn, key) for key in sorted(conn.keys("*")) if key != AUDIT}


def seed_world(conn: redis.Redis) -> None:
    """Keys of every system and of jobbridge that a forged name could point at."""
    conn.hset("unacked", "tag-1", json.dumps([{"body": "x"}, "", "celery"]))
    conn.zadd("unacked_index", {"tag-1": 1.0})
    conn.sadd("_kombu.binding.celery", f"celery{SEP}{SEP}celery")
    conn.sadd("_kombu.binding.mail", f"mail{SEP}{SEP}mail")
    conn.sadd("rq:queues", "rq:queue:default", "rq:queue:low")
    conn.rpush("rq:queue:default:intermediate", "rq-taken")
    conn.sadd("rq:workers", "rq:worker:w1")
    conn.lpush("autumn:jobs:queue:low", "autumn-waiting")
    conn.lpush(AUDIT, json.dumps({"action": "cancel", "job_id": "earlier", "outcome": "done"}))


# ------------------------------------------------------------------------------------------
# One case: an action whose key is built from one stored field


Act = Callable[[], Awaitable[ActionResult]]


@dataclass
class Case:
    """What a setup made: the action to run, channels a publish would reach, and how it may
    be refused besides by name (the system's own refusal coming first)."""

    act: Act
    channels: tuple[bytes, ...] = ()
    own: tuple[str, ...] = ()
    refused: tuple[Outcome, ...] = (Outcome.CORRUPT, Outcome.WRONG_STATE)


Setup = Callable[[redis.Redis, redis.asyncio.Redis, str], Awaitable[Case]]


def rq_job(conn: redis.Redis, job_id: str, status: str, **fields: str | bytes) -> None:
    conn.hset(
        f"rq:job:{job_id}",
        mapping={
            "status": status,
            "origin": "default",
            "data": b"x\x9c\x03\x00\x00\x00\x00\x01",
            "description": "tests.rq.tasks.add(1, 2)",
            "created_at": "2026-01-01T00:00:00.000000Z",
            "enqueued_at": "2026-01-01T00:00:00.000000Z",
            "started_at": "",
            "ended_at": "",
            "worker_name": "",
            **fields,
        },
    )


async def rq_cancel(conn: redis.Redis, client: redis.asyncio.Redis, origin: str) -> Case:
    job_id = "rq-waiting"
    rq_job(conn, job_id, "queued", origin=stored(origin))
    conn.rpush(b"rq:queue:" + stored(origin or "default"), job_id)
    adapter = RqAdapter(client, source="rq")
    return Case(lambda: adapter.cancel(job_id, "alice"), own=("names no origin queue",))


async def rq_retry(conn: redis.Redis, client: redis.asyncio.Redis, origin: str) -> Case:
    job_id = "rq-failed"
    rq_job(conn, job_id, "failed", origin=stored(origin))
    conn.zadd(b"rq:failed:" + stored(origin or "default"), {job_id: 9e9})
    adapter = RqAdapter(client, source="rq")
    return Case(lambda: adapter.retry(job_id, "alice"), own=("names no origin queue",))


async def rq_discard(conn: redis.Redis, client: redis.asyncio.Redis, origin: str) -> Case:
    job_id = "rq-failed"
    rq_job(conn, job_id, "failed", origin=stored(origin))
    conn.zadd(b"rq:failed:" + stored(origin or "default"), {job_id: 9e9})
    adapter = RqAdapter(client, source="rq")
    return Case(lambda: adapter.discard(job_id, "alice"))


async def rq_stop(conn: redis.Redis, client: redis.asyncio.Redis, worker: str) -> Case:
    job_id = "rq-running"
    rq_job(conn, job_id, "started", worker_name=stored(worker))
    conn.zadd("rq:wip:default", {f"{job_id}:exec": 9e9})
    adapter = RqAdapter(client, source="rq")
    channel = b"rq:pubsub:" + stored(worker)
    return Case(lambda: adapter.stop(job_id, "alice"), (channel,), own=("no worker recorded",))


def celery_meta(task_id: str, queue: str) -> bytes:
    """An extended FAILURE result (``result_extended``) naming ``queue``."""
    return json.dumps(
        {
            "status": "FAILURE",
            "result": {"exc_type": "ValueError", "exc_message": ["boom"], "exc_module": "builtins"},
            "traceback": "Traceback (most recent call last):\nValueError: boom\n",
            "children": [],
            "date_done": datetime.now(tz=UTC).isoformat(),
            "task_id": task_id,
            "name": "examples.celery_app.fail",
            "args": ["again"],
            "kwargs": {},
            "worker": "w1@host",
            "retries": 0,
            "queue": queue,
        }
    ).encode()


async def celery_retry(conn: redis.Redis, client: redis.asyncio.Redis, queue: str) -> Case:
    task_id = str(uuid.uuid4())
    meta = celery_meta(task_id, queue)
    conn.set(f"celery-task-meta-{task_id}", meta)
    adapter = CeleryAdapter(client, source="celery")
    await adapter.index.ingest([(task_id.encode(), meta, now_ms())])
    await adapter.discover_queues()
    return Case(lambda: adapter.retry(task_id, "alice"))


async def celery_cancel(conn: redis.Redis, client: redis.asyncio.Redis, queue: str) -> Case:
    """The forged value is a kombu binding naming the queue; the message waits in its list."""
    task_id = str(uuid.uuid4())
    conn.sadd("_kombu.binding.celery", stored(f"forged{SEP}{SEP}{queue}"))
    message = {
        "body": "W1siYSJdLCB7fSwge31d",
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {"lang": "py", "task": "examples.celery_app.fail", "id": task_id},
        "properties": {
            "correlation_id": task_id,
            "delivery_info": {"exchange": "", "routing_key": queue},
            "delivery_tag": str(uuid.uuid4()),
            "body_encoding": "base64",
        },
    }
    if conn.type(stored(queue)) in (b"none", b"list"):
        conn.lpush(stored(queue), json.dumps(message))
    adapter = CeleryAdapter(client, source="celery")
    await adapter.discover_queues()
    assert queue not in adapter.known_queues or queue == "mail"
    return Case(
        lambda: adapter.cancel(task_id, "alice"),
        own=("is not waiting in any queue",),
        refused=(Outcome.NOT_FOUND,),
    )


def autumn_adapter(client: redis.asyncio.Redis) -> AutumnAdapter:
    return AutumnAdapter(client, source="orders", queues=["default", "low"])


async def autumn_retry(conn: redis.Redis, client: redis.asyncio.Redis, queue: str) -> Case:
    app = Autumn(conn)
    job_id = str(uuid.uuid4())
    encoded = stored(history_record(app, finished_ms=now_ms(), id=job_id, queue=queue))
    conn.lpush(app.dead_key, encoded)
    conn.set(app.dead_record_key(job_id), encoded)
    adapter = autumn_adapter(client)
    return Case(lambda: adapter.retry(job_id, "alice"))


async def autumn_cancel(conn: redis.Redis, client: redis.asyncio.Redis, queue: str) -> Case:
    app = Autumn(conn)
    job_id = app.enqueue("noop", {}, queue="low")
    assert job_id is not None
    record = json.loads(app.record_raw(job_id) or "{}")
    record["queue"] = queue
    conn.set(app.record_key(job_id), stored(app.encode(record)))
    # The id waits in the list the record names: only the guard stands in the way.
    conn.lrem(app.queue_key("low"), 0, job_id)
    conn.lpush(b"autumn:jobs:queue:" + stored(queue.strip()), job_id)
    adapter = autumn_adapter(client)
    return Case(lambda: adapter.cancel(job_id, "alice"))


#: (system/action, setup, the legitimate value, the hostile values that do not apply and why)
CASES: list[tuple[str, Setup, str, dict[str, str]]] = [
    ("rq/cancel", rq_cancel, "low", {}),
    ("rq/retry", rq_retry, "low", {}),
    # A hash naming no origin is discarded from the (known) registry that lists it.
    ("rq/discard", rq_discard, "low", {"empty": "legitimate"}),
    ("rq/stop", rq_stop, "w1", {}),
    # A result naming no queue goes to Celery's default queue, as Celery sends it; one with
    # lone surrogates is "neither JSON" to the index, so never a failed task to retry.
    (
        "celery/retry",
        celery_retry,
        "mail",
        {"empty": "legitimate", "not-utf8": "never indexed"},
    ),
    # A binding is how kombu names a queue: any name whose lists are a queue's own is one.
    (
        "celery/cancel",
        celery_cancel,
        "mail",
        {
            "other-system": "legitimate",
            "rq-intermediate": "legitimate",
            "rq-queues": "legitimate",
            "unknown": "legitimate",
            "empty": "no queue",
            "not-utf8": "decoded with replacement characters",
        },
    ),
    # Autumn maps an empty or blank name to its default queue, and its decoder refuses a
    # record that is not UTF-8 before any queue is read.
    (
        "autumn/retry",
        autumn_retry,
        "low",
        {"empty": "legitimate", "not-utf8": "corrupt record"},
    ),
    # A cancel only takes the job's own id out of P:queue:<name>, Autumn's own shape: any
    # well-formed name will do (the id waits there, or the script finds it is not waiting);
    # a record that is not UTF-8 is unreadable, so canceled from the default queue (Autumn).
    (
        "autumn/cancel",
        autumn_cancel,
        "low",
        {
            label: "Autumn's own shape"
            for label in HOSTILE
            if label not in ("long", "spaces-newlines")
        },
    ),
]

#: cases that subscribe to a channel wait out a second of silence after the confirmations
SLOW = {"rq/stop"}


def slow(name: str) -> Any:
    return pytest.mark.slow if name in SLOW else ()


FORGED = [
    pytest.param(setup, value, id=f"{name}-{label}", marks=slow(name))
    for name, setup, _, skip in CASES
    for label, value in HOSTILE.items()
    if label not in skip
]


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[redis.asyncio.Redis]:
    """A client made as jobbridge makes its own (bytes that are not UTF-8 round-trip)."""
    made = redis.asyncio.Redis.from_url(redis_url, encoding_errors="surrogateescape")
    try:
        yield made
    finally:
        await made.aclose()


async def listen(client: redis.asyncio.Redis, channels: tuple[bytes, ...]) -> Any:
    pubsub = client.pubsub()
    if channels:
        await pubsub.subscribe(*channels)
        while await pubsub.get_message(timeout=1.0) is not None:
            pass  # subscribe confirmations
    return pubsub


@pytest.mark.parametrize(("setup", "value"), FORGED)
async def test_forged_key_names_are_refused_and_change_nothing(
    sync_redis: redis.Redis, client: redis.asyncio.Redis, setup: Setup, value: str
) -> None:
    seed_world(sync_redis)
    case = await setup(sync_redis, client, value)
    pubsub = await listen(client, case.channels)
    before, audit_before = keyspace(sync_redis), sync_redis.lrange(AUDIT, 0, -1)

    result = await case.act()

    assert result.outcome in case.refused, result
    by_name = result.message.startswith("The stored ") and result.message.endswith(
        "othing was changed."
    )
    assert by_name or any(words in result.message for words in case.own), result
    assert keyspace(sync_redis) == before
    audit_after = sync_redis.lrange(AUDIT, 0, -1)
    assert audit_after[1:] == audit_before
    entry = json.loads(audit_after[0])
    assert (entry["action"], entry["job_id"], entry["outcome"]) == (
        result.action.value,
        result.job_id,
        result.outcome.value,
    )
    if case.channels:
        assert await pubsub.get_message(timeout=0.2) is None
    await pubsub.aclose()


@pytest.mark.parametrize(
    ("setup", "value"),
    [pytest.param(setup, value, id=name, marks=slow(name)) for name, setup, value, _ in CASES],
)
async def test_a_known_name_is_acted_on(
    sync_redis: redis.Redis, client: redis.asyncio.Redis, setup: Setup, value: str
) -> None:
    seed_world(sync_redis)
    case = await setup(sync_redis, client, value)
    pubsub = await listen(client, case.channels)
    before = keyspace(sync_redis)

    result = await case.act()

    assert result.outcome is Outcome.DONE, result
    if case.channels:
        assert (await pubsub.get_message(timeout=2.0))["channel"] == case.channels[0]
    else:
        assert keyspace(sync_redis) != before
    await pubsub.aclose()


async def test_a_refusal_stands_when_the_audit_list_is_not_a_list(
    sync_redis: redis.Redis, client: redis.asyncio.Redis
) -> None:
    seed_world(sync_redis)
    case = await celery_retry(sync_redis, client, "unacked")
    sync_redis.delete(AUDIT)
    sync_redis.set(AUDIT, "x")
    before = keyspace(sync_redis)

    result = await case.act()

    assert result.outcome is Outcome.CORRUPT and "'unacked'" in result.message, result
    assert keyspace(sync_redis) == before and sync_redis.get(AUDIT) == b"x"


async def test_celery_retry_onto_a_queue_bound_since_discovery(
    sync_redis: redis.Redis, client: redis.asyncio.Redis
) -> None:
    """A queue Celery declared after the last discovery pass is known by its binding."""
    seed_world(sync_redis)
    case = await celery_retry(sync_redis, client, "fresh")
    refused = await case.act()
    assert refused.outcome is Outcome.WRONG_STATE and "'fresh'" in refused.message, refused
    sync_redis.sadd("_kombu.binding.fresh", f"fresh{SEP}{SEP}fresh")

    result = await case.act()

    assert result.outcome is Outcome.DONE, result
    (pushed,) = sync_redis.lrange("fresh", 0, -1)
    assert json.loads(pushed)["headers"]["id"] == result.new_id
