"""The Celery result index in Redis: its keys (one sorted set per :class:`Bucket`, the ``rows``
summaries of :mod:`.index_summary`, the backfill's progress), its reads and the one script
that writes it (``celery/lua/index/results.lua``), as docs/celery.md §4.3 states them.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING, NamedTuple, cast

import redis.exceptions

from jobbridge.adapters.celery.index_summary import (
    BUCKETS,
    READ_BYTES,
    TAIL_BYTES,
    Bucket,
    Entry,
    IndexedTask,
    read_row,
    summarize,
)
from jobbridge.adapters.fields import glob_escape
from jobbridge.adapters.outcomes import WRONG_TYPE, wrong_type_words
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
#: most rows one page reads
MAX_PAGE = 1000
#: replies :meth:`IndexStore.queue_counts` queues: one ZCARD per bucket, then two ZCOUNTs
COUNT_REPLIES = len(BUCKETS) + 2


def _read_script() -> str:
    path = resources.files("jobbridge.adapters.celery") / "lua" / "index" / "results.lua"
    return path.read_text(encoding="utf-8")


#: the index writer (not an operator action: no shared prelude)
SCRIPT = _read_script()


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


class MetaBytes(NamedTuple):
    """A meta as read: whole, or its two ends when it is over READ_BYTES."""

    task_id: bytes
    head: bytes
    seen_ms: int
    size: int
    tail: bytes

    @classmethod
    def of(cls, task_id: bytes, raw: bytes, seen_ms: int) -> MetaBytes:
        if len(raw) <= READ_BYTES:
            return cls(task_id, raw, seen_ms, len(raw), b"")
        return cls(task_id, raw[:READ_BYTES], seen_ms, len(raw), raw[-TAIL_BYTES:])


class IndexStore:
    """The index of one Celery source's results as stored, shared by every jobbridge replica.

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
        self.meta_prefix = keys.task_meta_prefix.encode("utf-8", "surrogateescape")
        self._lifecycle_prefix = lifecycle_prefix.encode("utf-8", "surrogateescape")
        #: what the subscription and the SCAN match: every meta key of the source
        self.pattern = glob_escape(keys.task_meta_prefix) + "*"
        #: metas not indexed, by reason
        self.skipped: Counter[str] = Counter()
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

    def now_ms(self) -> int:
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
        return await self.ingest_metas(
            [MetaBytes.of(task_id, raw, seen) for task_id, raw, seen in metas]
        )

    async def ingest_metas(self, events: Sequence[MetaBytes]) -> WriteCounts:
        entries: list[Entry] = []
        unknown = 0
        pacer = Pacer()
        for e in events:
            entry = summarize(e.task_id, e.head, seen_ms=e.seen_ms, size=e.size, tail=e.tail)
            if isinstance(entry, Entry):
                entries.append(entry)
            else:
                self.skip(e.task_id, entry)
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
        args: list[str | bytes | int] = [self.now_ms(), s.cap, s.trim_per_call]
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

    def skip(self, task_id: bytes, reason: str) -> None:
        kind = reason.split(" (", 1)[0][:60]
        self.skipped[kind] += 1
        log.debug("%s: result of %r not indexed: %s", self.source, task_id[:80], reason)
