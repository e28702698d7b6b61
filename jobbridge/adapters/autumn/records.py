"""Decoding Autumn's JSON job records (its ``RedisJobRecord``, serde-encoded) into the shared
model.

Pure functions, no Redis. A record that Autumn's serde would reject still becomes a row,
flagged with what is wrong, so one bad record never breaks a page.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, NamedTuple

from jobbridge import safejson
from jobbridge.adapters.autumn.keys import DEFAULT_QUEUE
from jobbridge.adapters.fields import (
    MAX_ERROR_CHARS,
    MAX_NAME_CHARS,
    cap,
    correlation_of,
    ms_to_datetime,
    principal_of,
)
from jobbridge.adapters.payloads import PREVIEW_CHARS, json_detail, json_preview
from jobbridge.model import Action, JobRecord, JobStatus

#: u32 / u64 fields serde requires as JSON integers
REQUIRED_INT_FIELDS = ("attempt", "max_attempts", "initial_backoff_ms")
OPTIONAL_INT_FIELDS = ("enqueued_at_ms", "started_at_ms", "finished_at_ms", "claimed_at_ms")
OPTIONAL_STR_FIELDS = ("claimed_by", "last_error", "traceparent", "tracestate")
#: fields Rust skips when unset: present means a string (never null)
SKIPPED_STR_FIELDS = ("unique_key", "unique_window", "concurrency_key")
U32_MAX = 2**32 - 1
U64_MAX = 2**64 - 1
#: every field of Autumn's record struct: serde rejects a record naming one of them twice
RECORD_FIELDS = frozenset(
    (
        *("id", "name", "queue", "payload", "concurrency_limit"),
        *REQUIRED_INT_FIELDS,
        *OPTIONAL_INT_FIELDS,
        *OPTIONAL_STR_FIELDS,
        *SKIPPED_STR_FIELDS,
    )
)

#: raw_status words: where in Autumn's layout the job was found
RAW_QUEUE = "queue"
RAW_DELAYED = "delayed"
RAW_PROCESSING = "processing"
RAW_BLOCKED = "blocked"
RAW_COMPLETED = "completed"
RAW_DEAD = "dead"


def _load_record(raw: bytes | str) -> tuple[safejson.Loaded, list[str]]:
    """Decoded JSON, and the record fields its outermost object names more than once
    (Python keeps the last of duplicate keys where serde refuses the record)."""
    loaded = safejson.loads_checked(raw, top_keys=True)
    return loaded, [key for key in loaded.repeated if key in RECORD_FIELDS]


def dumps_compact(value: Any) -> str:
    """JSON as Autumn writes it: no whitespace, key order kept, UTF-8 text."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


@dataclass(frozen=True, slots=True)
class Decoded:
    """A record as far as it could be read."""

    #: the JSON object, or None when the text is not a JSON object
    data: dict[str, Any] | None
    #: what serde would reject, in words ("attempt is not an integer")
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return self.data is not None and not self.problems


#: the record's times, Unix ms
_TIME_FIELDS = ("enqueued_at_ms", "started_at_ms", "finished_at_ms", "claimed_at_ms", "run_at_ms")


def _is_uint(value: object, limit: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= limit


def _field_problems(data: dict[str, Any]) -> list[str]:
    problems = [
        f"{name} is missing or not a string"
        for name in ("id", "name")
        if not isinstance(data.get(name), str)
    ]
    if "queue" in data and not isinstance(data["queue"], str):
        problems.append("queue is not a string")
    if "payload" not in data:
        problems.append("payload is missing")
    for name in REQUIRED_INT_FIELDS:
        limit = U64_MAX if name.endswith("_ms") else U32_MAX
        if not _is_uint(data.get(name), limit):
            problems.append(f"{name} is missing or not an unsigned integer")
    for name in OPTIONAL_INT_FIELDS:
        value = data.get(name)
        if value is not None and not _is_uint(value, U64_MAX):
            problems.append(f"{name} is not an unsigned integer")
    for name in OPTIONAL_STR_FIELDS:
        value = data.get(name)
        if value is not None and not isinstance(value, str):
            problems.append(f"{name} is not a string")
    for name in SKIPPED_STR_FIELDS:
        if name in data and not isinstance(data[name], str):
            problems.append(f"{name} is present but not a string")
    if "concurrency_limit" in data and not _is_uint(data["concurrency_limit"], U32_MAX):
        problems.append("concurrency_limit is not an unsigned integer")
    return problems


def decode(raw: bytes | str | None) -> Decoded:
    """Decode one stored record and list what Autumn's serde would reject."""
    if raw is None:
        return Decoded(None, ("record missing",))
    try:
        loaded, repeats = _load_record(raw)
    except safejson.JSONError as exc:
        return Decoded(None, (f"record is not valid JSON: {exc}",))
    data = loaded.value
    if not isinstance(data, dict):
        return Decoded(None, ("record is not a JSON object",))
    problems = [f"{name} appears more than once" for name in repeats]
    problems += loaded.problems
    return Decoded(data, tuple(problems + _field_problems(data)))


def is_malformed_dead_entry(data: dict[str, Any] | None) -> bool:
    """The ``{"id","error","raw_payload"}`` entries Autumn pushes to dead for bad records."""
    return data is not None and "error" in data and "name" not in data


def queue_of(data: dict[str, Any] | None) -> str:
    """The record's normalised queue name ("default" when missing or unreadable)."""
    if data is None:
        return DEFAULT_QUEUE
    value = data.get("queue")
    if not isinstance(value, str) or not value.strip():
        return DEFAULT_QUEUE
    return value.strip()


def unique_lock_suffix(data: dict[str, Any] | None) -> tuple[str, str] | None:
    """(name, unique_key) of a unique job whose lock Autumn keeps (window is not ``ttl``)."""
    if data is None:
        return None
    name, key, window = data.get("name"), data.get("unique_key"), data.get("unique_window")
    if not isinstance(name, str) or not isinstance(key, str):
        return None
    if window == "ttl":
        return None
    return name, key


def _str_or_none(value: object, limit: int) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return cap(value, limit)
    if isinstance(value, bool | int | float):
        return cap(json.dumps(value), limit)
    # Bounded: encoding stops once past the limit, whatever the value's size.
    return json_preview(value, limit)


def _int_or_none(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def _actions(status: JobStatus, decoded: Decoded, malformed: bool) -> tuple[Action, ...]:
    if status in (JobStatus.ENQUEUED, JobStatus.SCHEDULED, JobStatus.RETRYING, JobStatus.BLOCKED):
        # Cancel needs only the record to exist; Autumn falls back to the default queue.
        record_exists = decoded.problems[:1] != ("record missing",)
        return (Action.CANCEL,) if record_exists else ()
    if status is JobStatus.FAILED:
        if decoded.ok and not malformed:
            return (Action.RETRY, Action.DISCARD)
        return (Action.DISCARD,)
    return ()


def _extra(data: dict[str, Any]) -> dict[str, str]:
    extra: dict[str, str] = {}
    for name in ("unique_key", "unique_window", "concurrency_key", "initial_backoff_ms"):
        value = data.get(name)
        if value is not None:
            extra[name] = _str_or_none(value, MAX_NAME_CHARS) or ""
    if data.get("concurrency_limit") is not None:
        extra["concurrency_limit"] = _str_or_none(data["concurrency_limit"], MAX_NAME_CHARS) or ""
    return extra


def to_job(
    raw: bytes | str | None,
    *,
    source: str,
    job_id: str,
    status: JobStatus,
    raw_status: str,
    scheduled_for_ms: int | None = None,
    check_id: bool = True,
    decoded: Decoded | None = None,
) -> JobRecord:
    """Map one stored record (or its absence) to a row (``decoded``: the record already
    decoded, so a caller that needs it too decodes it once).

    ``job_id`` is the job's identity: where Redis holds it (the queue member, the key). The
    record's own ``id`` is what anyone who could write to Redis chose; when it names another
    job the row is flagged and keeps ``job_id`` (with ``check_id``; history entries, whose
    identity the adapter has already decided, pass False).

    ``status`` is where the job was found; a delayed job becomes ``retrying`` when it is a
    retry backoff (attempt > 1 and an error recorded).
    """
    if decoded is None:
        decoded = decode(raw)
    data = decoded.data or {}
    malformed = is_malformed_dead_entry(decoded.data)
    problems = list(decoded.problems)
    if malformed:
        problems = ["malformed entry: Autumn could not decode this job's record"]

    attempt = _int_or_none(data.get("attempt"))
    last_error = _str_or_none(data.get("error" if malformed else "last_error"), MAX_ERROR_CHARS)
    if status is JobStatus.SCHEDULED and attempt is not None and attempt > 1 and last_error:
        status = JobStatus.RETRYING
    claimed_by = data.get("claimed_by")
    if status is JobStatus.ENQUEUED and isinstance(claimed_by, str):
        # Claimed between our list read and our record read: it is running now.
        status = JobStatus.RUNNING
    payload = data.get("raw_payload") if malformed else data.get("payload")
    if malformed and isinstance(payload, str):
        preview = cap(payload, PREVIEW_CHARS) or ""
    else:
        preview = json_preview(payload, source_bytes=len(raw) if raw is not None else None)
    name = data.get("name")
    extra = _extra(data)
    recorded = data.get("id")
    if check_id and "id" in data and recorded != job_id:
        shown = _str_or_none(recorded, MAX_NAME_CHARS) or "null"
        problems.append(f"the record names another job id ({shown})")
        extra["recorded_id"] = shown
    for field in _TIME_FIELDS:
        # serde takes any u64; past the year 9999 it is no time a page can show
        value = data.get(field)
        if _is_uint(value, U64_MAX) and ms_to_datetime(value) is None:
            problems.append(f"{field} is past the year 9999: not a time")
    return JobRecord(
        source=source,
        system="autumn",
        id=job_id,
        name=(cap(name, MAX_NAME_CHARS) or "") if isinstance(name, str) else "",
        queue=cap(queue_of(decoded.data), MAX_NAME_CHARS) or DEFAULT_QUEUE,
        status=status,
        raw_status=raw_status,
        enqueued_at=ms_to_datetime(data.get("enqueued_at_ms")),
        scheduled_for=ms_to_datetime(scheduled_for_ms),
        started_at=ms_to_datetime(data.get("started_at_ms")),
        finished_at=ms_to_datetime(data.get("finished_at_ms")),
        attempt=attempt,
        max_attempts=_int_or_none(data.get("max_attempts")),
        last_error=last_error,
        principal_id=principal_of(payload),
        correlation_id=correlation_of(payload),
        worker=cap(claimed_by, MAX_NAME_CHARS) if isinstance(claimed_by, str) else None,
        payload_preview=preview,
        actions=_actions(status, decoded, malformed),
        problem="; ".join(problems) if problems else None,
        extra=extra,
    )


def retried_record(data: dict[str, Any], new_id: str, now_ms: int) -> str:
    """The record Autumn's admin retry writes: new id, attempt 1, enqueued now, run fields gone.

    Encoded here rather than by cjson in Lua, so integers stay integers, `[]` stays `[]` and
    `/` stays `/` (cjson re-encoding would change all three).
    """
    record = dict(data)
    record["id"] = new_id
    record["attempt"] = 1
    record["enqueued_at_ms"] = now_ms
    for name in ("started_at_ms", "finished_at_ms", "claimed_by", "claimed_at_ms", "last_error"):
        record.pop(name, None)
    return dumps_compact(record)


# ------------------------------------------------------------------------------------------
# Entry points that take the stored bytes and return something small: each may run in the
# decoding process (jobbridge.offload) when the value is big, so arguments and results are
# plain picklable values.


def usable_id(value: object) -> str | None:
    """A recorded id that can name a job: a non-empty string of at most 200 characters."""
    if isinstance(value, str) and value and len(value) <= MAX_NAME_CHARS:
        return value
    return None


class HistorySummary(NamedTuple):
    """What counting, ordering and finding a completed / dead entry needs.

    A tuple of plain values, which the garbage collector stops tracking: a process following
    a hundred sources holds two hundred thousand of these, and full collections would
    otherwise walk them all, holding the event loop each time.
    """

    #: finished ?? started ?? enqueued, in ms; None when the entry has none
    time_ms: int | None
    #: the entry could not be read as a record (malformed, corrupt)
    flagged: bool
    #: the id the entry records, when usable
    recorded_id: str | None
    #: Autumn's ``{"id","error","raw_payload"}`` entry for a record it could not decode
    malformed: bool


#: the id at the start of a record as serde writes it, for entries that do not decode
_LEADING_ID = re.compile(rb'\{"id":"([^"\\]{1,200})"[,}]')


def summarize(raw: bytes) -> HistorySummary:
    """The summary of one history entry."""
    decoded = decode(raw)
    data = decoded.data or {}
    recorded = usable_id(data.get("id"))
    if decoded.data is None:
        # Autumn writes "id" first; an entry that does not decode (too deep, a bad number)
        # may still be the dead-record's twin, which the adapter checks byte for byte.
        match = _LEADING_ID.match(raw)
        if match is not None:
            try:
                recorded = usable_id(match[1].decode("utf-8"))
            except UnicodeDecodeError:
                recorded = None
    malformed = is_malformed_dead_entry(decoded.data)
    time_ms = None
    for name in ("finished_at_ms", "started_at_ms", "enqueued_at_ms"):
        if ms_to_datetime(data.get(name)) is not None:
            time_ms = int(data[name])
            break
    return HistorySummary(
        time_ms=time_ms,
        flagged=malformed or not decoded.ok,
        recorded_id=recorded,
        malformed=malformed,
    )


def live_row(
    raw: bytes | None,
    source: str,
    job_id: str,
    status: JobStatus,
    raw_status: str,
    due_ms: int | None,
    check_id: bool = True,
    decoded: Decoded | None = None,
) -> JobRecord:
    """A record found under ``job_id`` (a queue or sorted-set member, a key) as a row."""
    return to_job(
        raw,
        source=source,
        job_id=job_id,
        status=status,
        raw_status=raw_status,
        scheduled_for_ms=due_ms,
        check_id=check_id,
        decoded=decoded,
    )


def history_row(
    raw: bytes, source: str, job_id: str, status: JobStatus, raw_status: str
) -> JobRecord:
    """A completed / dead entry as a row under the identity the adapter chose."""
    return to_job(
        raw, source=source, job_id=job_id, status=status, raw_status=raw_status, check_id=False
    )


def detail(
    raw: bytes,
    source: str,
    job_id: str,
    status: JobStatus,
    raw_status: str,
    due_ms: int | None,
    check_id: bool = True,
) -> tuple[JobRecord, str, str]:
    """A stored record or dead entry for the detail page, decoded once: its row, the payload
    text (indented, capped) and what that text is."""
    decoded = decode(raw)
    row = live_row(raw, source, job_id, status, raw_status, due_ms, check_id, decoded)
    if decoded.data is None:
        return row, "", "empty"
    key = "raw_payload" if is_malformed_dead_entry(decoded.data) else "payload"
    return row, *json_detail(decoded.data.get(key))


@dataclass(frozen=True, slots=True)
class RetryPlan:
    """What a retry writes, derived from the dead-record Python read."""

    #: "retry", or "corrupt" when serde would refuse the record
    mode: str
    #: the new record ("" when corrupt)
    record: str
    queue: str
    lock: tuple[str, str] | None


def retry_plan(raw: bytes, new_id: str, now_ms: int) -> RetryPlan:
    decoded = decode(raw)
    if not decoded.ok or decoded.data is None or is_malformed_dead_entry(decoded.data):
        return RetryPlan("corrupt", "", DEFAULT_QUEUE, None)
    data = decoded.data
    return RetryPlan(
        "retry", retried_record(data, new_id, now_ms), queue_of(data), unique_lock_suffix(data)
    )


def cancel_plan(raw: bytes | None) -> tuple[str, tuple[str, str] | None]:
    """(queue, unique lock) of a record to cancel; the default queue when unreadable."""
    data = decode(raw).data
    return queue_of(data), unique_lock_suffix(data)


def enqueued_ms(raw: bytes | None) -> int | None:
    data = decode(raw).data
    value = None if data is None else data.get("enqueued_at_ms")
    return value if isinstance(value, int) and not isinstance(value, bool) else None
