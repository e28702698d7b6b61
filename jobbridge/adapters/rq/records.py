"""RQ's job hashes as the shared model's rows, job pages and lifecycle copies.

Pure functions, no Redis (docs/rq.md). A job is where Redis holds it (the queue or registry
member the adapter found), never what its hash says: ``Found`` carries that place into the row.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace

from jobbridge import safejson
from jobbridge.adapters import times
from jobbridge.adapters.fields import (
    MAX_NAME_CHARS,
    cap,
    text,
)
from jobbridge.adapters.payloads import DETAIL_CHARS, PREVIEW_CHARS
from jobbridge.adapters.rq.calls import CallSummary, clip, summarize_call
from jobbridge.adapters.rq.hashes import (
    BINARY_FIELDS,
    LARGE_FIELDS,
    SMALL_FIELDS,
    WHERE_STATUS,
    Fields,
    Found,
    JobHash,
    Where,
    epoch_datetime,
    kilobytes,
    map_status,
    retry_intervals,
    shown_bad,
)
from jobbridge.model import (
    Action,
    JobDetail,
    JobRecord,
    JobStatus,
    LifecycleEntry,
)

# ------------------------------------------------------------------------------------------
# Rows


def status_of(fields: Fields, found: Found) -> tuple[JobStatus, str]:
    """A row's status: its hash's word when RQ's, else the place it was found.

    An id in an intermediate list is reserved by a worker that has not started it (its
    hash still says ``queued``). A ``scheduled`` job whose hash records a previous attempt
    (``started_at`` / ``ended_at`` set) is a retry waiting for its interval: RQ schedules
    an exception-triggered retry that way (verified with rq 3.0 workers), and a first-time
    scheduled job has neither. A ``deferred`` job waits on its dependencies: blocked.
    """
    raw = fields.raw("status")
    status, word = map_status(raw)
    if raw is not None and status is JobStatus.UNKNOWN:
        fields.problems.append(f"its status {shown_bad(raw)} is not one of RQ's")
    if status is JobStatus.UNKNOWN:
        status, word = WHERE_STATUS[found.where]
        if raw is None:
            fields.problems.append("it has no status")
    if found.where is Where.INTERMEDIATE and word in ("queued", "created", ""):
        return JobStatus.RUNNING, "intermediate"
    if word == "deferred":
        # waiting on the jobs it depends on, not on a time: blocked, as RQ's deferred
        # registry holds it until they finish
        return JobStatus.BLOCKED, word
    if status is JobStatus.SCHEDULED and word == "scheduled" and _attempted(fields):
        return JobStatus.RETRYING, word
    return status, word


def _attempted(fields: Fields) -> bool:
    return fields.raw("started_at") is not None or fields.raw("ended_at") is not None


def _ever_ran(fields: Fields) -> bool:
    """Whether a worker has taken the job: RQ's requeue clears its times but keeps
    ``worker_name``."""
    return _attempted(fields) or fields.raw("worker_name") is not None


def actions_for(
    status: JobStatus, word: str, where: Where, *, has_data: bool, exists: bool = True
) -> tuple[Action, ...]:
    """What an operator may do with this row: waiting jobs can be canceled, failed or
    stopped ones retried (when their call is there to run again) or discarded, and a
    started job in a ``wip`` registry asked to stop."""
    if not exists:
        return ()
    if word in ("queued", "scheduled", "deferred") and where is not Where.INTERMEDIATE:
        return (Action.CANCEL,)
    if word in ("failed", "stopped"):
        return (Action.RETRY, Action.DISCARD) if has_data else (Action.DISCARD,)
    if status is JobStatus.RUNNING and word == "started" and where is Where.WIP:
        return (Action.STOP,)
    return ()


def _name(fields: Fields, call: CallSummary | None) -> str:
    """The function's dotted name; RQ's ``description`` (the call string) up to its first
    parenthesis when the data could not give it."""
    if call is not None and call.name:
        return call.name
    description = fields.text("description", 4 * MAX_NAME_CHARS) or ""
    head = description.split("(", 1)[0].strip()
    return cap(head, MAX_NAME_CHARS) or ""


def _queue(fields: Fields, found: Found) -> str:
    """The queue that holds the id; a hash naming another queue is flagged."""
    origin = fields.text("origin")
    if found.where is Where.HASH:
        return origin or ""
    if origin is not None and origin != found.queue:
        fields.problems.append(
            f"it is in queue {found.queue}'s {_place_words(found.where)} but its hash names "
            f"queue {origin}"
        )
    return found.queue


def _place_words(where: Where) -> str:
    if where is Where.QUEUE:
        return "list"
    if where is Where.INTERMEDIATE:
        return "intermediate list"
    return f"{where.value} registry"


def _data_problem(job: JobHash, call: CallSummary | None) -> str | None:
    size = job.unread("data")
    if size is not None:
        return f"its data is {kilobytes(size)}, too large to decode here"
    if job.sizes.get("data", 0) == 0 and "data" not in job.fields:
        return "it has no data: a worker would drop it without running it"
    if call is not None and not call.name:
        return f"its data could not be decoded ({call.problem or 'no function name'})"
    return None


#: statuses of a job that has not run its current attempt yet
WAITING_STATUSES = frozenset(
    {JobStatus.ENQUEUED, JobStatus.SCHEDULED, JobStatus.RETRYING, JobStatus.BLOCKED}
)


def _extra(fields: Fields, found: Found, status: JobStatus) -> dict[str, str]:
    extra: dict[str, str] = {}
    retries_left = fields.int("retries_left")
    if retries_left is not None:
        # retries_left itself is the row's own field
        intervals = retry_intervals(fields.raw("retry_intervals"))
        if intervals is not None:
            extra["retry intervals"] = _seconds(intervals)
        if retries_left >= 0 and status in WAITING_STATUSES:
            extra["attempts left"] = (
                f"{retries_left + 1}: this run, then {retries_left} "
                f"retr{'y' if retries_left == 1 else 'ies'} on failure (RQ's Retry)"
            )
    if found.execution_id:
        extra["execution"] = cap(found.execution_id, MAX_NAME_CHARS) or ""
    worker = fields.text("worker_name")
    if worker and status in WAITING_STATUSES:
        # waiting again (a retry): the worker of its last run, not one it is on now; a
        # running or finished job names its worker in the row's own field, once
        extra["last worker"] = worker
    heartbeat = fields.time("last_heartbeat")
    if heartbeat is not None and status is JobStatus.RUNNING:
        extra["last heartbeat"] = heartbeat.strftime("%Y-%m-%d %H:%M:%SZ")
    group = fields.text("group_id")
    if group:
        extra["group"] = group
    rate_limit = fields.text("rate_limit_key")
    if rate_limit:
        extra["rate limit"] = rate_limit
    timeout = fields.int("timeout")
    if timeout is not None:
        extra["timeout"] = "none" if timeout < 0 else f"{timeout}s"
    return extra


#: dependency ids shown on a row at most
_MAX_DEPENDENCIES_SHOWN = 10


def _seconds(intervals: list[int]) -> str:
    return ", ".join(str(v) for v in intervals) + " s"


def _dependencies(fields: Fields) -> tuple[str, ...]:
    """The ids a deferred job waits on: ``dependency_ids`` (JSON), else ``dependency_id``;
    the first ten, then "… N more"."""
    raw = fields.raw("dependency_ids")
    ids: list[str] = []
    if raw is not None:
        try:
            loaded = safejson.loads(raw)
        except safejson.JSONError:
            loaded = None
        if isinstance(loaded, list):
            ids = [cap(str(i), MAX_NAME_CHARS) or "" for i in loaded[:_MAX_DEPENDENCIES_SHOWN]]
            if len(loaded) > _MAX_DEPENDENCIES_SHOWN:
                ids.append(f"… {len(loaded) - _MAX_DEPENDENCIES_SHOWN} more")
        else:
            fields.problems.append("dependency_ids is not a JSON list")
    if not ids:
        single = fields.text("dependency_id")
        if single:
            ids = [single]
    return tuple(ids)


def _attempt(fields: Fields) -> int | None:
    """The attempt a job is on, where RQ counts it: a job that returned ``Retry`` has run
    ``number_of_retries`` + 1 times. Exception-triggered retries only count down
    ``retries_left`` from a maximum RQ does not store."""
    retries = fields.int("number_of_retries")
    return None if retries is None or retries < 0 else retries + 1


def _retries(fields: Fields) -> tuple[int | None, int | None]:
    """(retries left, the Retry policy's maximum where it is known): RQ stores ``max`` as
    the first ``retries_left`` and counts it down after each failed run, so the maximum is
    known while no worker has taken the job."""
    left = fields.int("retries_left")
    if left is None or left < 0:
        return None, None
    return left, (None if _ever_ran(fields) else left)


def to_job(
    job: JobHash,
    found: Found,
    *,
    source: str,
    job_id: str,
    call: CallSummary | None = None,
    last_error: str | None = None,
    error_problem: str | None = None,
    status: tuple[JobStatus, str] | None = None,
    copy: bool = False,
) -> JobRecord:
    """One job hash (or its absence) as a row.

    Args:
        job: the hash as read.
        found: where the id is held; the row keeps that queue.
        source: the configured source name.
        job_id: the id (already through ``key_text``).
        call: the decoded ``data``, when it was read.
        last_error: the latest error text (from the results stream, or ``exc_info``).
        error_problem: why that error text could not be decoded.
        status: force this status (a lifecycle copy), instead of the hash's.
        copy: the hash is the copy of its small fields a lifecycle entry keeps: no data is
            expected, and no action applies.
    """
    if job.wrong_type:
        return _flagged(found, source, job_id, "its key holds another type than a hash")
    if not job.exists:
        row = _flagged(found, source, job_id, "its job hash no longer exists")
        return replace(row, last_error=last_error)
    fields = Fields(job)
    shown_status, word = status or status_of(fields, found)
    queue = _queue(fields, found)
    problem = None if copy else _data_problem(job, call)
    if problem:
        fields.problems.append(problem)
    if error_problem:
        fields.problems.append(error_problem)
    row = _record(fields, found, source, job_id, call, last_error, shown_status, word, queue)
    return replace(row, actions=()) if copy else row


def _record(
    fields: Fields,
    found: Found,
    source: str,
    job_id: str,
    call: CallSummary | None,
    last_error: str | None,
    status: JobStatus,
    word: str,
    queue: str,
) -> JobRecord:
    ended = fields.time("ended_at")
    worker = fields.text("worker_name")
    scheduled_for = epoch_datetime(found.score) if found.where is Where.SCHEDULED else None
    if found.where is Where.SCHEDULED and scheduled_for is None:
        fields.problems.append("its score in the scheduled registry is not a time")
    # a call whose function could not be read previews worse than RQ's description
    preview = call.preview if call is not None and call.name else ""
    if not preview:
        preview = fields.text("description", PREVIEW_CHARS) or ""
    extra = _extra(fields, found, status)
    if call is not None and call.name and call.problem:
        extra["payload"] = f"partly decoded: {call.problem}"
    started = fields.time("started_at")
    enqueued = fields.time("enqueued_at")
    fields.time("created_at")  # checked, so a bad one is named
    attempt = _attempt(fields)
    retries_left, retries_max = _retries(fields)
    waits_for = _dependencies(fields) if status is JobStatus.BLOCKED else ()
    actions = actions_for(status, word, found.where, has_data=_has_data(fields.job))
    return JobRecord(
        source=source,
        system="rq",
        id=job_id,
        name=_name(fields, call),
        queue=cap(queue, MAX_NAME_CHARS) or "",
        status=status,
        raw_status=word,
        enqueued_at=enqueued,
        scheduled_for=scheduled_for,
        started_at=started,
        finished_at=ended if status in (JobStatus.COMPLETED, JobStatus.FAILED) else None,
        attempt=attempt,
        retries_left=retries_left,
        retries_max=retries_max,
        waits_for=waits_for,
        last_error=last_error,
        principal_id=call.principal_id if call is not None else None,
        correlation_id=call.correlation_id if call is not None else None,
        # the worker running it, or the one that ran it (RQ keeps ``worker_name``)
        worker=None if status in WAITING_STATUSES else worker,
        payload_preview=preview,
        actions=actions,
        problem="; ".join(fields.problems) if fields.problems else None,
        extra=extra,
    )


def _has_data(job: JobHash) -> bool:
    return "data" in job.fields or job.sizes.get("data", 0) > 0


def _flagged(found: Found, source: str, job_id: str, problem: str) -> JobRecord:
    """A row for an id whose hash cannot be read: what its place says, and why."""
    status, word = WHERE_STATUS[found.where]
    if found.where is Where.DEFERRED:
        status = JobStatus.BLOCKED
    return JobRecord(
        source=source,
        system="rq",
        id=job_id,
        name="",
        queue=cap(found.queue, MAX_NAME_CHARS) or "",
        status=status,
        raw_status=word or found.where.value,
        scheduled_for=epoch_datetime(found.score) if found.where is Where.SCHEDULED else None,
        problem=problem,
        extra={"execution": found.execution_id} if found.execution_id else {},
    )


def with_deadline(job: JobRecord, deadline: float | None, now_s: float) -> JobRecord:
    """Mark a running row whose ``wip`` score (its heartbeat deadline) has passed: its
    worker stopped heartbeating, and only RQ's maintenance will fail or retry it."""
    moment = epoch_datetime(deadline)
    if job.status is not JobStatus.RUNNING or deadline is None:
        return job
    if moment is None:
        return times.with_problem(job, "its score in the wip registry is not a time")
    if deadline > now_s:
        return job
    return replace(job, overdue_since=moment)


# ------------------------------------------------------------------------------------------
# Registry members


#: RQ 2 execution ids are ``uuid4().hex``
_EXECUTION_ID = re.compile(r"[0-9a-f]{32}")


def split_wip_member(member: str) -> tuple[str, str | None]:
    """A ``wip`` member as (job id, execution id).

    RQ 2.0+ writes ``<job_id>:<execution_id>`` (a 32-hex uuid); 1.x wrote the plain job id,
    which could itself hold ``:``. A member whose part after its last colon is not an
    execution id is taken whole.
    """
    head, sep, tail = member.rpartition(":")
    if sep and head and _EXECUTION_ID.fullmatch(tail):
        return head, tail
    return member, None


# ------------------------------------------------------------------------------------------
# Job page


def raw_text(job: JobHash, limit: int = DETAIL_CHARS) -> str:
    """The hash's fields as ``name: value`` lines, capped: large fields by their size."""
    lines = []
    for name in SMALL_FIELDS:
        value = job.fields.get(name)
        if value is None:
            continue
        shown = f"<{len(value)} bytes>" if name in BINARY_FIELDS else cap(text(value), 4000)
        lines.append(f"{name}: {shown}")
    for name in LARGE_FIELDS:
        size = job.sizes.get(name, 0)
        if size:
            lines.append(f"{name}: <{size} bytes>")
    return clip("\n".join(lines), limit)


def detail_payload(
    call_text: str,
    meta_text: str,
    result_text: str,
    legacy_text: str,
) -> str:
    """The job page's payload: the call, then meta, then the latest result, capped."""
    parts = [call_text]
    if meta_text:
        parts.append("meta: " + meta_text)
    if result_text:
        parts.append(result_text)
    if legacy_text:
        parts.append(legacy_text)
    return clip("\n\n".join(p for p in parts if p), DETAIL_CHARS)


def to_detail(
    row: JobRecord,
    job: JobHash,
    payload: str,
    kind: str,
    lifecycle: LifecycleEntry | None,
) -> JobDetail:
    return JobDetail(
        job=row,
        payload=payload,
        payload_kind=kind,
        lifecycle=(lifecycle,) if lifecycle is not None else (),
        raw=raw_text(job),
    )


# ------------------------------------------------------------------------------------------
# Lifecycle copies


def lifecycle_hash(stored: str) -> JobHash | None:
    """The copy of a job hash jobbridge keeps in a lifecycle entry (a JSON object of its
    small fields, or a flat ``[name, value, …]`` list); None when it is neither."""
    try:
        loaded = safejson.loads(stored)
    except safejson.JSONError:
        return None
    if isinstance(loaded, list) and len(loaded) % 2 == 0:
        loaded = dict(zip(loaded[0::2], loaded[1::2], strict=True))
    if not isinstance(loaded, dict):
        return None
    fields: dict[str, bytes] = {}
    for name, value in loaded.items():
        if not isinstance(name, str):
            continue
        shown = value if isinstance(value, str) else json.dumps(value)
        fields[name] = shown.encode("utf-8", errors="surrogateescape")
    sizes = {name: len(fields[name]) for name in LARGE_FIELDS if name in fields}
    return JobHash(exists=True, fields=fields, sizes=sizes)


def lifecycle_record(source: str, stored: str, job_id: str, status: JobStatus) -> JobRecord:
    """The row a lifecycle entry's copy describes, with the lifecycle status."""
    job = lifecycle_hash(stored)
    found = Found(Where.HASH, "")
    if job is None:
        row = _flagged(found, source, job_id, "the kept copy of its hash is not readable")
        return replace(row, status=status, raw_status=status.value)
    call = None
    if "data" in job.fields:
        call = summarize_call(job.fields["data"])
    return to_job(
        job,
        found,
        source=source,
        job_id=job_id,
        call=call,
        status=(status, status.value),
        copy=True,
    )
