"""RQ's actions: cancel, retry, discard and stop, one Lua script each (``rq/lua/*.lua``,
docs/rq.md §5). Python reads what names the script's keys and checks it
(:mod:`jobbridge.adapters.keyguard`); the script re-checks it and answers "read again" when it
moved (:mod:`jobbridge.adapters.action_loop`).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import redis.exceptions

from jobbridge.adapters.action_loop import Plan, ScriptCall, act
from jobbridge.adapters.fields import MAX_NAME_CHARS, cap, key_text, now_ms
from jobbridge.adapters.keyguard import Refusal, forged, text_problem, unknown
from jobbridge.adapters.outcomes import WORDS as WORDS_SHARED
from jobbridge.adapters.rq import hashes
from jobbridge.adapters.values import is_wrongtype, ok
from jobbridge.model import Action, ActionResult, Outcome

if TYPE_CHECKING:
    from jobbridge.adapters.rq.adapter import RqAdapter

#: The job hash fields a lifecycle entry keeps a copy of (never `data`, `meta` or results:
#: they are binary and may be large).
COPIED_FIELDS = (
    "origin",
    "status",
    "description",
    "created_at",
    "enqueued_at",
    "started_at",
    "ended_at",
    "worker_name",
    "timeout",
    "retries_left",
)
#: RQ's timestamp format (rq/utils.py); anything else makes its worker exit.
RQ_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"

#: RQ's own sentences for script replies (jobbridge.adapters.outcomes has the shared ones)
WORDS: dict[str | Outcome, str] = {
    "running": "Job {id} is already running (a worker took it); only waiting jobs can be "
    "canceled. Nothing was changed; stop a running job instead.",
    "canceled": "Job {id} is already canceled.",
    "not waiting": "Job {id} is not waiting in its queue or its scheduled or deferred registry.",
    "not failed": "Job {id} is listed as failed but RQ has since requeued or rerun it; "
    "nothing was changed.",
    "rate limited": "Job {id} is rate-limited (RQ 3): RQ keeps its concurrency slot in keys of "
    "its own, so jobbridge leaves it to RQ's own Job.cancel / requeue. Nothing was changed.",
    "no listener": "Worker of job {id} is not listening for commands (it may be gone); "
    "nothing was sent.",
    "bad ttl": "Job {id}'s ttl field is not an integer as RQ writes it, so a copy of it "
    "could not be given the same ttl; it cannot be retried (discard it instead). Nothing was "
    "changed.",
    Outcome.CORRUPT: "Job {id}'s hash is gone or holds no call to run; it cannot be retried "
    "(discard it instead).",
}


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """What a retried job's new job gets of the original's RQ ``Retry``: RQ's job hash keeps
    the intervals (``retry_intervals``) and counts ``retries_left`` down to 0, but never
    stores ``max``. A list of two or more intervals is one interval per retry (RQ's own
    indexing uses them in order when ``retries_left`` equals their number), so the new job
    gets that many retries; a single interval (``Retry(max=3)`` stores ``[0]``) says nothing
    of the count, so the new job gets none and the reply says why."""

    #: ``retries_left`` of the new job ("" for none)
    retries_left: str
    #: ``retry_intervals`` of the new job, as RQ writes it ("" for none)
    intervals: str
    #: ``enqueue_at_front_on_retry`` of the new job ("1", or "" for none)
    at_front: str
    #: attempts the new job has, in words (the reply's tail)
    words: str


def retry_policy(raw: bytes | None, at_front: bytes | None) -> RetryPolicy:
    """The Retry policy a retry gives the new job, from the original's stored fields."""
    intervals = hashes.retry_intervals(raw)
    front = "1" if at_front == b"1" else ""
    if intervals is None:
        why = (
            "the original had no Retry policy"
            if not raw
            else "the original's retry_intervals is not a list of seconds RQ could use"
        )
        return RetryPolicy("", "", "", f"it has 1 attempt ({why})")
    if len(intervals) == 1:
        return RetryPolicy(
            "",
            "",
            "",
            f"it has 1 attempt: RQ stored the original Retry's interval ({intervals[0]} s) "
            "but not its max, so its retries cannot be given back",
        )
    count = len(intervals)
    shown = ", ".join(str(v) for v in intervals)
    return RetryPolicy(
        str(count),
        json.dumps(intervals),
        front,
        f"it has {count + 1} attempts: {count} retries at {shown} s, the original's RQ Retry "
        "(RQ stores its intervals, one per retry, not its max)",
    )


def rq_timestamp(at: datetime) -> str:
    return at.astimezone(UTC).strftime(RQ_TIME_FORMAT)


def lifecycle_copy(job_id: str, values: Sequence[bytes | None]) -> str:
    """JSON text of a job's small fields (``COPIED_FIELDS`` order), for its lifecycle entry."""
    fields = {
        name: cap(key_text(value), MAX_NAME_CHARS)
        for name, value in zip(COPIED_FIELDS, values, strict=True)
        if value is not None
    }
    return json.dumps({"id": job_id, **fields}, ensure_ascii=False)


async def _read(adapter: RqAdapter, job_id: str) -> dict[str, bytes] | None:
    """The job's small fields; None when its hash does not exist, or when its key holds
    another type (the script refuses that, naming the key)."""
    pipe = adapter.client.pipeline(transaction=False)
    pipe.exists(adapter.keys.job(job_id))
    pipe.hmget(adapter.keys.job(job_id), COPIED_FIELDS)
    exists, values = (ok(r) for r in await pipe.execute(raise_on_error=False))
    if not exists or is_wrongtype(values):
        return None
    return {n: v for n, v in zip(COPIED_FIELDS, values, strict=True) if v is not None}


def _copy(job_id: str, fields: dict[str, bytes] | None) -> str:
    return lifecycle_copy(job_id, [(fields or {}).get(n) for n in COPIED_FIELDS])


async def _failed_origin(adapter: RqAdapter, job_id: str) -> str | None:
    """The queue whose failed registry lists a job whose hash is gone: O(queues)."""
    queues = adapter.queues
    pipe = adapter.client.pipeline(transaction=False)
    for queue in queues:
        pipe.zscore(adapter.keys.failed(queue), job_id)
    scores = await pipe.execute(raise_on_error=False)
    for queue, score in zip(queues, scores, strict=True):
        if isinstance(score, float):
            return queue
    return None


def _no_origin(job_id: str) -> Refusal:
    return Refusal(
        Outcome.CORRUPT,
        f"Job {job_id}'s hash names no origin queue; jobbridge cannot tell which lists hold it. "
        "Nothing was changed.",
    )


async def _listed(adapter: RqAdapter, set_key: str, member: str) -> bool:
    """Whether RQ's set lists the member; a set of another type lists nothing."""
    try:
        return bool(await adapter.client.sismember(set_key, member))
    except redis.exceptions.ResponseError as exc:
        if not is_wrongtype(exc):
            raise
        return False


async def _origin_refusal(adapter: RqAdapter, origin: str) -> Refusal | None:
    """Why the keys of this stored origin may not be acted on; None for one of the source's
    queues: a name whose keys are its own (``RqKeys.queue_name_problem``), configured, or
    listed in ``<prefix>:queues`` (RQ adds every queue it enqueues or schedules to)."""
    problem = text_problem(origin) or adapter.keys.queue_name_problem(origin)
    if problem is not None:
        return forged("origin queue", origin, problem)
    # The shown queues (configured, or found in <prefix>:queues by discovery) need no read.
    if origin in adapter.queues or origin in adapter.configured_queues:
        return None
    if await _listed(adapter, adapter.keys.queues, adapter.keys.queue(origin)):
        return None
    return unknown(
        "origin queue", origin, f"queues (configured, or listed in {adapter.keys.queues})"
    )


async def _worker_refusal(adapter: RqAdapter, worker: str) -> Refusal | None:
    """Why a stored worker name may not choose a command channel; None for a live worker of
    this source (listed in ``<prefix>:workers``)."""
    problem = text_problem(worker)
    if problem is not None:
        return forged("worker", worker, problem)
    if await _listed(adapter, adapter.keys.workers, adapter.keys.worker(worker)):
        return None
    return unknown("worker", worker, f"live workers (listed in {adapter.keys.workers})")


#: an action's plan from the job's fields (``action_loop.Plan``)
Planner = Callable[[dict[str, bytes] | None], Awaitable[Plan]]


async def _act(
    adapter: RqAdapter, action: Action, job_id: str, actor: str, plan: Planner
) -> ActionResult:
    """Read the job and plan the script call from its fields (``action_loop.act``)."""

    async def attempt() -> Plan:
        return await plan(await _read(adapter, job_id))

    return await act(adapter.scripts, adapter.operator, action, job_id, actor, attempt)


def _origin(fields: dict[str, bytes] | None) -> str:
    return key_text((fields or {}).get("origin", b""))


async def cancel(adapter: RqAdapter, job_id: str, actor: str) -> ActionResult:
    keys = adapter.keys

    async def plan(fields: dict[str, bytes] | None) -> Plan:
        origin = _origin(fields)
        if fields is not None and not origin:
            return _no_origin(job_id)
        if fields is not None and (refusal := await _origin_refusal(adapter, origin)):
            return refusal
        return ScriptCall(
            keys=[
                keys.job(job_id),
                keys.queue(origin),
                keys.scheduled(origin),
                keys.deferred(origin),
                keys.canceled(origin),
            ],
            args=[origin, now_ms() // 1000, _copy(job_id, fields)],
            words=WORDS,
        )

    return await _act(adapter, Action.CANCEL, job_id, actor, plan)


async def _policy_fields(adapter: RqAdapter, job_id: str) -> tuple[bytes | None, bytes | None]:
    """(``retry_intervals``, ``enqueue_at_front_on_retry``) of a job; the first only when at
    most 4 KiB (RQ writes a short JSON list: a bigger one is not a policy to copy)."""
    key = adapter.keys.job(job_id)
    pipe = adapter.client.pipeline(transaction=False)
    pipe.hstrlen(key, "retry_intervals")
    pipe.hget(key, "enqueue_at_front_on_retry")
    size, front = await pipe.execute(raise_on_error=False)
    raw = None
    if isinstance(size, int) and 0 < size <= 4096:
        value = await adapter.client.hget(key, "retry_intervals")
        raw = value if isinstance(value, bytes) else None
    return raw, front if isinstance(front, bytes) else None


async def retry(adapter: RqAdapter, job_id: str, actor: str) -> ActionResult:
    keys = adapter.keys
    policy = RetryPolicy("", "", "", "")

    async def plan(fields: dict[str, bytes] | None) -> Plan:
        nonlocal policy
        origin = _origin(fields)
        if fields is not None and not origin:
            return _no_origin(job_id)
        if fields is None:
            # A dangling failed id: the script refuses it (corrupt) or finds it gone.
            origin = await _failed_origin(adapter, job_id) or ""
        else:
            policy = retry_policy(*await _policy_fields(adapter, job_id))
        if origin and (refusal := await _origin_refusal(adapter, origin)):
            return refusal
        new_id = str(uuid.uuid4())
        return ScriptCall(
            keys=[
                keys.job(job_id),
                keys.failed(origin),
                keys.job(new_id),
                keys.queue(origin),
                keys.queues,
            ],
            args=[
                origin,
                new_id,
                rq_timestamp(datetime.now(tz=UTC)),
                _copy(job_id, fields),
                policy.retries_left,
                policy.intervals,
                policy.at_front,
                cap(f"retried; {policy.words}", 300) or "retried",
            ],
            words={**WORDS, "done:retry": "Retried job {id} as {detail}; " + policy.words + "."},
        )

    return await _act(adapter, Action.RETRY, job_id, actor, plan)


async def discard(adapter: RqAdapter, job_id: str, actor: str) -> ActionResult:
    keys = adapter.keys

    async def plan(fields: dict[str, bytes] | None) -> Plan:
        expected = origin = _origin(fields)
        if not origin:
            # A dangling id (or a hash naming no queue): the registry that lists it decides.
            origin = await _failed_origin(adapter, job_id) or ""
        if origin and (refusal := await _origin_refusal(adapter, origin)):
            return refusal
        return ScriptCall(
            keys=[keys.job(job_id), keys.failed(origin)],
            args=[expected, _copy(job_id, fields)],
            words=WORDS,
        )

    return await _act(adapter, Action.DISCARD, job_id, actor, plan)


async def stop(adapter: RqAdapter, job_id: str, actor: str) -> ActionResult:
    keys = adapter.keys

    async def plan(fields: dict[str, bytes] | None) -> Plan:
        worker = key_text((fields or {}).get("worker_name", b""))
        started = fields is not None and fields.get("status") == b"started"
        if started and not worker:
            return Refusal(Outcome.WRONG_STATE, WORDS_SHARED["no worker"].format(id=job_id))
        if not started:
            # The script refuses it (not running, gone); one that started since reads again.
            worker = ""
        elif refusal := await _worker_refusal(adapter, worker):
            return refusal
        command = json.dumps({"command": "stop-job", "job_id": job_id})
        return ScriptCall(
            keys=[keys.job(job_id)], args=[worker, keys.pubsub(worker), command], words=WORDS
        )

    return await _act(adapter, Action.STOP, job_id, actor, plan)
