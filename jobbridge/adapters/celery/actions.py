"""Celery's actions: cancel, retry, discard, and revoke / terminate, one Lua script each
(``celery/lua/*.lua``, docs/celery.md §4.4). Python finds what a script acts on; the script
re-checks what lives in the broker and audits the outcome, refusals included.
"""

from __future__ import annotations

import json
import logging
import socket
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

import redis.exceptions

from jobbridge import offload, safejson
from jobbridge.adapters.action_loop import Plan, ScriptCall, act
from jobbridge.adapters.celery import control, records
from jobbridge.adapters.celery.index_summary import Bucket, IndexedTask
from jobbridge.adapters.celery.lookup import (
    STATUS_FIELD,
    decode_held,
    find_waiting,
    read_meta,
)
from jobbridge.adapters.celery.messages import (
    CeleryMessage,
    decode_message,
)
from jobbridge.adapters.celery.result_meta import READY_STATES, ResultMeta
from jobbridge.adapters.fields import MAX_NAME_CHARS, cap
from jobbridge.adapters.keyguard import Refusal, forged, text_problem, unknown
from jobbridge.adapters.values import is_wrongtype
from jobbridge.model import Action, ActionResult, JobRecord, JobStatus, Outcome

if TYPE_CHECKING:
    from jobbridge.adapters.celery.adapter import CeleryAdapter

log = logging.getLogger(__name__)

#: Celery's default result_expires (seconds): how long a REVOKED result jobbridge writes lasts.
RESULT_EXPIRES_S = 86_400

#: Celery's sentences for script replies (jobbridge.adapters.outcomes has the shared ones)
WORDS: dict[str | Outcome, str] = {
    "taken": "Task {id} is no longer waiting: a worker took it. Nothing was changed; revoke "
    "it, or stop it if it is running.",
    "not extended": "Task {id}'s arguments are not in its result: Celery keeps them only with "
    "result_extended = True. Enable it in the app's configuration to retry from jobbridge; "
    "nothing was changed.",
    "expired": "Task {id}'s result has expired in Celery's backend, so its arguments are gone; "
    "it cannot be retried (discard it instead).",
    "not failed": "Task {id}'s result is no longer FAILURE; nothing was changed.",
    "too large": "Task {id}'s result is over 1 MiB, so jobbridge does not read its arguments "
    "from it; it cannot be retried from jobbridge (discard it instead).",
    "not_found:cancel": "Task {id} is not waiting in any queue, no worker holds it and it has "
    "no result: unknown, or a worker took it a moment ago and has not stored anything yet.",
    "not json": "Task {id}'s arguments are not plain JSON values, so jobbridge cannot send "
    "them again safely; nothing was changed.",
    "finished": "Task {id} has already finished; there is nothing to revoke.",
    "revoked": "Task {id} is already revoked (Celery stored REVOKED); a worker that holds it "
    "for its eta discards it then. Nothing was sent.",
    "not running": "Task {id} is not running; only a running task can be stopped (terminated). "
    "Revoke it if a worker holds it.",
    "no listener": "No Celery worker listens for remote control, so nobody would hear the "
    "revoke of task {id}; nothing was sent.",
    "done:revoke": "Sent Celery's revoke for task {id} to {detail}; a worker that holds it "
    "discards it (REVOKED) instead of running it.",
    "not_found:revoke": "Task {id} not found.",
    "done:stop": "Sent Celery's revoke with terminate for task {id} to {detail}; the worker "
    "running it kills it and stores REVOKED.",
    "done:discard": "Hid task {id} from jobbridge's failed list. Only jobbridge's index forgets "
    "it: Celery's result backend still holds its FAILURE result (clients still read it) until "
    "Celery's result_expires.",
    "done:retry": "Retried job {id} as {detail} at priority 0 (its priority was never seen: "
    "Celery's result does not keep it).",
    Outcome.CORRUPT: "Task {id}'s result names no task or queue to send again; it cannot be "
    "retried (discard it instead).",
}


#: the reply of a retry sent at the priority jobbridge recorded ("done:retry" when it has none)
RETRIED_AT_SEEN = (
    "Retried job {id} as {detail} at priority {priority} (as jobbridge saw it queued)."
)


def lifecycle_copy(row: JobRecord) -> str:
    """The small summary a lifecycle entry keeps of a task."""
    fields = {
        "id": row.id,
        "name": row.name,
        "queue": row.queue,
        "raw_status": row.raw_status,
        "preview": row.payload_preview,
        "error": cap(row.last_error, 2000),
        "worker": row.worker,
    }
    return json.dumps({k: v for k, v in fields.items() if v}, ensure_ascii=False)


def lifecycle_record(source: str, stored: str, job_id: str, status: JobStatus) -> JobRecord:
    """The row a lifecycle copy describes (anyone can write it: every field checked)."""
    try:
        data: Any = safejson.loads(stored)
    except ValueError:
        data = None
    fields = data if isinstance(data, Mapping) else {}

    def field(name: str) -> str:
        value = fields.get(name)
        return cap(value, MAX_NAME_CHARS) or "" if isinstance(value, str) else ""

    return JobRecord(
        source=source,
        system="celery",
        id=job_id,
        name=field("name"),
        queue=field("queue"),
        status=status,
        raw_status=status.value,
        worker=field("worker") or None,
        last_error=field("error") or None,
        payload_preview=field("preview"),
        problem=None if fields else "the kept copy is not readable",
    )


#: the states a worker's revoke overwrites with REVOKED (Celery 5.7 ``control._revoke``): a
#: task no worker started and that has no final result yet
REVOCABLE_STATES = frozenset({"PENDING", "RECEIVED", "RETRY", "REJECTED"})


def revoked_meta_of(
    task_id: str,
    *,
    message: CeleryMessage | None = None,
    queue: str | None = None,
    meta: ResultMeta | None = None,
) -> bytes:
    """The REVOKED result jobbridge stores for a task it removed or revoked, with the
    ``result_extended`` fields a worker stores for a task it knows (name, args, kwargs,
    worker, retries, queue) taken from the message (or else the earlier meta), so that
    the canceled row names the task and its queue. Arguments that are not plain JSON values
    (a pickled body) are stored as null, the rest still written."""
    name = args = kwargs = None
    retries = 0
    parent = None
    if message is not None:
        name, args, kwargs = message.task, message.args, message.kwargs
        retries, parent = message.retries or 0, message.parent_id
    elif meta is not None:
        name, args, kwargs = meta.name, meta.args, meta.kwargs
        retries, parent = meta.retries or 0, meta.parent_id
        queue = queue or meta.queue
    common: dict[str, Any] = {
        "date_done": datetime.now(tz=UTC),
        # A name or queue cut for display is not Celery's: none rather than a wrong one.
        "name": name if name and len(name) <= MAX_NAME_CHARS else None,
        "queue": queue if queue and len(queue) <= MAX_NAME_CHARS else None,
        "parent_id": parent,
        "root_id": None,
        "extended": True,
        "retries": retries,
    }
    try:
        return control.revoked_meta(task_id, args=args, kwargs=kwargs, **common)
    except ValueError:
        return control.revoked_meta(task_id, args=None, kwargs=None, **common)


def _same_database(adapter: CeleryAdapter) -> bool:
    if adapter.results is adapter.client:
        return True
    a = adapter.results.connection_pool.connection_kwargs
    b = adapter.client.connection_pool.connection_kwargs
    keys = ("host", "port", "path", "db")
    return all(a.get(k) == b.get(k) for k in keys)


def _origin() -> str:
    return cap(f"jobbridge@{socket.gethostname()}", 200) or "jobbridge"


# ------------------------------------------------------------------------------------------
# Actions

#: the lifecycle entry kind of a cancel: it acts on one waiting message, not on the task's
#: result, so it never blocks a retry or discard of a failed run of the same id (nor they it)
WAITING = "waiting"


async def cancel(
    adapter: CeleryAdapter, job_id: str, actor: str, entry: str | None = None
) -> ActionResult:
    """Remove the exact waiting message (with ``entry``: that message only, whatever other
    messages carry the id); a REVOKED result and the revoke broadcast follow."""
    seen = False
    write_here, meta_bytes = True, b""

    async def plan() -> Plan:
        nonlocal seen, write_here, meta_bytes
        found = await find_waiting(adapter, job_id, entry=entry)
        verdict, list_key, raw, row = "", adapter.keys.step_list(adapter.queues[0], 0), b"", None
        message: CeleryMessage | None = None
        if found is None:
            # Whether a worker holds the task says nothing of one named message of it.
            taken = seen or (entry is None and await _taken(adapter, job_id))
            verdict = "taken" if taken else "gone"
        else:
            queue, step, raw = found
            seen = True
            list_key = adapter.keys.step_list(queue, step)
            message = decode_message(raw)
            row = records.message_row(
                adapter.source,
                message,
                raw=raw,
                queue=queue,
                status=JobStatus.ENQUEUED,
                raw_status="waiting",
            )
        write_here = _same_database(adapter)
        meta_bytes = b""
        # A message without a task id has no result and no id to revoke: only removed.
        has_id = not job_id.startswith(records.MESSAGE_ID_PREFIX)
        if row is not None and has_id:
            meta_bytes = revoked_meta_of(job_id, message=message, queue=row.queue)
        return ScriptCall(
            keys=[list_key, adapter.keys.task_meta(job_id)],
            args=[
                verdict,
                raw,
                "1" if write_here and meta_bytes else "0",
                meta_bytes,
                RESULT_EXPIRES_S,
                control.pidbox_channel(adapter.keys.global_keyprefix, adapter.db),
                control.revoke_envelope(job_id, terminate=False, ticket=str(uuid.uuid4()))
                if has_id
                else b"",
                lifecycle_copy(row) if row is not None else "",
            ],
            words=WORDS,
            entry=WAITING,
        )

    result = await act(adapter.scripts, adapter.operator, Action.CANCEL, job_id, actor, plan)
    if result.ok and not write_here and meta_bytes:
        meta_key = adapter.keys.task_meta(job_id)
        pipe = adapter.results.pipeline(transaction=True)
        pipe.set(meta_key, meta_bytes, ex=RESULT_EXPIRES_S)
        pipe.publish(meta_key, meta_bytes)
        await pipe.execute()
    return result


async def _taken(adapter: CeleryAdapter, job_id: str) -> bool:
    """Whether a task no waiting list holds was taken by a worker: held in ``unacked`` (sorted
    again now: the background sort may be a second old) or with a result stored."""
    if job_id in adapter.unacked.sorted.task_ids:
        return True
    await adapter.unacked.refresh(record=False)  # a request: the background records
    if job_id in adapter.unacked.sorted.task_ids:
        return True
    return not job_id.startswith(records.MESSAGE_ID_PREFIX) and (
        await read_meta(adapter, job_id) is not None
    )


async def seen_priority(adapter: CeleryAdapter, job_id: str) -> int | None:
    """The priority (0..9) jobbridge recorded for a task while a worker held its message
    (``UnackedView``); None when it never saw one off the default step, the record has
    expired, or the key holds anything else. A user that may not read the key (an ACL made
    for another ``jobbridge_prefix``) still retries, at priority 0."""
    key = adapter.unacked.priority_key(job_id)
    try:
        raw = await adapter.client.get(key)
    except redis.exceptions.NoPermissionError as exc:
        log.warning(
            "%s: the priority of task %r not read from %r (%s)", adapter.source, job_id, key, exc
        )
        return None
    except redis.exceptions.ResponseError as exc:
        if is_wrongtype(exc):
            return None
        raise
    if isinstance(raw, str):
        raw = raw.encode("ascii", "replace")
    if isinstance(raw, bytes) and len(raw) == 1 and raw.isdigit():
        return int(raw)
    return None


async def _indexed(adapter: CeleryAdapter, job_id: str) -> IndexedTask | None:
    """The task's index entry; None when a key of the index holds another type, which the
    script then refuses, naming the key."""
    try:
        return await adapter.index.get(job_id)
    except redis.exceptions.ResponseError as exc:
        # a pipeline's error: redis-py puts the command before Redis's words
        if "WRONGTYPE" not in str(exc):
            raise
        return None


async def queue_refusal(adapter: CeleryAdapter, queue: str) -> Refusal | None:
    """Why a retry may not push onto this stored queue; None for one of the source's queues:
    a name whose lists are its own (``CeleryKeys.queue_name_problem``), configured, or bound
    in kombu (found by discovery, or bound now as Celery binds a queue it declares: exchange
    and routing key named after it; one SISMEMBER)."""
    keys = adapter.keys
    problem = text_problem(queue) or keys.queue_name_problem(
        queue, adapter.operator.keys.jobbridge_prefix
    )
    if problem is not None:
        return forged("queue", queue, problem)
    if queue in adapter.known_queues:
        return None
    member = f"{queue}{keys.sep}{keys.sep}{queue}"
    try:
        if await adapter.client.sismember(keys.binding(queue), member):
            return None
    except redis.exceptions.ResponseError as exc:
        if not is_wrongtype(exc):
            raise
    return unknown("queue", queue, "queues (configured, or bound in kombu)")


async def retry(adapter: CeleryAdapter, job_id: str, actor: str) -> ActionResult:
    """Send a failed task again under a new id, from the arguments its extended result kept,
    at the priority jobbridge saw it held at (:func:`seen_priority`), else at 0."""

    async def plan() -> Plan:
        return await _retry_plan(adapter, job_id)

    # One try: the script's check of the failed index is the re-check.
    return await act(adapter.scripts, adapter.operator, Action.RETRY, job_id, actor, plan, tries=1)


async def _retry_plan(adapter: CeleryAdapter, job_id: str) -> Plan:
    indexed = await _indexed(adapter, job_id)
    read = await read_meta(adapter, job_id)
    meta = read.meta if read is not None else None
    new_id = str(uuid.uuid4())
    verdict, message, target = "", b"", adapter.keys.step_list(adapter.queues[0], 0)
    priority: int | None = None
    row = records.indexed_row(adapter.source, indexed) if indexed else None
    if indexed is None:
        verdict = "gone"
    elif meta is None:
        verdict = "expired"
    elif meta.status != "FAILURE":
        verdict = "not failed"
    elif read is not None and not read.whole:
        verdict = "too large"
    elif meta.name is None or meta.args is None or meta.kwargs is None:
        verdict = "not extended"
    else:
        queue = meta.queue or (row.queue if row else "") or "celery"
        refusal = await queue_refusal(adapter, queue)
        if refusal is not None:
            return refusal
        priority = await seen_priority(adapter, job_id)
        try:
            message = control.build_task_message(
                task=meta.name,
                task_id=new_id,
                args=list(meta.args),
                kwargs=dict(meta.kwargs),
                queue=queue,
                priority=priority,
                parent_id=job_id,
                root_id=(row.extra.get("root_id") if row else None) or job_id,
                origin=_origin(),
            )
        except ValueError:
            verdict = "not json"
        else:
            if control.validate_task_message(message, queue=queue) is not None:
                verdict, message = "corrupt", b""
            target = adapter.keys.priority_list(queue, priority or 0)
    words = WORDS
    if priority is not None:
        words = {**WORDS, "done:retry": RETRIED_AT_SEEN.replace("{priority}", str(priority))}
    return ScriptCall(
        keys=[adapter.index.key(Bucket.FAILED), adapter.index.rows, target],
        args=[verdict, message, new_id, lifecycle_copy(row) if row is not None else ""],
        words=words,
    )


async def discard(adapter: CeleryAdapter, job_id: str, actor: str) -> ActionResult:
    async def plan() -> Plan:
        indexed = await _indexed(adapter, job_id)
        row = records.indexed_row(adapter.source, indexed) if indexed else None
        return ScriptCall(
            keys=[adapter.index.key(Bucket.FAILED), adapter.index.rows],
            args=[lifecycle_copy(row) if row is not None else ""],
            words=WORDS,
        )

    return await act(
        adapter.scripts, adapter.operator, Action.DISCARD, job_id, actor, plan, tries=1
    )


async def revoke(
    adapter: CeleryAdapter, job_id: str, actor: str, *, terminate: bool
) -> ActionResult:
    """Celery's revoke broadcast (``terminate`` for a running task: the STOP action)."""
    action = Action.STOP if terminate else Action.REVOKE
    write_here, revoked = True, b""
    meta_key = adapter.keys.task_meta(job_id)

    async def plan() -> Plan:
        nonlocal write_here, revoked
        read = await read_meta(adapter, job_id)
        meta = read.meta if read is not None else None
        held = job_id in adapter.unacked.sorted.task_ids
        verdict = ""
        waiting: tuple[str, int, bytes] | None = None
        if meta is not None and meta.status == "REVOKED" and not terminate:
            verdict = "revoked"
        elif meta is not None and meta.status in READY_STATES:
            verdict = "finished"
        elif terminate and not (held or (meta is not None and meta.status == "STARTED")):
            verdict = "not running"
        elif not terminate and meta is None and not held:
            waiting = await find_waiting(adapter, job_id, limit=20_000)
            verdict = "" if waiting else "gone"
        if verdict == "" and (meta is None or meta.status in REVOCABLE_STATES):
            revoked = await _revoked_for(adapter, job_id, meta, waiting)
        envelope = control.revoke_envelope(job_id, terminate=terminate, ticket=str(uuid.uuid4()))
        write_here = _same_database(adapter)
        return ScriptCall(
            keys=[meta_key],
            args=[
                verdict,
                control.pidbox_channel(adapter.keys.global_keyprefix, adapter.db),
                envelope,
                action.value,
                revoked if write_here else b"",
                RESULT_EXPIRES_S,
            ],
            words=WORDS,
            script="revoke",
        )

    # One try: the script re-checks the stored state; a changed one is reported.
    result = await act(adapter.scripts, adapter.operator, action, job_id, actor, plan, tries=1)
    if result.ok and revoked and not write_here:
        await _store_revoked_elsewhere(adapter, meta_key, revoked)
    return result


async def _revoked_for(
    adapter: CeleryAdapter,
    job_id: str,
    meta: ResultMeta | None,
    waiting: tuple[str, int, bytes] | None,
) -> bytes:
    """The REVOKED meta a revoke stores: from the message a worker holds (one HMGET by its
    delivery tag), else the waiting one found, else the task's earlier (RETRY) meta."""
    tag = adapter.unacked.tag_of(job_id)
    if tag is not None:
        (raw,) = cast("list[bytes | None]", await adapter.client.hmget(adapter.keys.unacked, [tag]))
        if isinstance(raw, bytes):
            entry = await offload.decode(decode_held, raw, inline_bytes=64 * 1024)
            queue = entry.routing_key or entry.message.routing_key
            return revoked_meta_of(job_id, message=entry.message, queue=queue)
    if waiting is not None:
        queue, _, raw = waiting
        return revoked_meta_of(job_id, message=decode_message(raw), queue=queue)
    return revoked_meta_of(job_id, meta=meta)


async def _store_revoked_elsewhere(adapter: CeleryAdapter, key: str, revoked: bytes) -> None:
    """Store a revoke's REVOKED meta in a result backend on another Redis, as the script does
    on the broker's: only over a state a worker's revoke overwrites (re-checked under WATCH;
    a write in between, such as the worker's own REVOKED, wins)."""
    async with adapter.results.pipeline(transaction=True) as pipe:
        try:
            await pipe.watch(key)
            head = cast("bytes", await pipe.getrange(key, 0, 255))
            found = STATUS_FIELD.search(head or b"")
            if found and found.group(1).decode("ascii") not in REVOCABLE_STATES:
                return
            pipe.multi()  # type: ignore[no-untyped-call]
            pipe.set(key, revoked, ex=RESULT_EXPIRES_S)
            pipe.publish(key, revoked)
            await pipe.execute()
        except redis.exceptions.WatchError:
            return
