"""One Autumn job's page: its live record (where its id sits: the processing, delayed or
blocked set, else a queue), its dead-record, or a history entry, with its lifecycle entries.

Also the marks a live row gets from the score Redis keeps it at (claim deadline, due time),
which list pages share.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from jobbridge import offload
from jobbridge.adapters.autumn import records
from jobbridge.adapters.autumn.actions import DEAD
from jobbridge.adapters.autumn.history import STATUS as HISTORY_STATUS
from jobbridge.adapters.autumn.history import as_identity
from jobbridge.adapters.autumn.keys import entry_digest
from jobbridge.adapters.fields import ms_to_datetime, now_ms, score_ms, text
from jobbridge.adapters.payloads import DETAIL_CHARS
from jobbridge.adapters.values import MAX_VALUE_BYTES, Unread, is_wrongtype, ok
from jobbridge.model import JobDetail, JobRecord, JobStatus, LifecycleEntry, ListName

if TYPE_CHECKING:
    from jobbridge.adapters.autumn.adapter import AutumnAdapter

#: the lifecycle entries of a live id: of the job itself (cancel), of a dead entry (retry,
#: discard)
_KINDS = ("", DEAD)


async def job(adapter: AutumnAdapter, job_id: str) -> JobDetail | None:
    if entry_digest(job_id) is None:
        found = await _live_job(adapter, job_id)
        if found is not None:
            return found
    return await _history_job(adapter, job_id)


async def _live_job(adapter: AutumnAdapter, job_id: str) -> JobDetail | None:
    """A job by the keys its id names: its dead-record, its record, its lifecycle entry
    (one of another type is a problem on the page, not an unavailable Redis)."""
    keys = adapter.keys
    pipe = adapter.client.pipeline(transaction=False)
    pipe.zscore(keys.processing, job_id)
    pipe.zscore(keys.delayed, job_id)
    pipe.zscore(keys.blocked, job_id)
    adapter.operator.queue_entries(pipe, job_id, _KINDS)
    replies = [ok(r) for r in await pipe.execute(raise_on_error=False)]
    processing, delayed, blocked = (None if is_wrongtype(r) else r for r in replies[:3])
    # What was done to the live job (cancel) and to a dead entry of its id (retry,
    # discard) are kept apart: a dead entry naming a live job's id never relabels it.
    (of_job, of_dead), problem = adapter.operator.take_entries(job_id, _KINDS, replies[3:])
    detail = await _live_detail(adapter, job_id, (processing, delayed, blocked), of_job, of_dead)
    return adapter.operator.with_problem(job_id, detail, problem)


async def _live_detail(
    adapter: AutumnAdapter,
    job_id: str,
    scores: tuple[float | None, float | None, float | None],
    of_job: LifecycleEntry | None,
    of_dead: LifecycleEntry | None,
) -> JobDetail | None:
    keys = adapter.keys
    dead, body = await adapter.read_values(
        [keys.dead_record(job_id), keys.record(job_id)], budget=MAX_VALUE_BYTES
    )
    if dead is not None:
        failed = (JobStatus.FAILED, records.RAW_DEAD, None)
        return await _stored_detail(adapter, job_id, dead, failed, of_dead)
    if body is not None:
        place = live_place(*scores)
        return await _stored_detail(adapter, job_id, body, place, of_job)
    for lifecycle in (of_job, of_dead):
        if lifecycle is not None and lifecycle.record is not None:
            preview = lifecycle.record.payload_preview
            return _detail(lifecycle.record, None, lifecycle, preview, "json (preview)")
    return None


async def _stored_detail(
    adapter: AutumnAdapter,
    job_id: str,
    value: bytes | Unread,
    place: tuple[JobStatus, str, float | None],
    lifecycle: LifecycleEntry | None,
) -> JobDetail:
    status, raw_status, score = place
    if isinstance(value, Unread):
        row = adapter.unread_row(job_id, status, raw_status, value)
        return JobDetail(
            job=row,
            payload="",
            payload_kind="not read",
            lifecycle=(lifecycle,) if lifecycle is not None else (),
        )
    at = None if score is None else score_ms(score)
    due = None if status is JobStatus.RUNNING else at
    row, payload, kind = await offload.decode(
        records.detail, value, adapter.source, job_id, status, raw_status, due
    )
    if status is JobStatus.RUNNING:
        row = with_deadline(row, at, now_ms())
    elif score is not None:
        row = with_score_problem(row, at, raw_status)
    return _detail(row, value, lifecycle, payload, kind)


async def _history_job(adapter: AutumnAdapter, job_id: str) -> JobDetail | None:
    """A completed or failed entry by its entry id or the id it records."""
    found = await adapter.histories.find(job_id)
    if found is None:
        return None
    entry, identity, problem = found
    status, raw_status = HISTORY_STATUS[entry.which]
    row, payload, kind = await offload.decode(
        records.detail, entry.raw, adapter.source, "", status, raw_status, None, False
    )
    marked = as_identity(row, identity, problem, entry.which is ListName.FAILED)
    return _detail(marked, entry.raw, None, payload, kind)


def live_place(
    processing: float | None, delayed: float | None, blocked: float | None
) -> tuple[JobStatus, str, float | None]:
    """Where a live record's id sits: status, raw status and its score there."""
    if processing is not None:
        return JobStatus.RUNNING, records.RAW_PROCESSING, processing
    if delayed is not None:
        return JobStatus.SCHEDULED, records.RAW_DELAYED, delayed
    if blocked is not None:
        return JobStatus.BLOCKED, records.RAW_BLOCKED, blocked
    # Not in any zset: a queue list holds it (finding where would cost O(queue depth)).
    return JobStatus.ENQUEUED, records.RAW_QUEUE, None


def with_deadline(job: JobRecord, deadline: int | None, now: int) -> JobRecord:
    """Mark a running job whose claim deadline (its processing score) has passed."""
    if deadline is None or ms_to_datetime(deadline) is None:
        return with_score_problem(job, None, "processing")
    if deadline > now:
        return job
    return replace(job, overdue_since=ms_to_datetime(deadline))


def with_score_problem(job: JobRecord, score: int | None, where: str) -> JobRecord:
    """Flag a row whose sorted-set score is not a time (±inf, NaN, beyond year 9999)."""
    if score is not None and ms_to_datetime(score) is not None:
        return job
    problem = f"its score in {where} is not a time"
    return replace(job, problem=f"{job.problem}; {problem}" if job.problem else problem)


def _detail(
    job: JobRecord,
    stored: bytes | None,
    lifecycle: LifecycleEntry | None,
    payload: str,
    kind: str,
) -> JobDetail:
    return JobDetail(
        job=job,
        payload=payload,
        payload_kind=kind,
        lifecycle=(lifecycle,) if lifecycle is not None else (),
        raw=(text(stored[:DETAIL_CHARS]) or "") if stored is not None else "",
    )
