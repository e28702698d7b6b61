"""One Celery task's page: its result meta and index row, the message holding it (held by a
worker in ``unacked``, or a bounded search of the waiting lists), and its lifecycle entries:
of its result (retried, discarded) and of a waiting message of it (canceled).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from jobbridge import offload
from jobbridge.adapters.celery import records
from jobbridge.adapters.celery.actions import WAITING
from jobbridge.adapters.celery.lookup import decode_held, find_waiting, read_meta
from jobbridge.adapters.fields import key_text
from jobbridge.adapters.values import is_wrongtype, ok
from jobbridge.model import JobDetail, JobRecord, JobStatus, LifecycleEntry

if TYPE_CHECKING:
    from jobbridge.adapters.celery.adapter import CeleryAdapter

#: Waiting messages a job page looks through for an id (from both ends of each queue).
DETAIL_SEARCH = 20_000


async def job_entry(adapter: CeleryAdapter, job_id: str, entry: str) -> JobDetail | None:
    """One waiting message of a task, by its digest; once it is gone, the task's page."""
    found = await _find_message(adapter, job_id, search_waiting=True, entry=entry)
    if found is None:
        return await job(adapter, job_id)
    row, payload, kind, raw = found
    found_entries, _ = await adapter.operator.entries(job_id, "", WAITING)
    lifecycles = tuple(e for e in found_entries if e is not None)
    return JobDetail(job=row, payload=payload, payload_kind=kind, lifecycle=lifecycles, raw=raw)


async def job(adapter: CeleryAdapter, job_id: str) -> JobDetail | None:
    """One task: its result meta and index row, the message holding it (``unacked``, or a
    bounded search of the waiting lists), and its lifecycle entries: of its result
    (retried, discarded) and of a waiting message of it (canceled)."""
    (ended, waiting), problem = await adapter.operator.entries(job_id, "", WAITING)
    detail = await _job(adapter, job_id, ended, waiting)
    return adapter.operator.with_problem(job_id, detail, problem)


async def _job(
    adapter: CeleryAdapter,
    job_id: str,
    ended: LifecycleEntry | None,
    waiting: LifecycleEntry | None,
) -> JobDetail | None:
    # The task's own entry (retried, discarded) before one of a canceled message of it.
    lifecycle = ended or waiting
    indexed = await adapter.index.get(job_id)
    meta = None
    if not job_id.startswith(records.MESSAGE_ID_PREFIX):
        meta = await read_meta(adapter, job_id)
    base_row = records.indexed_row(adapter.source, indexed) if indexed else None
    if base_row is None and lifecycle is not None:
        base_row = lifecycle.record
    # A task with a result is past the waiting lists: only one without is looked for there.
    message = await _find_message(adapter, job_id, search_waiting=meta is None)
    lifecycles = tuple(e for e in (ended, waiting) if e is not None)
    if message is not None:
        row, payload, kind, raw = message
        return JobDetail(job=row, payload=payload, payload_kind=kind, lifecycle=lifecycles, raw=raw)
    if meta is not None:
        raw_meta = meta.head
        row = records.meta_row(adapter.source, job_id, meta.meta, base_row)
        if row.status is JobStatus.RUNNING and job_id not in adapter.unacked.sorted.task_ids:
            row = adapter._mark_lost(replace(row, raw_status="STARTED (acknowledged)"))
        payload, kind = records.meta_payload(meta.meta)
        return JobDetail(
            job=row,
            payload=payload,
            payload_kind=kind,
            lifecycle=lifecycles,
            raw=key_text(raw_meta[:16384]),
        )
    if base_row is not None:
        note = (
            "Celery stored no result (ignore_result, or not yet); this summary comes "
            "from the task's events"
            if indexed is not None and indexed.from_events
            else "Celery's result has expired; jobbridge's index keeps this summary"
        )
        row = replace(base_row, extra={**base_row.extra, "result": note})
        return JobDetail(
            job=row,
            payload=base_row.payload_preview,
            payload_kind="index summary",
            lifecycle=lifecycles,
        )
    if lifecycle is not None and lifecycle.record is not None:
        return JobDetail(
            job=lifecycle.record,
            payload=lifecycle.record.payload_preview,
            payload_kind="copy kept when the action ran",
            lifecycle=lifecycles,
        )
    return None


async def _find_message(
    adapter: CeleryAdapter, job_id: str, *, search_waiting: bool, entry: str | None = None
) -> tuple[JobRecord, str, str, str] | None:
    """The message of a task a worker holds, else one waiting (a bounded search, when
    ``search_waiting``); with ``entry``, only the waiting message of that digest."""
    tag = adapter.unacked.tag_of(job_id) if entry is None else None
    if tag is not None:
        pipe = adapter.client.pipeline(transaction=False)
        pipe.hmget(adapter.keys.unacked, [tag])
        (reply,) = [ok(r) for r in await pipe.execute(raise_on_error=False)]
        raw = None if is_wrongtype(reply) else reply[0]
        if raw is not None:
            held = await offload.decode(decode_held, raw, inline_bytes=0)
            status = JobStatus.SCHEDULED if held.message.eta else JobStatus.RUNNING
            rows = await adapter.held_rows([tag], status)
            if rows:
                payload, kind = records.message_payload(held.message)
                return rows[0], payload, kind, key_text(raw[:16384])
    if not search_waiting:
        return None
    found = await find_waiting(adapter, job_id, limit=DETAIL_SEARCH, entry=entry)
    if found is None:
        return None
    queue, step, raw = found
    message = await offload.decode(records.decode_row, raw, inline_bytes=0)
    row = records.message_row(
        adapter.source,
        message,
        raw=raw,
        queue=queue,
        status=JobStatus.ENQUEUED,
        raw_status=f"waiting (priority step {step})",
    )
    payload, kind = records.message_payload(message)
    return row, payload, kind, key_text(raw[:16384])
