"""Celery's messages, held messages and indexed results mapped onto the shared rows.

Pure functions over what :mod:`jobbridge.adapters.celery.messages` decoded and what the
result index holds; the adapter reads Redis and calls these.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from jobbridge import offload
from jobbridge.adapters import payloads, times
from jobbridge.adapters.celery.messages import CeleryMessage, decode_message, preview
from jobbridge.adapters.celery.result_meta import ResultMeta
from jobbridge.adapters.fields import cap
from jobbridge.model import Action, JobRecord, JobStatus

if TYPE_CHECKING:
    from jobbridge.adapters.celery.index_summary import IndexedTask

#: the id of a waiting message that names no task id: its bytes' digest, so that cancel can
#: still find exactly it (a poison message can be removed like any other)
MESSAGE_ID_PREFIX = "message:"

#: Celery's state word -> the shared status
STATUS: Mapping[str, JobStatus] = {
    "PENDING": JobStatus.ENQUEUED,
    "RECEIVED": JobStatus.RUNNING,
    "STARTED": JobStatus.RUNNING,
    "RETRY": JobStatus.RETRYING,
    "SUCCESS": JobStatus.COMPLETED,
    "FAILURE": JobStatus.FAILED,
    "REVOKED": JobStatus.CANCELED,
}
#: what an operator may do to a task in each shared status
ACTIONS: Mapping[JobStatus, tuple[Action, ...]] = {
    JobStatus.ENQUEUED: (Action.CANCEL,),
    JobStatus.SCHEDULED: (Action.REVOKE,),
    JobStatus.RETRYING: (Action.REVOKE,),
    JobStatus.RUNNING: (Action.STOP, Action.REVOKE),
    JobStatus.FAILED: (Action.RETRY, Action.DISCARD),
}


def message_id(raw: bytes) -> str:
    """The id a message without a usable task id is shown and acted on under."""
    return MESSAGE_ID_PREFIX + offload.digest_now(raw).hex()


def decode_row(raw: bytes) -> CeleryMessage:
    """``decode_message`` for the decoding process (a module-level function of the package)."""
    return decode_message(raw)


def _extra(message: CeleryMessage, **more: str | None) -> dict[str, str]:
    fields: dict[str, str | None] = {
        "priority": None if message.priority is None else str(message.priority),
        "root_id": message.root_id,
        # a parent_id equal to the task's own id tells nothing (seen on retried tasks)
        "parent_id": message.parent_id if message.parent_id != message.task_id else None,
        "group": message.group,
        "origin": message.origin,
        "expires": message.expires.isoformat() if message.expires else None,
        "redelivered": "yes" if message.redelivered else None,
        "chain": " → ".join(message.chain) or None,
        **more,
    }
    return {k: cap(v, 300) or "" for k, v in fields.items() if v}


def message_row(
    source: str,
    message: CeleryMessage,
    *,
    raw: bytes,
    queue: str,
    status: JobStatus,
    raw_status: str,
    held_since: datetime | None = None,
    extra: Mapping[str, str | None] | None = None,
) -> JobRecord:
    """A row for a message waiting in a queue list or held in ``unacked``. A waiting message
    of a task names its entry (its digest): two messages may carry one task id, and each
    row's page and cancel must reach its own. ``held_since``: when it was held, or for a
    waiting one when its task was sent (its enqueue time)."""
    task_id = message.task_id or message_id(raw)
    entry = message_id(raw) if message.task_id and status is JobStatus.ENQUEUED else None
    retries = message.retries
    if status is JobStatus.SCHEDULED and retries:
        status = JobStatus.RETRYING
    return JobRecord(
        source=source,
        system="celery",
        id=task_id,
        name=message.task or "",
        queue=queue,
        status=status,
        raw_status=raw_status,
        enqueued_at=held_since,
        scheduled_for=message.eta,
        attempt=None if retries is None else retries + 1,
        principal_id=message.principal,
        correlation_id=message.correlation,
        payload_preview=preview(message),
        # Revoke and stop name a task id; a message known only by its digest has none to name.
        actions=ACTIONS.get(status, ()) if message.task_id or status is JobStatus.ENQUEUED else (),
        problem=message.problem,
        extra=_extra(message, **(extra or {})),
        entry=entry,
    )


def indexed_row(source: str, task: IndexedTask) -> JobRecord:
    """A row for a task of the result index."""
    status = STATUS.get(task.state, JobStatus.UNKNOWN)
    finished = (
        task.at if status in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELED) else None
    )
    started = task.at if status is JobStatus.RUNNING else None
    problem = task.problem
    if status is JobStatus.UNKNOWN and problem is None:
        problem = f"state {task.state[:40]!r} is not one of Celery's"
    extra: dict[str, str] = {}
    if task.root_id:
        extra["root_id"] = task.root_id
    if task.parent_id and task.parent_id != task.task_id:
        extra["parent_id"] = task.parent_id
    if task.from_events:
        extra["known from"] = "Celery's task events (no result was stored when indexed)"
    if status is JobStatus.FAILED and task.from_events:
        extra["retry"] = "needs Celery's result (with result_extended): none was stored"
    elif status is JobStatus.FAILED and not task.extended:
        extra["retry"] = "needs result_extended (the arguments are not in the result)"
    return JobRecord(
        source=source,
        system="celery",
        id=task.task_id,
        name=task.name or "",
        queue=task.queue or "",
        status=status,
        raw_status=task.state,
        started_at=started,
        finished_at=finished,
        attempt=None if task.retries is None else task.retries + 1,
        last_error=task.error,
        worker=task.worker,
        payload_preview=task.args_preview,
        actions=ACTIONS.get(status, ()),
        problem=problem,
        extra=extra,
        correlation_id=task.correlation_id,
        principal_id=task.principal_id,
    )


def message_payload(message: CeleryMessage) -> tuple[str, str]:
    """The job page's payload text of a message: its decoded arguments, or Celery's reprs."""
    if message.args is not None and message.kwargs is not None:
        text, kind = payloads.json_detail({"args": message.args, "kwargs": message.kwargs})
        serializer = message.serializer or "unknown"
        # "json (json)" says one thing twice: the kind once when the two agree
        return text, serializer if serializer == kind else f"{serializer} ({kind})"
    shown = "\n".join(
        f"{label}: {value}"
        for label, value in (("argsrepr", message.argsrepr), ("kwargsrepr", message.kwargsrepr))
        if value is not None
    )
    return shown, "Celery's repr of the arguments" if shown else "not decoded"


def meta_payload(meta: ResultMeta) -> tuple[str, str]:
    """The job page's payload text of a result meta: arguments when kept, and the result.
    The traceback is the row's ``last_error`` (:func:`meta_row`), shown once, not here."""
    parts: list[str] = []
    if meta.args is not None or meta.kwargs is not None:
        text, _ = payloads.json_detail({"args": meta.args, "kwargs": meta.kwargs})
        parts.append(f"arguments:\n{text}")
    if meta.result is not None:
        parts.append(f"result:\n{meta.result}")
    kind = meta.serializer or "unknown"
    return "\n\n".join(parts), kind


def meta_row(source: str, task_id: str, meta: ResultMeta, base: JobRecord | None) -> JobRecord:
    """A row from a result meta read on the job page, over the index's row when there is one."""
    status = STATUS.get(meta.status or "", JobStatus.UNKNOWN)
    finished = (
        meta.date_done
        if status in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELED)
        else None
    )
    fields: dict[str, Any] = {
        "source": source,
        "system": "celery",
        "id": task_id,
        "name": meta.name or (base.name if base else ""),
        "queue": meta.queue or (base.queue if base else ""),
        "status": status,
        "raw_status": meta.status or "?",
        "finished_at": finished or (base.finished_at if base else None),
        "started_at": base.started_at if base else None,
        "attempt": None if meta.retries is None else meta.retries + 1,
        # the whole traceback (capped when read) under "Last error"; its last line is the
        # exception, which the lists show as the summary
        "last_error": meta.traceback or meta.error,
        "worker": meta.worker or (base.worker if base else None),
        "principal_id": meta.principal,
        "correlation_id": meta.correlation,
        "payload_preview": base.payload_preview if base else "",
        "actions": ACTIONS.get(status, ()),
        "problem": meta.problem,
        "extra": dict(base.extra) if base else {},
    }
    row = JobRecord(**fields)
    if meta.task_id is not None and meta.task_id != task_id:
        # The index flags the same meta on its row: the job page says it too.
        row = times.with_problem(row, "its task_id names another task")
    return row


#: the note on a held task already revoked (jobbridge.web's row shows it with a badge)
REVOKED_PENDING_NOTE = (
    "revoked: Celery stored REVOKED, and a worker keeps a revoked eta task until its eta and "
    "discards it then instead of running it (a worker started since the revoke, without "
    "--statedb, has not heard it); nothing to do here"
)


def revoked_pending(row: JobRecord) -> JobRecord:
    """A held (eta) task with a REVOKED result: still listed where the worker keeps it, said
    to be revoked, with no action (revoking again or cancelling would change nothing)."""
    return replace(
        row,
        raw_status="revoked, held until its eta",
        actions=(),
        extra={**row.extra, "revoked": REVOKED_PENDING_NOTE},
    )
