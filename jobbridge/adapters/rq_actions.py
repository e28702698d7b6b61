"""RQ's actions: cancel, retry, discard and stop, one Lua script each (``lua/rq_*.lua``).

Python reads what the script needs to name its keys (the job's origin queue, its worker);
each script re-checks that against the hash before it changes anything and answers "read
again" (-4) when it moved, so the action is atomic with respect to RQ's workers whatever
happened between the read and the script.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from jobbridge.adapters.base import MAX_NAME_CHARS, cap, key_text, now_ms
from jobbridge.adapters.operator import script_argv
from jobbridge.adapters.outcomes import WORDS as WORDS_SHARED
from jobbridge.adapters.outcomes import changed_too_often, result, run_script
from jobbridge.model import Action, ActionResult, Outcome

if TYPE_CHECKING:
    from jobbridge.adapters.rq import RqAdapter

#: Tries of an action whose re-check found the job moved under it.
ACTION_TRIES = 3
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
    Outcome.CORRUPT: "Job {id}'s hash is gone or holds no call to run; it cannot be retried "
    "(discard it instead).",
}


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
    """The job's small fields; None when its hash does not exist."""
    pipe = adapter.client.pipeline(transaction=False)
    pipe.exists(adapter.keys.job(job_id))
    pipe.hmget(adapter.keys.job(job_id), COPIED_FIELDS)
    exists, values = await pipe.execute()
    if not exists:
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


def _no_origin(action: Action, job_id: str) -> ActionResult:
    return result(
        action,
        Outcome.CORRUPT,
        job_id,
        f"Job {job_id}'s hash names no origin queue; jobbridge cannot tell which lists hold it. "
        "Nothing was changed.",
    )


def _shared(adapter: RqAdapter, job_id: str, actor: str) -> tuple[list[str], list[str | int]]:
    return (
        adapter.operator.keys.script_keys(job_id),
        script_argv(now_ms(), actor, adapter.source, job_id),
    )


async def cancel(adapter: RqAdapter, job_id: str, actor: str) -> ActionResult:
    keys = adapter.keys
    for _ in range(ACTION_TRIES):
        fields = await _read(adapter, job_id)
        origin = key_text((fields or {}).get("origin", b""))
        if fields is not None and not origin:
            return _no_origin(Action.CANCEL, job_id)
        shared_keys, shared_argv = _shared(adapter, job_id, actor)
        outcome = await run_script(
            adapter.scripts["cancel"],
            action=Action.CANCEL,
            job_id=job_id,
            keys=[
                *shared_keys,
                keys.job(job_id),
                keys.queue(origin),
                keys.scheduled(origin),
                keys.deferred(origin),
                keys.canceled(origin),
            ],
            args=[*shared_argv, origin, int(now_ms() // 1000), _copy(job_id, fields)],
            operator=adapter.operator,
            words=WORDS,
        )
        if outcome is not None:
            return outcome
    return changed_too_often(Action.CANCEL, job_id)


async def retry(adapter: RqAdapter, job_id: str, actor: str) -> ActionResult:
    keys = adapter.keys
    for _ in range(ACTION_TRIES):
        fields = await _read(adapter, job_id)
        origin = key_text((fields or {}).get("origin", b""))
        if fields is not None and not origin:
            return _no_origin(Action.RETRY, job_id)
        if fields is None:
            # A dangling failed id: the script refuses it (corrupt) or finds it gone.
            origin = await _failed_origin(adapter, job_id) or ""
        new_id = str(uuid.uuid4())
        shared_keys, shared_argv = _shared(adapter, job_id, actor)
        outcome = await run_script(
            adapter.scripts["retry"],
            action=Action.RETRY,
            job_id=job_id,
            keys=[
                *shared_keys,
                keys.job(job_id),
                keys.failed(origin),
                keys.job(new_id),
                keys.queue(origin),
                keys.queues,
            ],
            args=[
                *shared_argv,
                origin,
                new_id,
                rq_timestamp(datetime.now(tz=UTC)),
                _copy(job_id, fields),
            ],
            operator=adapter.operator,
            words=WORDS,
        )
        if outcome is not None:
            return outcome
    return changed_too_often(Action.RETRY, job_id)


async def discard(adapter: RqAdapter, job_id: str, actor: str) -> ActionResult:
    keys = adapter.keys
    for _ in range(ACTION_TRIES):
        fields = await _read(adapter, job_id)
        origin = key_text((fields or {}).get("origin", b""))
        expected = origin
        if not origin:
            # A dangling id (or a hash naming no queue): the registry that lists it decides.
            origin = await _failed_origin(adapter, job_id) or ""
        shared_keys, shared_argv = _shared(adapter, job_id, actor)
        outcome = await run_script(
            adapter.scripts["discard"],
            action=Action.DISCARD,
            job_id=job_id,
            keys=[*shared_keys, keys.job(job_id), keys.failed(origin)],
            args=[*shared_argv, expected, _copy(job_id, fields)],
            operator=adapter.operator,
            words=WORDS,
        )
        if outcome is not None:
            return outcome
    return changed_too_often(Action.DISCARD, job_id)


async def stop(adapter: RqAdapter, job_id: str, actor: str) -> ActionResult:
    keys = adapter.keys
    for _ in range(ACTION_TRIES):
        fields = await _read(adapter, job_id)
        worker = key_text((fields or {}).get("worker_name", b""))
        if fields is not None and fields.get("status") == b"started" and not worker:
            return result(
                Action.STOP,
                Outcome.WRONG_STATE,
                job_id,
                WORDS_SHARED["no worker"].format(id=job_id),
            )
        command = json.dumps({"command": "stop-job", "job_id": job_id})
        shared_keys, shared_argv = _shared(adapter, job_id, actor)
        outcome = await run_script(
            adapter.scripts["stop"],
            action=Action.STOP,
            job_id=job_id,
            keys=[*shared_keys, keys.job(job_id)],
            args=[*shared_argv, worker, keys.pubsub(worker), command],
            operator=adapter.operator,
            words=WORDS,
        )
        if outcome is not None:
            return outcome
    return changed_too_often(Action.STOP, job_id)
