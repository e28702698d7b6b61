"""RQ's job hashes, worker hashes and cron schedulers mapped onto the shared model.

Pure functions, no Redis (docs/rq.md §2-§4). Everything here reads hostile input: a
hash may be partial, any field may be missing, of the wrong type, not UTF-8 or absurd, and
each such field becomes words in the row's ``problem``, never an exception, so one bad hash
never breaks a page. Payloads are decoded by :mod:`jobbridge.adapters.payloads`, which never
executes a pickle.

Identity: a job is where Redis holds it (the queue or registry member the adapter found),
never what its hash says; ``Found`` carries that place into the row.
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, NamedTuple

from jobbridge import safejson
from jobbridge.adapters import payloads, times
from jobbridge.adapters.fields import (
    MAX_ERROR_CHARS,
    MAX_NAME_CHARS,
    cap,
    correlation_of,
    key_text,
    principal_of,
    text,
)
from jobbridge.adapters.payloads import DETAIL_CHARS, PREVIEW_CHARS
from jobbridge.model import (
    Action,
    JobDetail,
    JobRecord,
    JobStatus,
    LifecycleEntry,
    Schedule,
    Worker,
)

# ------------------------------------------------------------------------------------------
# Timestamps and numbers

#: how RQ writes every timestamp (rq/utils.py ``utcformat``), always UTC
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
#: what RQ's parser also accepts (jobs written by old versions)
TIMESTAMP_FORMAT_SECONDS = "%Y-%m-%dT%H:%M:%SZ"
#: longer text is not a timestamp RQ wrote, whatever it holds
_MAX_TIMESTAMP_CHARS = 40
_MAX_INT_CHARS = 24


def parse_timestamp(raw: bytes | str | None) -> datetime | None:
    """An RQ timestamp as an aware UTC datetime; None when missing or ``''`` (RQ's unset).

    Raises:
        ValueError: the value is not a timestamp in RQ's format.
    """
    if raw is None:
        return None
    value = raw.decode("ascii") if isinstance(raw, bytes) else raw
    if not value:
        return None
    if len(value) > _MAX_TIMESTAMP_CHARS:
        raise ValueError("too long")
    try:
        parsed = datetime.strptime(value, TIMESTAMP_FORMAT)
    except ValueError:
        parsed = datetime.strptime(value, TIMESTAMP_FORMAT_SECONDS)
    return parsed.replace(tzinfo=UTC)


def parse_int(raw: bytes | str | None) -> int | None:
    """An integer field RQ wrote with ``str(int)``; None when missing or ``''``.

    Raises:
        ValueError: the value is not a (reasonably sized) integer.
    """
    if raw is None:
        return None
    value = raw.decode("ascii") if isinstance(raw, bytes) else raw
    if not value:
        return None
    if len(value) > _MAX_INT_CHARS:
        raise ValueError("too long")
    return int(value)


def epoch_datetime(value: float | bytes | str | None) -> datetime | None:
    """Epoch seconds (a score, or a float RQ wrote as text) as an aware UTC datetime; None
    for missing, non-numbers, ±inf, NaN and years past 9999."""
    return times.epoch_s(value)


# ------------------------------------------------------------------------------------------
# Statuses

#: RQ's job statuses (rq/job.py ``JobStatus``, RQ 3's included) in the shared vocabulary
STATUSES: Mapping[str, JobStatus] = {
    # saved but not enqueued: RQ's own fallback for a hash without a status
    "created": JobStatus.ENQUEUED,
    "queued": JobStatus.ENQUEUED,
    # RQ 3: dependencies met, being moved onto the queue
    "ready_to_enqueue": JobStatus.ENQUEUED,
    "deferred": JobStatus.SCHEDULED,
    "scheduled": JobStatus.SCHEDULED,
    "started": JobStatus.RUNNING,
    "finished": JobStatus.COMPLETED,
    "failed": JobStatus.FAILED,
    # ended by a stop-job command; sits in the failed registry beside failed jobs
    "stopped": JobStatus.FAILED,
    "canceled": JobStatus.CANCELED,
    # RQ 3: held back by its rate limit, outside any queue until a slot frees
    "rate_limited": JobStatus.BLOCKED,
}


def map_status(raw: bytes | str | None) -> tuple[JobStatus, str]:
    """RQ's status word -> (shared status, the word as text); UNKNOWN for anything else
    (the word capped), and (UNKNOWN, "") when there is none."""
    word = text(raw) or ""
    status = STATUSES.get(word)
    if status is None:
        return JobStatus.UNKNOWN, cap(word, MAX_NAME_CHARS) or ""
    return status, word


class Where(enum.StrEnum):
    """Which of RQ's keys holds a job id."""

    QUEUE = "queue"
    #: moved off the queue by a worker that has not started it yet
    INTERMEDIATE = "intermediate"
    SCHEDULED = "scheduled"
    DEFERRED = "deferred"
    WIP = "wip"
    FINISHED = "finished"
    FAILED = "failed"
    CANCELED = "canceled"
    READY = "ready"
    #: found by its hash alone (a job page), in none of the keys above
    HASH = "hash"


#: the status a job has where it is found, when its hash cannot say
_WHERE_STATUS: Mapping[Where, tuple[JobStatus, str]] = {
    Where.QUEUE: (JobStatus.ENQUEUED, "queued"),
    Where.INTERMEDIATE: (JobStatus.RUNNING, "intermediate"),
    Where.SCHEDULED: (JobStatus.SCHEDULED, "scheduled"),
    Where.DEFERRED: (JobStatus.SCHEDULED, "deferred"),
    Where.WIP: (JobStatus.RUNNING, "started"),
    Where.FINISHED: (JobStatus.COMPLETED, "finished"),
    Where.FAILED: (JobStatus.FAILED, "failed"),
    Where.CANCELED: (JobStatus.CANCELED, "canceled"),
    Where.READY: (JobStatus.ENQUEUED, "ready_to_enqueue"),
    Where.HASH: (JobStatus.UNKNOWN, ""),
}


@dataclass(frozen=True, slots=True)
class Found:
    """Where the adapter found a job id: the key's kind, its queue, the member's score."""

    where: Where
    queue: str
    #: the sorted-set score (epoch seconds), None for lists and the hash alone
    score: float | None = None
    #: the execution of a ``wip`` member (RQ 2.0+ ``<job_id>:<execution_id>``)
    execution_id: str | None = None


# ------------------------------------------------------------------------------------------
# The job hash as read

#: fields RQ keeps small (timestamps, words, numbers, the call string with each argument's
#: repr cut to 75 characters, dependency ids, the legacy traceback): read with one HMGET per
#: job, and capped as text
SMALL_FIELDS = (
    "status",
    "origin",
    "created_at",
    "enqueued_at",
    "started_at",
    "ended_at",
    "last_heartbeat",
    "worker_name",
    "timeout",
    "retries_left",
    "retry_intervals",
    "number_of_retries",
    "repeats_left",
    "dependency_id",
    "result_ttl",
    "failure_ttl",
    "ttl",
    "group_id",
    "rate_limit_key",
    "enqueue_at_front",
    "allow_dependency_failures",
    "description",
    "dependency_ids",
    "exc_info",
)
#: small fields that hold bytes, not text (zlib of a traceback)
BINARY_FIELDS = frozenset({"exc_info"})
#: fields as large as the job's arguments, metadata and return value: their size is asked
#: first (HSTRLEN) and each is read only within a cap
LARGE_FIELDS = ("data", "meta", "result")


@dataclass(frozen=True, slots=True)
class JobHash:
    """A job hash as far as it was read."""

    #: whether the key existed
    exists: bool
    #: the fields read: name -> bytes (missing fields are absent)
    fields: Mapping[str, bytes] = field(default_factory=dict)
    #: HSTRLEN of the large fields (0: missing or empty)
    sizes: Mapping[str, int] = field(default_factory=dict)
    #: the key holds another type than a hash
    wrong_type: bool = False

    def unread(self, name: str) -> int | None:
        """The size of a field that exists but was not read (too large), else None."""
        size = self.sizes.get(name, 0)
        if size > 0 and name not in self.fields:
            return size
        return None


def kilobytes(size: int) -> str:
    if size >= 1_048_576:
        return f"{size / 1_048_576:.1f} MB"
    return f"{max(1, round(size / 1024))} KB"


class _Fields:
    """Typed reads of a hash's fields that turn each bad one into words, not exceptions."""

    def __init__(self, job: JobHash) -> None:
        self.job = job
        self.problems: list[str] = []

    def raw(self, name: str) -> bytes | None:
        value = self.job.fields.get(name)
        return value if isinstance(value, bytes) and value else None

    def text(self, name: str, limit: int = MAX_NAME_CHARS) -> str | None:
        return cap(text(self.raw(name)), limit)

    def time(self, name: str) -> datetime | None:
        try:
            return parse_timestamp(self.raw(name))
        except ValueError:
            self.problems.append(f"{name} is not an RQ timestamp ({_shown(self.raw(name))})")
            return None

    def int(self, name: str) -> int | None:
        try:
            return parse_int(self.raw(name))
        except ValueError:
            self.problems.append(f"{name} is not an integer ({_shown(self.raw(name))})")
            return None


#: RQ's Retry intervals jobbridge accepts as stored: at most this many, each at most ten
#: years (a worker adds it to now(): a larger one overflows its datetime and crashes it)
MAX_RETRY_INTERVALS = 100
MAX_RETRY_INTERVAL_S = 10 * 365 * 86_400


def retry_intervals(raw: bytes | None) -> list[int] | None:
    """RQ's ``retry_intervals`` field (``json.dumps`` of the Retry's interval list, seconds;
    RQ stores it for any Retry, ``[0]`` when none was given); None when absent or not a list
    of whole seconds a worker could use."""
    if not raw or len(raw) > 4096:
        return None
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(value, list) or not 0 < len(value) <= MAX_RETRY_INTERVALS:
        return None
    if not all(type(v) is int and 0 <= v <= MAX_RETRY_INTERVAL_S for v in value):
        return None
    return value


def _seconds(intervals: list[int]) -> str:
    return ", ".join(str(v) for v in intervals) + " s"


def cap_name(value: str | None) -> str | None:
    """A name (worker, status word) read from Redis, capped."""
    return cap(value, MAX_NAME_CHARS)


def _shown(raw: bytes | None, limit: int = 40) -> str:
    """A bad value, short, for a problem sentence."""
    return repr(cap(text(raw) or "", limit))


# ------------------------------------------------------------------------------------------
# Payloads (each entry point takes bytes and returns plain values: jobbridge.offload may run
# it in its decoding process)


class CallSummary(NamedTuple):
    """What a row shows of a job's ``data``: the call, never executed."""

    name: str
    preview: str
    principal_id: str | None
    correlation_id: str | None
    #: what could not be decoded (None when all was)
    problem: str | None
    #: "pickle", "json", … as payloads found it
    serializer: str


#: bytes a row inflates a ``data`` field or an error text to, at most: a row shows 160
#: characters of the call and MAX_ERROR_CHARS of the error, and decoding costs what the
#: inflated bytes weigh, not what is stored (a 138-byte zlib stream can inflate to 4 MiB),
#: so this keeps each row's decoding to about a millisecond on the event loop
ROW_INFLATED_BYTES = 64 * 1024


def summarize_call(data: bytes) -> CallSummary:
    """The function name, a one-line preview and the identity fields of a ``data`` field."""
    return _summary(payloads.decode_call(data, ROW_INFLATED_BYTES))


def _summary(call: payloads.DecodedCall) -> CallSummary:
    kwargs = call.kwargs if isinstance(call.kwargs, Mapping) else None
    name = call.func_name if isinstance(call.func_name, str) else ""
    return CallSummary(
        name=cap(name, MAX_NAME_CHARS) or "",
        preview=payloads.call_preview(call, PREVIEW_CHARS),
        principal_id=principal_of(kwargs),
        correlation_id=correlation_of(kwargs),
        problem=cap(call.problem, MAX_NAME_CHARS) if call.problem else None,
        serializer=str(call.serializer or ""),
    )


def detail_call(data: bytes) -> tuple[CallSummary, str, str]:
    """A ``data`` field decoded once for the job page: the row's summary, the call as
    text, and its serializer."""
    call = payloads.decode_call(data)
    return _summary(call), *_call_text(call)


def _call_text(call: payloads.DecodedCall) -> tuple[str, str]:
    lines = [f"function: {call.func_name or '(unknown)'}"]
    if call.args is not None:
        lines.append("args: " + _jsonish_text(call.args))
    if call.kwargs is not None:
        lines.append("kwargs: " + _jsonish_text(call.kwargs))
    if call.problem:
        lines.append(f"[not fully decoded: {call.problem}]")
    return _cut("\n".join(lines), DETAIL_CHARS), str(call.serializer or "")


def describe_value(raw: bytes) -> str:
    """A serialized value (``meta``, a return value) as text; never unpickled."""
    value, serializer, problem = payloads.decode_value(raw)
    shown = _jsonish_text(value) if problem is None or value is not None else ""
    if problem:
        shown += f"{' ' if shown else ''}[{serializer or 'value'} not fully decoded: {problem}]"
    return _cut(shown, DETAIL_CHARS)


#: how deep and how wide a decoded value is walked to make it JSON-ready
_JSONISH_DEPTH = 32
_JSONISH_ITEMS = 10_000


def jsonish(value: Any, depth: int = 0) -> Any:
    """A decoded value made of plain JSON types: tuples and sets become lists, bytes and
    anything else their short repr, keys text; bounded in depth and width."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if depth >= _JSONISH_DEPTH:
        return "…"
    if isinstance(value, Mapping):
        items = list(value.items())[:_JSONISH_ITEMS]
        return {_key_text(k): jsonish(v, depth + 1) for k, v in items}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonish(v, depth + 1) for v in list(value)[:_JSONISH_ITEMS]]
    return cap(repr(value), MAX_NAME_CHARS)


def _key_text(key: object) -> str:
    return key if isinstance(key, str) else cap(repr(key), MAX_NAME_CHARS) or ""


def _jsonish_text(value: Any) -> str:
    shown, _ = payloads.json_detail(jsonish(value))
    return shown or "null"


def _cut(shown: str, limit: int) -> str:
    return shown if len(shown) <= limit else shown[:limit] + "…"


#: RQ's result types (rq/results.py ``Result.Type``)
RESULT_TYPES: Mapping[str, str] = {
    "1": "successful",
    "2": "failed",
    "3": "stopped",
    "4": "retried",
    "5": "max retries exceeded",
}


def result_error(entry: Mapping[bytes, bytes] | None) -> tuple[str | None, str | None]:
    """(error text, problem) of a results-stream entry: its ``exc_string``, capped."""
    if not entry:
        return None, None
    raw = entry.get(b"exc_string")
    if not raw:
        return None, None
    shown, problem = payloads.decode_exc_string(raw, ROW_INFLATED_BYTES)
    return cap(headline_first(shown), MAX_ERROR_CHARS), _error_problem(problem)


def legacy_error(raw: bytes | None) -> tuple[str | None, str | None]:
    """(error text, problem) of a hash's legacy ``exc_info`` (zlib of UTF-8), capped;
    ``zlib('')``, which RQ's requeue writes, is no error."""
    if not raw:
        return None, None
    shown, problem = payloads.decode_exc_info(raw, ROW_INFLATED_BYTES)
    return cap(headline_first(shown or None), MAX_ERROR_CHARS), _error_problem(problem)


_TRACEBACK_HEAD = "Traceback (most recent call last):"


def headline_first(error: str | None) -> str | None:
    """A Python traceback with its exception line (``ValueError: kaput``) put first.

    Lists show the start of an error, and every traceback starts with the same line; the
    exception line, which tells failures apart, is its last unindented line.
    """
    if error is None or not error.startswith(_TRACEBACK_HEAD):
        return error
    lines = [line for line in error.rstrip().splitlines()[-50:] if line.strip()]
    last = next((line for line in reversed(lines) if not line[:1].isspace()), None)
    if last is None or last == _TRACEBACK_HEAD:
        return error
    return f"{last}\n\n{error}"


def _error_problem(problem: str | None) -> str | None:
    return f"its error text could not be decoded: {problem}" if problem else None


def describe_result(
    entry_id: bytes | None, entry: Mapping[bytes, bytes] | None, value_text: str = ""
) -> str:
    """The latest results-stream entry as text for the job page: its type, time, worker,
    and the return value (``value_text``: :func:`describe_stream_value` of it) or the
    exception text."""
    if not entry:
        return ""
    kind = RESULT_TYPES.get(text(entry.get(b"type")) or "", "of unknown type")
    lines = [f"latest result: {kind}"]
    when = _stream_time(entry_id)
    if when is not None:
        lines[0] += f" at {when.strftime('%Y-%m-%d %H:%M:%S.%fZ')}"
    worker = cap(text(entry.get(b"worker_name")), MAX_NAME_CHARS)
    if worker:
        lines.append(f"worker: {worker}")
    if value_text:
        lines.append("return value: " + value_text)
    error, problem = result_error(entry)
    if error:
        lines.append(error)
    if problem:
        lines.append(f"[{problem}]")
    return "\n".join(lines)


def describe_stream_value(value: bytes) -> str:
    """A results-stream ``return_value``: base64 of the serializer's bytes."""
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return "[not base64: it cannot be decoded]"
    return describe_value(raw)


def _stream_time(entry_id: bytes | None) -> datetime | None:
    """The creation time a stream entry id (``<ms>-<seq>``) carries."""
    if not entry_id:
        return None
    head = entry_id.split(b"-", 1)[0]
    if not head.isdigit() or len(head) > 15:
        return None
    return epoch_datetime(int(head) / 1000)


# ------------------------------------------------------------------------------------------
# Rows


def status_of(fields: _Fields, found: Found) -> tuple[JobStatus, str]:
    """A row's status: its hash's word when RQ's, else the place it was found.

    An id in an intermediate list is reserved by a worker that has not started it (its
    hash still says ``queued``). A ``scheduled`` job whose hash records a previous attempt
    (``started_at`` / ``ended_at`` set) is a retry waiting for its interval: RQ schedules
    an exception-triggered retry that way (verified with rq 3.0 workers), and a first-time
    scheduled job has neither.
    """
    raw = fields.raw("status")
    status, word = map_status(raw)
    if raw is not None and status is JobStatus.UNKNOWN:
        fields.problems.append(f"its status {_shown(raw)} is not one of RQ's")
    if status is JobStatus.UNKNOWN:
        status, word = _WHERE_STATUS[found.where]
        if raw is None:
            fields.problems.append("it has no status")
    if found.where is Where.INTERMEDIATE and word in ("queued", "created", ""):
        return JobStatus.RUNNING, "intermediate"
    if status is JobStatus.SCHEDULED and word == "scheduled" and _attempted(fields):
        return JobStatus.RETRYING, word
    return status, word


def _attempted(fields: _Fields) -> bool:
    return fields.raw("started_at") is not None or fields.raw("ended_at") is not None


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


def _name(fields: _Fields, call: CallSummary | None) -> str:
    """The function's dotted name; RQ's ``description`` (the call string) up to its first
    parenthesis when the data could not give it."""
    if call is not None and call.name:
        return call.name
    description = fields.text("description", 4 * MAX_NAME_CHARS) or ""
    head = description.split("(", 1)[0].strip()
    return cap(head, MAX_NAME_CHARS) or ""


def _queue(fields: _Fields, found: Found) -> str:
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
WAITING_STATUSES = frozenset({JobStatus.ENQUEUED, JobStatus.SCHEDULED, JobStatus.RETRYING})


def _extra(fields: _Fields, found: Found, status: JobStatus) -> dict[str, str]:
    extra: dict[str, str] = {}
    retries_left = fields.int("retries_left")
    if retries_left is not None:
        extra["retries left"] = str(retries_left)
        intervals = retry_intervals(fields.raw("retry_intervals"))
        if intervals is not None:
            extra["retry intervals"] = _seconds(intervals)
        if retries_left >= 0 and status in WAITING_STATUSES:
            extra["attempts left"] = (
                f"{retries_left + 1}: this run, then {retries_left} "
                f"retr{'y' if retries_left == 1 else 'ies'} on failure (RQ's Retry)"
            )
    if found.where is Where.DEFERRED or status is JobStatus.SCHEDULED:
        dependencies = _dependencies(fields)
        if dependencies:
            extra["waits on"] = dependencies
    if found.execution_id:
        extra["execution"] = cap(found.execution_id, MAX_NAME_CHARS) or ""
    worker = fields.text("worker_name")
    if worker and status is not JobStatus.RUNNING:
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


def _dependencies(fields: _Fields) -> str:
    """The ids a deferred job waits on: ``dependency_ids`` (JSON), else ``dependency_id``."""
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
    return ", ".join(ids)


def _attempt(fields: _Fields) -> int | None:
    """The attempt a job is on, where RQ counts it: a job that returned ``Retry`` has run
    ``number_of_retries`` + 1 times. Exception-triggered retries only count down
    ``retries_left`` from a maximum RQ does not store."""
    retries = fields.int("number_of_retries")
    return None if retries is None or retries < 0 else retries + 1


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
    fields = _Fields(job)
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
    fields: _Fields,
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
        last_error=last_error,
        principal_id=call.principal_id if call is not None else None,
        correlation_id=call.correlation_id if call is not None else None,
        worker=worker if status is JobStatus.RUNNING else None,
        payload_preview=preview,
        actions=actions,
        problem="; ".join(fields.problems) if fields.problems else None,
        extra=extra,
    )


def _has_data(job: JobHash) -> bool:
    return "data" in job.fields or job.sizes.get("data", 0) > 0


def _flagged(found: Found, source: str, job_id: str, problem: str) -> JobRecord:
    """A row for an id whose hash cannot be read: what its place says, and why."""
    status, word = _WHERE_STATUS[found.where]
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
    return _cut("\n".join(lines), limit)


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
    return _cut("\n\n".join(p for p in parts if p), DETAIL_CHARS)


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


# ------------------------------------------------------------------------------------------
# Workers

#: fields of a worker hash read (rq/worker/base.py)
WORKER_FIELDS = (
    "state",
    "queues",
    "current_job",
    "birth",
    "last_heartbeat",
    "successful_job_count",
    "failed_job_count",
    "hostname",
    "pid",
    "death",
)


def to_worker(
    name: str,
    values: Iterable[bytes | None],
    execution_member: bytes | None = None,
) -> Worker:
    """One worker's hash (HMGET of :data:`WORKER_FIELDS`) as a Worker.

    A worker whose hash expired (still listed: it died without unregistering) or that
    recorded its ``death`` is "dead". RQ 3 keeps no ``current_job`` field; its current
    job is a member of the worker's executions set (``execution_member``).
    """
    raw = dict(zip(WORKER_FIELDS, values, strict=True))
    shown_name = cap(name, MAX_NAME_CHARS) or ""
    if all(v is None for v in raw.values()):
        return Worker(name=shown_name, state="dead", problem="its worker hash no longer exists")
    fields = _Fields(JobHash(exists=True, fields={k: v for k, v in raw.items() if v is not None}))
    state = fields.text("state") or "?"
    if fields.raw("death") is not None:
        state = "dead"
    current = fields.text("current_job")
    if current is None and execution_member:
        current = cap(split_wip_member(key_text(execution_member))[0], MAX_NAME_CHARS)
    queues = tuple(
        cap(q, MAX_NAME_CHARS) or "" for q in (fields.text("queues", 10_000) or "").split(",") if q
    )[:100]
    return Worker(
        name=shown_name,
        state=state,
        queues=queues,
        current_job=current,
        birth=fields.time("birth"),
        last_heartbeat=fields.time("last_heartbeat"),
        successful=_count(fields, "successful_job_count"),
        failed=_count(fields, "failed_job_count"),
        hostname=fields.text("hostname"),
        pid=_count(fields, "pid"),
        problem="; ".join(fields.problems) if fields.problems else None,
    )


def _count(fields: _Fields, name: str) -> int | None:
    value = fields.int(name)
    if value is not None and value < 0:
        fields.problems.append(f"{name} is negative")
        return None
    return value


# ------------------------------------------------------------------------------------------
# Cron


def cron_schedules(raw: bytes, limit: int) -> tuple[list[Schedule], str | None]:
    """The cron jobs one cron scheduler's hash lists (its ``cron_jobs`` JSON), at most
    ``limit``; and a problem in words when the field is not what RQ writes."""
    try:
        loaded = safejson.loads(raw)
    except safejson.JSONError as exc:
        return [], f"its cron_jobs field is not JSON ({cap(str(exc), 80)})"
    if not isinstance(loaded, list):
        return [], "its cron_jobs field is not a JSON list"
    out = []
    bad = 0
    for item in loaded[:limit]:
        schedule = _cron_schedule(item)
        if schedule is None:
            bad += 1
        else:
            out.append(schedule)
    return out, f"{bad} of its cron jobs could not be read" if bad else None


def _cron_schedule(item: object) -> Schedule | None:
    if not isinstance(item, dict):
        return None
    name = item.get("name") or item.get("func_name")
    if not isinstance(name, str) or not name:
        return None
    cron, interval, queue = item.get("cron"), item.get("interval"), item.get("queue_name")
    if isinstance(cron, str) and cron:
        every = f"cron {cap(cron, MAX_NAME_CHARS)}"
    elif isinstance(interval, int) and not isinstance(interval, bool) and interval > 0:
        every = f"every {interval}s"
    else:
        return None
    if isinstance(queue, str) and queue:
        every += f" on queue {cap(queue, MAX_NAME_CHARS)}"
    next_run = None
    if isinstance(item.get("next_enqueue_time"), str):
        try:
            next_run = parse_timestamp(item["next_enqueue_time"])
        except (ValueError, UnicodeEncodeError):
            next_run = None
    return Schedule(name=cap(name, MAX_NAME_CHARS) or "", schedule=every, next_run_at=next_run)
