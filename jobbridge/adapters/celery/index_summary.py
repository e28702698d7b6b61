"""What the Celery result index keeps of a meta: its bucket, its version and a small summary
JSON (an args preview, never the args); and a stored summary read back as an
:class:`IndexedTask`. Pure functions: hostile bytes in, bounded text out, never a raise."""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from jobbridge import safejson
from jobbridge.adapters import payloads
from jobbridge.adapters.celery.messages import parse_datetime
from jobbridge.adapters.celery.result_meta import READY_STATES, decode_result_meta
from jobbridge.adapters.fields import MAX_NAME_CHARS, key_text, ms_to_datetime, score_ms


class Bucket(enum.StrEnum):
    """Where an indexed task is listed."""

    #: STARTED (and RECEIVED, should a meta ever hold it)
    RUNNING = "running"
    #: RETRY: it failed and will run again
    RETRYING = "retrying"
    #: SUCCESS
    COMPLETED = "completed"
    #: FAILURE
    FAILED = "failed"
    #: REVOKED
    CANCELED = "canceled"


#: the buckets in the order of the script's KEYS[1..5]
BUCKETS: tuple[Bucket, ...] = tuple(Bucket)
#: Celery's states a meta may hold -> their bucket (PENDING is never stored)
STATE_BUCKET: Mapping[str, Bucket] = {
    "RECEIVED": Bucket.RUNNING,
    "STARTED": Bucket.RUNNING,
    "RETRY": Bucket.RETRYING,
    "SUCCESS": Bucket.COMPLETED,
    "FAILURE": Bucket.FAILED,
    "REVOKED": Bucket.CANCELED,
}
#: orders two metas of one version class: a task's run writes STARTED then RETRY (both with
#: the same ``retries``); of two finished metas with one date_done, SUCCESS wins as in Celery
STATE_RANK: Mapping[str, int] = {
    "RECEIVED": 0,
    "STARTED": 1,
    "RETRY": 2,
    "REVOKED": 1,
    "FAILURE": 2,
    "SUCCESS": 3,
}

#: bytes of a meta read whole; a bigger one is read from its first READ_BYTES and its last
#: TAIL_BYTES only (its status and date_done)
READ_BYTES = 65_536
TAIL_BYTES = 4096
#: characters kept of each summary field
ARGS_PREVIEW_CHARS = 200
ERROR_CHARS = 2048
PROBLEM_CHARS = 500
ID_CHARS = 200
STATE_CHARS = 40
#: largest summary row read back (jobbridge writes a few KiB at most)
MAX_ROW_BYTES = 16_384
#: greatest value of a version's number field (15 digits: ms up to year 9999 fit)
_VERSION_MAX = 10**15 - 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

#: what the result backend writes first (kombu's JSON: ``{"status": "SUCCESS", ...``)
_STATUS_AT_START = re.compile(rb'^\s*\{\s*"status"\s*:\s*"([A-Z_]{1,32})"')
_DATE_DONE = re.compile(rb'(?<!\\)"date_done"\s*:\s*"([0-9T:.+\-Z ]{10,40})"')


@dataclass(frozen=True, slots=True, kw_only=True)
class IndexedTask:
    """One task as the index has it."""

    task_id: str
    #: Celery's word as stored ("SUCCESS"); "UNKNOWN" when the summary is unreadable
    state: str
    bucket: Bucket
    #: the score: date_done for finished states, else when first seen
    at: datetime
    name: str | None
    queue: str | None
    worker: str | None
    #: a short preview of the call, ``tasks.add(2, 3)``; "" when the args are not known
    args_preview: str
    #: "ExcType: message" of a stored exception
    error: str | None
    retries: int | None
    parent_id: str | None
    #: Celery's metas do not store it: None unless a summary has it
    root_id: str | None
    #: the meta had ``result_extended``'s fields (its args and kwargs are known)
    extended: bool
    #: malformed meta, meta too large, summary unreadable... in words
    problem: str | None
    #: the entry comes from Celery's task events, not from a stored result
    from_events: bool = False
    #: the call's correlation and principal ids (result_extended's kwargs), so a search by
    #: them finds finished tasks too; None when unknown
    correlation_id: str | None = None
    principal_id: str | None = None


# ------------------------------------------------------------------------------------------
# Summaries: a meta's bytes -> what the script writes


class Entry(NamedTuple):
    """One meta, ready for the script."""

    task_id: bytes
    state: str
    #: orders the metas of one task (see celery/lua/index/results.lua)
    version: str
    #: ms: date_done when finished and known, else when seen
    score: int
    #: the summary JSON (never empty: it always has ``state``)
    body: str


def _clamp(value: int) -> int:
    return max(0, min(value, _VERSION_MAX))


def version_of(state: str, date_done_ms: int | None, retries: int | None, seen_ms: int) -> str:
    """The version of a meta: finished ones by date_done, then state; unfinished ones by
    ``retries`` (the run they belong to), then state. Without the number (no date_done, a
    meta without ``result_extended``), the time it was seen stands in."""
    rank = STATE_RANK[state]
    if state in READY_STATES:
        number = date_done_ms if date_done_ms is not None else seen_ms
        return f"1:{_clamp(number):015d}:{rank}"
    number = retries if retries is not None else seen_ms
    return f"0:{_clamp(number):015d}:{rank}"


def dump_summary(fields: Mapping[str, object]) -> str:
    """A summary's JSON: the fields that are set, keys sorted (every writer makes the same
    bytes of the same summary)."""
    return json.dumps(
        {k: v for k, v in fields.items() if v is not None}, separators=(",", ":"), sort_keys=True
    )


def _cut(text: str | None, limit: int) -> str | None:
    if text is None or len(text) <= limit:
        return text
    return text[:limit] + "…"


def _oversized(task_id: bytes, head: bytes, tail: bytes, size: int, seen_ms: int) -> Entry | str:
    """A meta over READ_BYTES: its status from the start (the backend writes it first), its
    date_done from the end (after a big result) or else the start (before big args)."""
    match = _STATUS_AT_START.match(head)
    if match is None:
        return f"meta of {size:,} bytes without a readable status"
    state = match.group(1).decode()
    if state not in STATE_BUCKET:
        return f"state {state!r} is in no bucket"
    found = _DATE_DONE.findall(tail) or _DATE_DONE.findall(head)[:1]
    date_done, _ = parse_datetime(found[-1].decode()) if found else (None, None)
    done_ms = int(date_done.timestamp() * 1000) if date_done else None
    problem = f"meta of {size:,} bytes; indexed from its status and date only"
    body = dump_summary({"state": state, "ext": False, "problem": problem})
    finished = state in READY_STATES
    score = done_ms if finished and done_ms is not None else seen_ms
    return Entry(task_id, state, version_of(state, done_ms, None, seen_ms), score, body)


def summarize(
    task_id: bytes, raw: bytes, *, seen_ms: int, size: int | None = None, tail: bytes = b""
) -> Entry | str:
    """A meta as the index keeps it, or why it is not indexed. Never raises.

    Args:
        task_id: the id its key (or channel) names.
        raw: the meta, or its first READ_BYTES when ``size`` is bigger.
        seen_ms: when it was read: the score of an unfinished task.
        size: its full size when known (a backfill's ``STRLEN``).
        tail: its last TAIL_BYTES, when ``size`` is over READ_BYTES.
    """
    try:
        return _summarize(task_id, raw, seen_ms, len(raw) if size is None else size, tail)
    except Exception as exc:  # the last guard: hostile bytes must not stop an index
        return f"could not be summarized ({type(exc).__name__})"


def _summarize(task_id: bytes, raw: bytes, seen_ms: int, size: int, tail: bytes) -> Entry | str:
    if size > READ_BYTES:
        if len(raw) > READ_BYTES:  # the whole value (a published one): keep its two ends
            raw, tail = raw[:READ_BYTES], raw[-TAIL_BYTES:]
        return _oversized(task_id, raw, tail, size, seen_ms)
    meta = decode_result_meta(raw)
    state = meta.status
    if state is None:
        return meta.problem or "no status"
    if state not in STATE_BUCKET:
        return f"state {state[:STATE_CHARS]!r} is in no bucket"
    problems = [meta.problem] if meta.problem else []
    if meta.task_id is not None and meta.task_id.encode("utf-8", "surrogateescape") != task_id:
        problems.append("its task_id names another task")
    done_ms = int(meta.date_done.timestamp() * 1000) if meta.date_done else None
    extended = meta.args is not None and meta.kwargs is not None
    preview = ""
    if extended:
        call = payloads.DecodedCall(meta.name, meta.args, meta.kwargs, meta.serializer or "json")
        preview = payloads.call_preview(call, ARGS_PREVIEW_CHARS)
    body = dump_summary(
        {
            "state": state,
            "name": _cut(meta.name, MAX_NAME_CHARS),
            "queue": _cut(meta.queue, ID_CHARS),
            "worker": _cut(meta.worker, ID_CHARS),
            "args": preview or None,
            "error": _cut(meta.error, ERROR_CHARS),
            "retries": meta.retries,
            "parent": _cut(meta.parent_id, ID_CHARS),
            "corr": _cut(meta.correlation, ID_CHARS),
            "who": _cut(meta.principal, ID_CHARS),
            "ext": extended,
            "problem": _cut("; ".join(problems), PROBLEM_CHARS) or None,
        }
    )
    finished = state in READY_STATES
    score = done_ms if finished and done_ms is not None else seen_ms
    return Entry(task_id, state, version_of(state, done_ms, meta.retries, seen_ms), score, body)


# ------------------------------------------------------------------------------------------
# Rows: what the hash holds -> IndexedTask


def _field(fields: Mapping[str, Any], name: str, limit: int, problems: list[str]) -> str | None:
    value = fields.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        problems.append(f"summary {name} is not text")
        return None
    return _cut(value, limit)


def read_row(
    task_id: bytes | str, raw: bytes | str | None, bucket: Bucket, score: float | None
) -> IndexedTask:
    """An index entry from its summary row and score. Never raises: a row that is missing or
    that someone broke becomes a task whose ``problem`` says so."""
    problems: list[str] = []
    fields: Mapping[str, Any] = {}
    if raw is None:
        problems.append("no summary")
    elif len(raw) > MAX_ROW_BYTES:
        problems.append(f"summary of {len(raw):,} bytes: not read")
    else:
        try:
            value = safejson.loads(raw)
        except (safejson.JSONError, UnicodeDecodeError) as exc:
            problems.append(f"summary is not JSON ({str(exc)[:80]})")
        else:
            if isinstance(value, dict):
                fields = value
            else:
                problems.append("summary is not an object")
    state = _field(fields, "state", STATE_CHARS, problems) or "UNKNOWN"
    retries = fields.get("retries")
    if retries is not None and (isinstance(retries, bool) or not isinstance(retries, int)):
        problems.append("summary retries is not an integer")
        retries = None
    extended = fields.get("ext") is True
    stored_problem = _field(fields, "problem", PROBLEM_CHARS, problems)
    if stored_problem:
        problems.insert(0, stored_problem)
    correlation = _field(fields, "corr", ID_CHARS + 1, problems)
    principal = _field(fields, "who", ID_CHARS + 1, problems)
    at_ms = score_ms(score) if score is not None else None
    at = ms_to_datetime(at_ms)
    if score is not None and at is None:
        problems.append(f"its score in the {bucket.value} index is not a time")
    return IndexedTask(
        task_id=key_text(task_id),
        state=state,
        bucket=bucket,
        at=at or _EPOCH,
        name=_field(fields, "name", MAX_NAME_CHARS, problems),
        queue=_field(fields, "queue", ID_CHARS, problems),
        worker=_field(fields, "worker", ID_CHARS, problems),
        args_preview=_field(fields, "args", ARGS_PREVIEW_CHARS + 1, problems) or "",
        error=_field(fields, "error", ERROR_CHARS + 1, problems),
        retries=retries,
        parent_id=_field(fields, "parent", ID_CHARS + 1, problems),
        root_id=_field(fields, "root", ID_CHARS + 1, problems),
        extended=extended,
        problem=_cut("; ".join(problems), PROBLEM_CHARS) or None,
        from_events=fields.get("src") == "events",
        correlation_id=correlation,
        principal_id=principal,
    )
