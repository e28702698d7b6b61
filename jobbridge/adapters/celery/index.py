"""jobbridge's own index of Celery's result metas, kept in Redis (docs/celery.md §3).

Celery's Redis result backend keeps one ``celery-task-meta-<id>`` string per task and no index
of them, so finding the failed tasks of the last week would take a ``SCAN`` of the whole
keyspace. A page must never do that. Instead every jobbridge replica feeds one shared index,
durable across restarts and bounded:

* ``<base>running`` / ``retrying`` / ``completed`` / ``failed`` / ``canceled``: one sorted set
  of task ids per :class:`Bucket`, scored in Unix ms (date_done for a finished task, when it
  was first seen for an unfinished one);
* ``<base>rows``: a hash of task id -> a small summary JSON (an args preview, never the args);
* ``<base>backfill``: a hash of the backfill's progress, and ``<base>backfill:lock``.

Entries come from two places, both written by one Lua script
(``celery/lua/index/results.lua``) that applies Celery's precedence, so any number of
replicas may write the same metas in any order and end with the same index:

* a subscriber: the backend ``PUBLISH``es every meta it writes on a channel named like its
  key, so a pattern subscription sees each state change as it happens;
* a backfill: a slow, bounded, resumable ``SCAN`` of the result keys, for whatever the
  subscriber missed (jobbridge was down, its connection dropped). Its cursor lives in Redis,
  so a restarted or another replica resumes it, and a lock lets one replica run it at a time.

Reads (:meth:`ResultIndex.page`, :meth:`~ResultIndex.queue_counts`, :meth:`~ResultIndex.get`)
only run ``ZREVRANGE``, ``ZCARD``, ``ZCOUNT``, ``ZSCORE``, ``HGET`` and ``HMGET``.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
import re
import secrets
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from typing import TYPE_CHECKING, Any, NamedTuple, cast

import redis.exceptions

from jobbridge import safejson
from jobbridge.adapters import payloads
from jobbridge.adapters.celery.messages import READY_STATES, decode_result_meta, parse_datetime
from jobbridge.adapters.celery.subscription import Inbox, Subscription
from jobbridge.adapters.fields import (
    MAX_NAME_CHARS,
    glob_escape,
    key_text,
    ms_to_datetime,
    score_ms,
)
from jobbridge.adapters.outcomes import WRONG_TYPE, wrong_type_words
from jobbridge.adapters.redis_errors import UNAVAILABLE_ERRORS
from jobbridge.adapters.values import is_wrongtype, ok
from jobbridge.pacing import Pacer

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.client import Pipeline

    from jobbridge.adapters.celery.keys import CeleryKeys

log = logging.getLogger(__name__)


class IndexKeyWrongType(redis.exceptions.ResponseError):
    """One of the index's keys holds another type: the script wrote nothing (a Redis error,
    so every caller that survives an unavailable Redis survives it, naming the key)."""


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
FINISHED_BUCKETS = frozenset({Bucket.COMPLETED, Bucket.FAILED, Bucket.CANCELED})
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

DAY_S = 86_400
#: how long each bucket keeps an id, seconds: finished ones by date_done, the others since
#: first seen (a STARTED meta whose worker died stays STARTED until Celery's TTL)
WINDOWS_S: Mapping[Bucket, float] = {
    Bucket.RUNNING: DAY_S,
    Bucket.RETRYING: DAY_S,
    Bucket.COMPLETED: 7 * DAY_S,
    Bucket.FAILED: 7 * DAY_S,
    Bucket.CANCELED: 7 * DAY_S,
}
#: most ids a bucket keeps
BUCKET_CAP = 100_000
#: most ids one script call trims (the rest go on later calls)
TRIM_PER_CALL = 1000

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
#: most rows one page reads
MAX_PAGE = 1000
#: greatest value of a version's number field (15 digits: ms up to year 9999 fit)
_VERSION_MAX = 10**15 - 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

#: what the result backend writes first (kombu's JSON: ``{"status": "SUCCESS", ...``)
_STATUS_AT_START = re.compile(rb'^\s*\{\s*"status"\s*:\s*"([A-Z_]{1,32})"')
_DATE_DONE = re.compile(rb'(?<!\\)"date_done"\s*:\s*"([0-9T:.+\-Z ]{10,40})"')

#: longest :meth:`ResultIndex.close` waits for its tasks to end, and longest their own
#: cleanup (closing the subscription, releasing the backfill lock) may take
CLOSE_WAIT_S = 2.0
CLEANUP_S = 1.0
#: replies :meth:`ResultIndex.queue_counts` queues: one ZCARD per bucket, then two ZCOUNTs
COUNT_REPLIES = len(BUCKETS) + 2


def _read_script() -> str:
    path = resources.files("jobbridge.adapters.celery") / "lua" / "index" / "results.lua"
    return path.read_text(encoding="utf-8")


#: the index writer (not an operator action: no shared prelude)
SCRIPT = _read_script()


# ------------------------------------------------------------------------------------------
# Settings, results


@dataclass(frozen=True, slots=True, kw_only=True)
class IndexSettings:
    """Bounds and pace of one index; the defaults are production's, tests shrink them."""

    #: most ids a bucket keeps
    cap: int = BUCKET_CAP
    #: how long each bucket keeps an id, seconds
    windows_s: Mapping[Bucket, float] = field(default_factory=lambda: dict(WINDOWS_S))
    #: most ids one script call trims
    trim_per_call: int = TRIM_PER_CALL
    #: the subscriber writes after this many events, or this long after the first one
    batch_max: int = 500
    batch_wait_s: float = 0.1
    #: SCAN's COUNT for one backfill step
    scan_count: int = 1000
    #: metas read (and written) per round trip within a step: bounds the bytes in memory
    read_chunk: int = 100
    #: pause between two backfill steps: a pass stays slow next to the pages it shares Redis with
    step_sleep_s: float = 0.01
    #: a pass starts this long after the last one ended (by any replica)
    pass_interval_s: float = 900.0
    #: the backfill lock's lifetime; its holder renews it every step
    lock_ttl_ms: int = 30_000
    #: how often a replica that did not get the lock looks again
    lock_retry_s: float = 5.0
    #: how often every bucket is trimmed even when nothing is written
    trim_every_s: float = 60.0
    #: reconnect delays of the subscriber and of the maintenance loop: first, longest
    backoff_s: tuple[float, float] = (0.5, 10.0)

    def __post_init__(self) -> None:
        missing = set(BUCKETS) - set(self.windows_s)
        if missing:
            raise ValueError(f"windows_s lacks {sorted(missing)}")
        if self.cap < 1 or self.trim_per_call < 1 or self.scan_count < 1 or self.read_chunk < 1:
            raise ValueError("cap, trim_per_call, scan_count and read_chunk must be positive")


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


@dataclass(frozen=True, slots=True, kw_only=True)
class IndexCounts:
    """The counters of :meth:`ResultIndex.take_counts`."""

    totals: Mapping[Bucket, int]
    #: SUCCESS with a date_done in the last 24 hours
    completed_24h: int
    #: FAILURE with a date_done in the last 7 days
    failed_7d: int


class WriteCounts(NamedTuple):
    """What one or more script calls did (the script's reply, summed)."""

    written: int = 0
    stale: int = 0
    operator: int = 0
    trimmed: int = 0
    unknown: int = 0

    def __add__(self, other: object) -> WriteCounts:
        if not isinstance(other, WriteCounts):
            return NotImplemented
        return WriteCounts(*(a + b for a, b in zip(self, other, strict=True)))


@dataclass(slots=True, kw_only=True)
class BackfillReport:
    """What one backfill call did (updated as it goes: ``progress`` sees it live)."""

    #: this call got the lock and scanned
    ran: bool = False
    #: another replica holds the lock: nothing was done
    held_by_other: bool = False
    #: the pass reached the end of the keyspace
    completed: bool = False
    #: it continued a pass that an earlier run (of any replica) left unfinished
    resumed: bool = False
    #: the lock expired under it (a step took longer than its lifetime): it stopped
    lock_lost: bool = False
    #: result keys scanned by this call
    keys_seen: int = 0
    #: metas written, already indexed as new or newer, skipped for an operator's entry
    written: int = 0
    stale: int = 0
    operator: int = 0
    #: metas not indexed: unreadable, in no bucket, not a string, gone before read
    skipped: int = 0
    #: metas over READ_BYTES, indexed from their status and date only
    oversized: int = 0
    #: ids trimmed by the script calls of this pass
    trimmed: int = 0
    steps: int = 0
    seconds: float = 0.0
    #: the stored cursor when the call ended ("0": no pass in progress)
    cursor: str = "0"

    def add(self, counts: WriteCounts) -> None:
        self.written += counts.written
        self.stale += counts.stale
        self.operator += counts.operator
        self.trimmed += counts.trimmed
        self.skipped += counts.unknown


Progress = Callable[[BackfillReport], object]


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
    )


# ------------------------------------------------------------------------------------------
# The index


@dataclass(slots=True)
class _PassState:
    """The stored progress of the backfill (``<base>backfill``)."""

    cursor: str = "0"
    pass_started_ms: int | None = None
    keys_seen: int = 0
    passes: int = 0
    last_pass_started_ms: int | None = None
    last_pass_ended_ms: int | None = None
    last_pass_s: float | None = None
    last_pass_keys: int = 0

    @property
    def in_progress(self) -> bool:
        return self.pass_started_ms is not None

    @classmethod
    def parse(cls, raw: Mapping[Any, Any]) -> _PassState:
        values = {key_text(k): key_text(v) for k, v in raw.items()}

        def number(name: str) -> int | None:
            text = values.get(name, "")
            return int(text) if text.isdigit() and len(text) < 20 else None

        try:
            last_s = float(values["last_pass_s"]) if values.get("last_pass_s") else None
        except ValueError:
            last_s = None
        started = number("pass_started_ms")
        cursor = values.get("cursor", "0")
        return cls(
            cursor=cursor if _is_cursor(cursor) and started is not None else "0",
            pass_started_ms=started,
            keys_seen=number("keys_seen") or 0,
            passes=number("passes") or 0,
            last_pass_started_ms=number("last_pass_started_ms"),
            last_pass_ended_ms=number("last_pass_ended_ms"),
            last_pass_s=last_s,
            last_pass_keys=number("last_pass_keys") or 0,
        )


class _Event(NamedTuple):
    """A meta as read: whole, or its two ends when it is over READ_BYTES."""

    task_id: bytes
    head: bytes
    seen_ms: int
    size: int
    tail: bytes

    @classmethod
    def of(cls, task_id: bytes, raw: bytes, seen_ms: int) -> _Event:
        if len(raw) <= READ_BYTES:
            return cls(task_id, raw, seen_ms, len(raw), b"")
        return cls(task_id, raw[:READ_BYTES], seen_ms, len(raw), raw[-TAIL_BYTES:])


def _is_cursor(text: str) -> bool:
    """Whether stored text can be a SCAN cursor (an unsigned 64-bit number)."""
    return text.isascii() and text.isdigit() and len(text) <= 20 and int(text) < 2**64


def _same(value: object, token: str) -> bool:
    return value == token or value == token.encode()


class ResultIndex:
    """The index of one Celery source's results, shared by every jobbridge replica.

    Args:
        broker: the client the index lives in (jobbridge keeps its keys in the broker Redis,
            beside its audit and lifecycle keys).
        results: the result backend's client (may be ``broker`` itself, or another server).
        keys: the source's key names (its result prefix).
        base: the index's key prefix, e.g. ``jobbridge:celery::index:``.
        source: the source's name, for logs.
        lifecycle_prefix: ``<prefix><task id>`` is a task's jobbridge lifecycle key: while it
            exists an operator acted on the task and its FAILURE metas are not indexed
            (retried and discarded tasks leave the failed list for good; a canceled task's
            REVOKED meta is still indexed).
        settings: bounds and pace.
        clock: Unix seconds (tests move it).
        subscription: the source's shared subscription on ``results`` (None: one of its own).
    """

    def __init__(
        self,
        broker: Redis,
        results: Redis,
        *,
        keys: CeleryKeys,
        base: str,
        source: str,
        lifecycle_prefix: str,
        settings: IndexSettings | None = None,
        clock: Callable[[], float] = time.time,
        subscription: Subscription | None = None,
    ) -> None:
        self.broker = broker
        self.results = results
        self.keys = keys
        self.base = base
        self.source = source
        self.lifecycle_prefix = lifecycle_prefix
        self.settings = settings or IndexSettings()
        self.clock = clock
        self._script = broker.register_script(SCRIPT)
        self._meta_prefix = keys.task_meta_prefix.encode("utf-8", "surrogateescape")
        self._lifecycle_prefix = lifecycle_prefix.encode("utf-8", "surrogateescape")
        #: what the subscription and the SCAN match: every meta key of the source
        self.pattern = glob_escape(keys.task_meta_prefix) + "*"
        self._owns_subscription = subscription is None
        self.subscription = subscription or Subscription(
            results, source=source, backoff_s=self.settings.backoff_s
        )
        self.subscription.route(self.pattern, self)
        self._inbox: Inbox[_Event] = Inbox(self.settings.batch_max)
        self._tasks: list[asyncio.Task[None]] = []
        self._wake = asyncio.Event()
        #: ms of the latest request for a pass not yet covered by a pass that started after it
        self._requested_ms: int | None = None
        self._next_trim_ms = 0
        self._subscribed = False
        self._subscriptions = 0
        self._ever_subscribed = False
        self._sub_outage = False
        self._maintain_outage = False
        self._backfilling = False
        #: metas not indexed, by reason; events received; subscriber reconnections
        self.skipped: Counter[str] = Counter()
        self.events = 0
        self.reconnects = 0
        #: what the script did, over the life of this object
        self.written = WriteCounts()

    # -------------------------------------------------------------------- keys

    def key(self, bucket: Bucket) -> str:
        """The sorted set of a bucket: task id scored by ms."""
        return f"{self.base}{Bucket(bucket).value}"

    @property
    def rows(self) -> str:
        """The hash of task id -> summary JSON (``{"v": <version>, ...}``)."""
        return f"{self.base}rows"

    @property
    def backfill_key(self) -> str:
        """The hash of the backfill's progress: cursor, pass_started_ms, keys_seen, passes,
        last_pass_started_ms, last_pass_ended_ms, last_pass_s, last_pass_keys."""
        return f"{self.base}backfill"

    @property
    def lock_key(self) -> str:
        """Held (``SET NX PX``) by the replica running a backfill pass."""
        return f"{self.base}backfill:lock"

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    # -------------------------------------------------------------------- reads

    async def page(self, bucket: Bucket, offset: int, count: int) -> list[IndexedTask]:
        """The tasks of a bucket, newest first: ZREVRANGE, then HMGET of their rows (two
        round trips: the ids come first). An id whose row is missing reads as a task with
        the problem "no summary"."""
        bucket = Bucket(bucket)
        offset, count = max(0, offset), min(max(0, count), MAX_PAGE)
        if count == 0:
            return []
        scored = cast(
            "list[tuple[bytes, float]]",
            await self.broker.zrevrange(
                self.key(bucket), offset, offset + count - 1, withscores=True
            ),
        )
        if not scored:
            return []
        raws = cast(
            "list[bytes | None]", await self.broker.hmget(self.rows, [m for m, _ in scored])
        )
        pacer = Pacer()
        tasks = []
        for (member, score), raw in zip(scored, raws, strict=True):
            tasks.append(read_row(member, raw, bucket, score))
            await pacer.tick()
        return tasks

    def queue_counts(self, pipe: Pipeline, now_ms: int) -> None:
        """Queue :data:`COUNT_REPLIES` counters on a caller's pipeline: ZCARD of each bucket,
        then ZCOUNT of completed in the last 24 hours and failed in the last 7 days."""
        for bucket in BUCKETS:
            pipe.zcard(self.key(bucket))
        pipe.zcount(self.key(Bucket.COMPLETED), now_ms - DAY_S * 1000, "+inf")
        pipe.zcount(self.key(Bucket.FAILED), now_ms - 7 * DAY_S * 1000, "+inf")

    def take_counts(self, replies: Sequence[object]) -> IndexCounts:
        """Those replies, parsed (anything that is not a count reads as 0)."""

        def number(value: object) -> int:
            return value if isinstance(value, int) and not isinstance(value, bool) else 0

        values = [number(v) for v in replies[:COUNT_REPLIES]]
        values += [0] * (COUNT_REPLIES - len(values))
        return IndexCounts(
            totals=dict(zip(BUCKETS, values, strict=False)),
            completed_24h=values[len(BUCKETS)],
            failed_7d=values[len(BUCKETS) + 1],
        )

    async def get(self, task_id: str) -> IndexedTask | None:
        """One task: its row (HGET) and its score in each bucket (ZSCORE), in one pipeline;
        None when it is in no bucket."""
        pipe = self.broker.pipeline(transaction=False)
        pipe.hget(self.rows, task_id)
        for bucket in BUCKETS:
            pipe.zscore(self.key(bucket), task_id)
        # jobbridge's own keys, but anyone can write them: one of another type is a
        # flagged row (or no row), never an unavailable source
        raw, *scores = [ok(r) for r in await pipe.execute(raise_on_error=False)]
        if is_wrongtype(raw):
            raw = None
        for bucket, score in zip(BUCKETS, scores, strict=True):
            if score is not None and not is_wrongtype(score):
                return read_row(task_id, raw, bucket, float(score))
        return None

    # -------------------------------------------------------------------- writes

    async def ingest(self, metas: Iterable[tuple[bytes, bytes, int]]) -> WriteCounts:
        """Index metas now: ``(task id, meta bytes, ms seen)`` each. Metas that cannot be
        indexed are counted in :attr:`skipped` (and as ``unknown``)."""
        return await self._ingest([_Event.of(task_id, raw, seen) for task_id, raw, seen in metas])

    async def _ingest(self, events: Sequence[_Event]) -> WriteCounts:
        entries: list[Entry] = []
        unknown = 0
        pacer = Pacer()
        for e in events:
            entry = summarize(e.task_id, e.head, seen_ms=e.seen_ms, size=e.size, tail=e.tail)
            if isinstance(entry, Entry):
                entries.append(entry)
            else:
                self._skip(e.task_id, entry)
                unknown += 1
            await pacer.tick()
        counts = await self.write(entries)
        return counts + WriteCounts(unknown=unknown)

    async def write(self, entries: Sequence[Entry], *, trim_all: bool = False) -> WriteCounts:
        """Run the script over entries, in batches of ``batch_max``; with none, only trim."""
        total = WriteCounts()
        size = self.settings.batch_max
        for start in range(0, max(len(entries), 1), size):
            batch = entries[start : start + size]
            if not batch and not trim_all:
                break
            total = total + await self._run_script(batch, trim_all)
        self.written = self.written + total
        return total

    async def trim(self) -> WriteCounts:
        """Trim every bucket by window and count (at most ``trim_per_call`` ids)."""
        return await self.write([], trim_all=True)

    async def _run_script(self, batch: Sequence[Entry], trim_all: bool) -> WriteCounts:
        s = self.settings
        keys: list[str | bytes] = [self.key(b) for b in BUCKETS]
        keys.append(self.rows)
        keys += [self._lifecycle_prefix + e.task_id for e in batch]
        args: list[str | bytes | int] = [self._now_ms(), s.cap, s.trim_per_call]
        args += [int(s.windows_s[b] * 1000) for b in BUCKETS]
        args.append(1 if trim_all else 0)
        for e in batch:
            args += [e.task_id, e.state, e.version, e.score, e.body]
        reply = await self._script(keys=keys, args=args)
        if len(reply) == 4 and int(reply[0]) == WRONG_TYPE:
            raise IndexKeyWrongType(
                f"the Celery result index was not written: {wrong_type_words(*reply[1:])}; "
                "nothing was written"
            )
        return WriteCounts(*(int(v) for v in reply))

    def _skip(self, task_id: bytes, reason: str) -> None:
        kind = reason.split(" (", 1)[0][:60]
        self.skipped[kind] += 1
        log.debug("%s: result of %r not indexed: %s", self.source, task_id[:80], reason)

    # -------------------------------------------------------------------- background

    async def start(self) -> None:
        """Start the subscriber and the maintenance loop (backfill passes, trims); a pass
        runs at once. Idempotent."""
        if self._tasks and not all(t.done() for t in self._tasks):
            return
        self._request_pass()
        self._tasks = [
            asyncio.create_task(self._write_forever(), name=f"{self.source} index subscriber"),
            asyncio.create_task(self._maintain_forever(), name=f"{self.source} index backfill"),
        ]
        if self._owns_subscription:
            await self.subscription.start()

    async def close(self) -> None:
        """Stop the background work now. A pass in progress keeps its cursor in Redis (the
        next pass, of this or another replica, resumes it); its lock is released."""
        if self._owns_subscription:
            await self.subscription.close()
        tasks, self._tasks = self._tasks, []
        pending = set(tasks)
        # Each task's own cleanup (the lock release) takes CLEANUP_S at most. A
        # task still running after that had its cancellation swallowed (asyncio.wait_for
        # in some library can do that): it is cancelled once more.
        for wait in (CLEANUP_S + 0.2, CLOSE_WAIT_S - CLEANUP_S - 0.2):
            if not pending:
                break
            for task in pending:
                task.cancel()
            _, pending = await asyncio.wait(pending, timeout=wait)
        if pending:
            log.warning("%s: result index tasks still running after close", self.source)
        self._subscribed = False

    def _request_pass(self) -> None:
        """Ask for a pass that starts from now (a pass already under way does not cover
        what it scanned before this)."""
        self._requested_ms = self._now_ms()
        self._wake.set()

    # ---- subscriber

    def subscribed(self) -> None:
        if self._ever_subscribed:
            # subscribed again (after a loss, or redis-py reconnected by itself): events
            # were missed
            self.reconnects += 1
            self._request_pass()
        if self._sub_outage:
            log.warning("%s: result subscription back", self.source)
        self._ever_subscribed = True
        self._subscriptions += 1
        self._subscribed = True
        self._sub_outage = False

    def lost(self, exc: Exception) -> None:
        self._subscribed = False
        if not self._sub_outage:
            self._sub_outage = True
            log.warning(
                "%s: result subscription lost (%s); reconnecting, then a backfill pass",
                self.source,
                exc,
                exc_info=not isinstance(exc, UNAVAILABLE_ERRORS),
            )

    async def deliver(self, channel: object, data: object) -> None:
        """A published meta, its two ends only when it is big (the inbox and a batch hold
        at most ``batch_max`` times READ_BYTES + TAIL_BYTES of them each)."""
        channel = (
            channel.encode("utf-8", "surrogateescape") if isinstance(channel, str) else channel
        )
        data = data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data
        if not isinstance(channel, bytes) or not isinstance(data, bytes):
            return
        self.events += 1
        if not channel.startswith(self._meta_prefix) or len(channel) == len(self._meta_prefix):
            self._skip(channel, "a channel that names no task")
            return
        await self._inbox.put(_Event.of(channel[len(self._meta_prefix) :], data, self._now_ms()))

    async def _write_forever(self) -> None:
        """Write events in batches (``batch_max``, or ``batch_wait_s`` after the first)."""
        s = self.settings
        while True:
            events = await self._inbox.batch(s.batch_max, s.batch_wait_s)
            try:
                await self._flush(events)
            except Exception:  # a bug: these events are lost, a pass will find their metas
                log.exception("%s: %d result events not indexed", self.source, len(events))
                self._request_pass()

    async def _flush(self, events: list[_Event]) -> None:
        try:
            await self._ingest(events)
        except UNAVAILABLE_ERRORS as exc:
            # the index's Redis failed: these events are lost, a pass will find their metas
            log.warning("%s: %d result events not indexed (%s)", self.source, len(events), exc)
            self._request_pass()

    # ---- maintenance: passes and trims

    async def _maintain_forever(self) -> None:
        low, high = self.settings.backoff_s
        delay = low
        while True:
            try:
                wait = await self._maintain_once()
                if self._maintain_outage:
                    log.warning("%s: result index maintenance back", self.source)
                self._maintain_outage = False
                delay = low
            except Exception as exc:  # a Redis error, or a bug: either way, try again later
                if not self._maintain_outage:
                    self._maintain_outage = True
                    log.warning(
                        "%s: result index backfill failed (%s)",
                        self.source,
                        exc,
                        exc_info=not isinstance(exc, UNAVAILABLE_ERRORS),
                    )
                wait, delay = delay, min(delay * 2, high)
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await self._wake.wait()
            self._wake.clear()

    async def _maintain_once(self) -> float:
        """Trim if due, run a pass if due; seconds until something may be due again."""
        s = self.settings
        now = self._now_ms()
        if now >= self._next_trim_ms:
            await self.trim()
            self._next_trim_ms = now + int(s.trim_every_s * 1000)
        state = await self._read_state()
        if self._due(state, now):
            report = await self._pass(None, None)
            if not report.ran or report.lock_lost:
                return s.lock_retry_s
            state = await self._read_state()
            if self._due(state, self._now_ms()):
                return 0.0 if report.completed else s.lock_retry_s
        wait = s.trim_every_s
        if state.last_pass_ended_ms is not None:
            next_pass = state.last_pass_ended_ms + s.pass_interval_s * 1000
            wait = min(wait, max(0.0, (next_pass - self._now_ms()) / 1000))
        return max(wait, 0.05)

    def _due(self, state: _PassState, now: int) -> bool:
        if state.in_progress:
            return True
        if self._requested_ms is not None:
            if (state.last_pass_started_ms or 0) >= self._requested_ms:
                self._requested_ms = None  # a pass that started after the request has ended
            else:
                return True
        ended = state.last_pass_ended_ms
        return ended is None or now - ended >= self.settings.pass_interval_s * 1000

    async def _read_state(self) -> _PassState:
        raw = cast("dict[Any, Any]", await self.broker.hgetall(self.backfill_key))
        return _PassState.parse(raw)

    # ---- backfill

    async def backfill_pass(
        self, *, max_keys: int | None = None, progress: Progress | None = None
    ) -> BackfillReport:
        """Run a pass now, under the same lock as the background ones: continue the stored
        pass if one was left unfinished, else start one; stop early after ``max_keys`` keys
        (the cursor stays stored for the next pass to resume). When another replica holds
        the lock, nothing is done (``held_by_other``)."""
        return await self._pass(max_keys, progress)

    async def _pass(self, max_keys: int | None, progress: Progress | None) -> BackfillReport:
        token = secrets.token_hex(16)
        acquired = await self.broker.set(
            self.lock_key, token, nx=True, px=self.settings.lock_ttl_ms
        )
        if not acquired:
            return BackfillReport(held_by_other=True)
        self._backfilling = True
        try:
            return await self._scan(token, max_keys, progress)
        finally:
            self._backfilling = False
            with contextlib.suppress(Exception):
                async with asyncio.timeout(CLEANUP_S):
                    await self._release(token)

    async def _scan(
        self, token: str, max_keys: int | None, progress: Progress | None
    ) -> BackfillReport:
        started = time.monotonic()
        report = BackfillReport(ran=True)
        state = await self._read_state()
        if state.in_progress:
            report.resumed = True
            cursor, total = int(state.cursor), state.keys_seen
            pass_started = state.pass_started_ms or self._now_ms()
        else:
            cursor, pass_started, total = 0, self._now_ms(), 0
            fresh: dict[str, str | int] = {
                "cursor": 0,
                "pass_started_ms": pass_started,
                "keys_seen": 0,
            }
            if not await self._commit(token, fresh):
                report.lock_lost = True
                return report
        while True:
            cursor, found = cast(
                "tuple[int, list[bytes]]",
                await self.results.scan(
                    cursor=cursor, match=self.pattern, count=self.settings.scan_count
                ),
            )
            await self._index_keys(found, report)
            report.keys_seen += len(found)
            report.steps += 1
            total += len(found)
            report.seconds = time.monotonic() - started
            if cursor == 0:
                ended = self._now_ms()
                done: dict[str, str | int] = {
                    "cursor": 0,
                    "pass_started_ms": "",
                    "keys_seen": 0,
                    "last_pass_started_ms": pass_started,
                    "last_pass_ended_ms": ended,
                    "last_pass_s": f"{(ended - pass_started) / 1000:.3f}",
                    "last_pass_keys": total,
                    # only the lock's holder writes it: no increment needed (nor trusted)
                    "passes": state.passes + 1,
                }
                report.completed = await self._commit(token, done)
                report.lock_lost = not report.completed
                report.cursor = "0"
                break
            report.cursor = str(cursor)
            if not await self._commit(token, {"cursor": cursor, "keys_seen": total}):
                report.lock_lost = True
                break
            if progress is not None:
                progress(report)
            if max_keys is not None and report.keys_seen >= max_keys:
                break
            await asyncio.sleep(self.settings.step_sleep_s)
        if report.lock_lost:
            log.warning("%s: backfill lock lost after %d keys", self.source, report.keys_seen)
        report.seconds = time.monotonic() - started
        if progress is not None:
            progress(report)
        return report

    async def _index_keys(self, found: Sequence[bytes], report: BackfillReport) -> None:
        chunk = self.settings.read_chunk
        for start in range(0, len(found), chunk):
            entries = await self._read_metas(found[start : start + chunk], report)
            if entries:
                report.add(await self.write(entries))

    async def _read_metas(self, found: Sequence[bytes], report: BackfillReport) -> list[Entry]:
        """STRLEN and the first READ_BYTES of each key (never a huge value whole), the last
        TAIL_BYTES of those bigger; then their summaries, yielding to the loop as it goes."""
        names = [k.encode("utf-8", "surrogateescape") if isinstance(k, str) else k for k in found]
        seen_ms = self._now_ms()
        pipe = self.results.pipeline(transaction=False)
        for name in names:
            pipe.strlen(name)
            pipe.getrange(name, 0, READ_BYTES - 1)
        replies = await pipe.execute(raise_on_error=False)
        sizes, heads = replies[0::2], replies[1::2]
        big = [i for i, size in enumerate(sizes) if isinstance(size, int) and size > READ_BYTES]
        tails: dict[int, object] = {}
        if big:
            pipe = self.results.pipeline(transaction=False)
            for i in big:
                pipe.getrange(names[i], -TAIL_BYTES, -1)
            tails = dict(zip(big, await pipe.execute(raise_on_error=False), strict=True))
        entries = []
        pacer = Pacer()
        for i, name in enumerate(names):
            entry = self._entry_of(name, sizes[i], heads[i], tails.get(i, b""), seen_ms, report)
            if entry is not None:
                entries.append(entry)
            await pacer.tick()
        return entries

    def _entry_of(
        self,
        name: bytes,
        size: object,
        head: object,
        tail: object,
        seen_ms: int,
        report: BackfillReport,
    ) -> Entry | None:
        if not name.startswith(self._meta_prefix) or len(name) == len(self._meta_prefix):
            reason = "a key that names no task"
        elif isinstance(size, Exception) or isinstance(head, Exception):
            reason = "not a string"
        elif not isinstance(size, int) or size == 0 or not isinstance(head, bytes | str):
            return None  # expired between SCAN and the read
        else:
            if isinstance(head, str):  # a client made with decode_responses
                head = head.encode("utf-8", "surrogateescape")
            task_id = name[len(self._meta_prefix) :]
            tail_bytes = tail if isinstance(tail, bytes) else b""
            entry = summarize(task_id, head, seen_ms=seen_ms, size=size, tail=tail_bytes)
            if isinstance(entry, Entry):
                report.oversized += size > READ_BYTES
                return entry
            reason = entry
        self._skip(name, reason)
        report.skipped += 1
        return None

    async def _commit(self, token: str, fields: Mapping[str, str | int]) -> bool:
        """Store the pass's progress and renew the lock, only while this token holds it."""
        async with self.broker.pipeline(transaction=True) as pipe:
            await pipe.watch(self.lock_key)
            if not _same(await pipe.get(self.lock_key), token):
                return False
            pipe.multi()  # type: ignore[no-untyped-call]
            pipe.pexpire(self.lock_key, self.settings.lock_ttl_ms)
            pipe.hset(self.backfill_key, mapping=dict[Any, Any](fields))
            try:
                await pipe.execute()
            except redis.exceptions.WatchError:
                return False
        return True

    async def _release(self, token: str) -> None:
        async with self.broker.pipeline(transaction=True) as pipe:
            await pipe.watch(self.lock_key)
            if _same(await pipe.get(self.lock_key), token):
                pipe.multi()  # type: ignore[no-untyped-call]
                pipe.delete(self.lock_key)
                with contextlib.suppress(redis.exceptions.WatchError):
                    await pipe.execute()

    # -------------------------------------------------------------------- status

    async def status(self) -> dict[str, object]:
        """The backfill's stored progress and this replica's view of its own work."""
        pipe = self.broker.pipeline(transaction=False)
        pipe.hgetall(self.backfill_key)
        pipe.pttl(self.lock_key)
        raw, lock_ttl = await pipe.execute()
        state = _PassState.parse(raw)

        def when(ms: int | None) -> str | None:
            moment = ms_to_datetime(ms)
            return moment.isoformat() if moment else None

        return {
            "source": self.source,
            "cursor": state.cursor,
            "pass_in_progress": state.in_progress,
            "pass_started": when(state.pass_started_ms),
            "keys_seen": state.keys_seen,
            "passes": state.passes,
            "last_pass_started": when(state.last_pass_started_ms),
            "last_pass_ended": when(state.last_pass_ended_ms),
            "last_pass_s": state.last_pass_s,
            "last_pass_keys": state.last_pass_keys,
            "lock_held": isinstance(lock_ttl, int) and lock_ttl > 0,
            "backfilling_here": self._backfilling,
            "subscriber_connected": self._subscribed,
            "reconnects": self.reconnects,
            "events": self.events,
            "written": self.written._asdict(),
            "skipped": dict(self.skipped),
        }


__all__ = [
    "BUCKETS",
    "COUNT_REPLIES",
    "BackfillReport",
    "Bucket",
    "Entry",
    "IndexCounts",
    "IndexSettings",
    "IndexedTask",
    "ResultIndex",
    "WriteCounts",
    "read_row",
    "summarize",
    "version_of",
]
