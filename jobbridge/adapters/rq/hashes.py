"""RQ's job hash as read: timestamps, numbers, statuses and where a job was found.

Pure functions, no Redis. Every field is hostile input: a bad one becomes words in the row's
``problem``, never an exception (docs/rq.md).
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from jobbridge.adapters import times
from jobbridge.adapters.fields import (
    MAX_NAME_CHARS,
    cap,
    text,
)
from jobbridge.model import (
    JobStatus,
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
WHERE_STATUS: Mapping[Where, tuple[JobStatus, str]] = {
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


class Fields:
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
            self.problems.append(f"{name} is not an RQ timestamp ({shown_bad(self.raw(name))})")
            return None

    def int(self, name: str) -> int | None:
        try:
            return parse_int(self.raw(name))
        except ValueError:
            self.problems.append(f"{name} is not an integer ({shown_bad(self.raw(name))})")
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


def cap_name(value: str | None) -> str | None:
    """A name (worker, status word) read from Redis, capped."""
    return cap(value, MAX_NAME_CHARS)


def shown_bad(raw: bytes | None, limit: int = 40) -> str:
    """A bad value, short, for a problem sentence."""
    return repr(cap(text(raw) or "", limit))
