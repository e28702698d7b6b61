"""The Autumn adapter: Autumn's Redis job keys, read within the admin backend's bounds
(docs/autumn.md §4); the completed and dead lists followed incrementally (:mod:`.history`). A
job is where Redis holds it, never what its record says. Actions live in :mod:`.actions`, the
job page in :mod:`.job_page`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from jobbridge import offload
from jobbridge.adapters.autumn import actions, finished_feed, job_page, records
from jobbridge.adapters.autumn.history import (
    HISTORY_LIMIT,
    AutumnHistories,
)
from jobbridge.adapters.autumn.keys import (
    DEFAULT_KEY_PREFIX,
    DEFAULT_QUEUE,
    AutumnKeys,
)
from jobbridge.adapters.discovery import QueueDiscovery
from jobbridge.adapters.fields import (
    MAX_NAME_CHARS,
    key_text,
    ms_to_datetime,
    now_ms,
    score_ms,
)
from jobbridge.adapters.operator_log import (
    OperatorKeys,
    OperatorLog,
    RecordReader,
)
from jobbridge.adapters.paging import spans
from jobbridge.adapters.scripts import BoundScripts, bind
from jobbridge.adapters.values import (
    Unread,
    Value,
    is_wrongtype,
    ok,
    read_strings,
    type_problems,
)
from jobbridge.model import (
    Action,
    ActionResult,
    Counters,
    JobDetail,
    JobRecord,
    JobStatus,
    LifecycleEntry,
    ListName,
    Page,
    QueueCounters,
    Snapshot,
    SnapshotQuery,
    System,
)
from jobbridge.pacing import Pacer

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from jobbridge.adapters.finished import FinishedBatch

__all__ = ["DEFAULT_KEY_PREFIX", "AutumnAdapter", "AutumnKeys"]

#: Queues shown at most per source, so "O(number of queues)" stays a small number even
#: when thousands of queue keys exist.
MAX_QUEUES = 100
#: Keys one discovery step asks SCAN to look at.
DISCOVERY_SCAN_COUNT = 1000
#: Queue names read from records that wait for a check of their key, at most, and how many
#: one discovery step checks.
MAX_CANDIDATES = 1000
CANDIDATES_PER_STEP = 100
#: A discovered queue whose key was not seen for a whole discovery pass and this long is
#: forgotten (an empty queue's key does not exist, so it may come back).
QUEUE_FORGET_S = 600.0
#: Bytes of a record read for a row in the first round trip; bigger records take a second.
ROW_BYTES = 64 * 1024
#: Bytes of big records one page reads whole at most; rows past it say so and link to the job.
PAGE_BYTES = 16 * 1024 * 1024


def _lifecycle_copy(source: str) -> RecordReader:
    """How a lifecycle entry's copy of an Autumn record becomes a row."""

    def read(stored: str, job_id: str, status: JobStatus) -> JobRecord:
        return records.to_job(
            stored,
            source=source,
            job_id=job_id,
            status=status,
            raw_status=status.value,
            check_id=False,
        )

    return read


class AutumnAdapter:
    """One Autumn source: a key prefix in one Redis database."""

    system: ClassVar[System] = "autumn"

    def __init__(
        self,
        client: Redis,
        *,
        source: str,
        key_prefix: str = DEFAULT_KEY_PREFIX,
        queues: Sequence[str] | None = None,
        jobbridge_prefix: str = "jobbridge:",
    ) -> None:
        """Bind an adapter to a client.

        Args:
            client: an asyncio Redis client (``decode_responses=False``).
            source: the configured source name, stamped on every row and audit entry.
            key_prefix: Autumn's ``jobs.redis.key_prefix``.
            queues: queues in priority order; None discovers them (``refresh_queues``).
            jobbridge_prefix: where jobbridge keeps its audit and lifecycle keys.
        """
        self.client = client
        self.source = source
        self.keys = AutumnKeys(key_prefix)
        self.configured_queues = tuple(q.strip() or DEFAULT_QUEUE for q in queues or ())
        #: queue names read from records, checked by the next discovery step
        self._candidates: dict[str, None] = {}
        self.discovery = QueueDiscovery(
            self._discovery_step,
            default=DEFAULT_QUEUE,
            limit=None,
            keep_s=QUEUE_FORGET_S,
            pinned=() if self.configured_queues else (DEFAULT_QUEUE,),
        )
        #: oldest waiting id of each queue and its enqueued time, so counters re-read a
        #: record only when the oldest job changes
        self._oldest: dict[str, tuple[str, int | None]] = {}
        #: the completed and dead lists as jobbridge follows them
        self.histories = AutumnHistories(client, source, self.keys)
        self.operator = OperatorLog(
            client,
            source,
            OperatorKeys(jobbridge_prefix, "autumn", key_prefix),
            _lifecycle_copy(source),
        )
        self._scripts = bind(client, __name__.rpartition(".")[0])

    # ---------------------------------------------------------------- queues

    @property
    def queues(self) -> tuple[str, ...]:
        """Configured queues in their order, then discovered ones ("default" first)."""
        return self.all_queues()[:MAX_QUEUES]

    def all_queues(self) -> tuple[str, ...]:
        """Every queue of the source, shown or not."""
        extra = (q for q in self.discovery.names if q not in self.configured_queues)
        return (*self.configured_queues, *extra)

    @property
    def discovery_passes(self) -> int:
        """Completed discovery passes over the keyspace."""
        return self.discovery.passes

    def _note_candidates(self, names: Iterable[str]) -> None:
        """Queue names read from records: learned only once discovery finds their list."""
        for name in names:
            if len(self._candidates) >= MAX_CANDIDATES:
                return
            if name and len(name) <= MAX_NAME_CHARS and name not in self.discovery:
                self._candidates.setdefault(name, None)

    async def refresh_queues(self) -> None:
        """One step of a resumable ``SCAN MATCH <prefix>:queue*``, plus a check of queue
        names read from records; never run per request."""
        await self.discovery.step()

    async def _discovery_step(self, cursor: int) -> tuple[int, list[str]]:
        """The queues among one SCAN step's keys and some candidates: the lists."""
        cursor, found = await self.client.scan(
            cursor, match=self.keys.queue_pattern, count=DISCOVERY_SCAN_COUNT
        )
        names = [self.keys.queue_name_of_key(key_text(key)) for key in found]
        checks = dict.fromkeys(n for n in names if n is not None and len(n) <= MAX_NAME_CHARS)
        for name in list(self._candidates)[:CANDIDATES_PER_STEP]:
            del self._candidates[name]
            checks.setdefault(name, None)
        if not checks:
            return int(cursor), []
        # Only lists are queues; anything else under the pattern would make LLEN fail.
        pipe = self.client.pipeline(transaction=False)
        for name in checks:
            pipe.type(self.keys.queue(name))
        kinds = await pipe.execute()
        return int(cursor), [n for n, kind in zip(checks, kinds, strict=True) if kind == b"list"]

    async def discover_queues(self, max_steps: int = 10_000) -> None:
        """Run discovery steps until one full pass completes (or ``max_steps``)."""
        await self.discovery.run(max_steps)

    # ---------------------------------------------------------------- reads

    async def counters(self) -> Counters:
        async with self.histories.lock:
            base = await self._read_base(None)
        oldest = await self._oldest_enqueued(base)
        return self._counters(base, oldest)

    async def snapshot(self, query: SnapshotQuery) -> Snapshot:
        async with self.histories.lock:
            base = await self._read_base(query)
            histories = {
                which: await self._history_page(which, query, base.now_ms)
                for which in (ListName.COMPLETED, ListName.FAILED)
            }
        enqueued_ids = await self._enqueued_ids(base, query)
        page_ids = [
            *(m for m, _ in base.delayed_page),
            *(m for m, _ in base.processing_page),
            *(i for _, i in enqueued_ids),
        ]
        oldest = await self._oldest_enqueued(base)
        bodies = await self.read_values([self.keys.record(i) for i in page_ids], ROW_BYTES)
        by_id = dict(zip(page_ids, bodies, strict=True))
        lists = {
            ListName.ENQUEUED: await self._enqueued_page(base, query, enqueued_ids, by_id),
            ListName.SCHEDULED: await self._scheduled_page(base, query, by_id),
            ListName.RUNNING: await self._running_page(base, query, by_id),
            **histories,
        }
        self._note_candidates(
            j.queue for page in lists.values() for j in page.items if j.problem is None
        )
        return Snapshot(
            source=self.source,
            system="autumn",
            taken_at=datetime.fromtimestamp(base.now_ms / 1000, tz=UTC),
            counters=self._counters(base, oldest),
            lists=lists,
            schedules=(),
            history_limit=HISTORY_LIMIT,
        )

    async def _read_base(self, query: SnapshotQuery | None) -> _Base:
        """One pipeline: every count, the oldest id per queue, the zset pages, the history
        probes; then the histories brought up to date. Runs under the lock."""
        queues = self.queues
        keys = self.keys
        now = now_ms()
        pipe = self.client.pipeline(transaction=False)
        for name in queues:
            pipe.llen(keys.queue(name))
            pipe.lindex(keys.queue(name), -1)
        pipe.zcard(keys.delayed)
        pipe.zcard(keys.processing)
        pipe.zcard(keys.blocked)
        # processing scores are claim time + visibility timeout: the claim's deadline
        pipe.zcount(keys.processing, "-inf", now)
        self.histories.probe(pipe)
        scheduled = 0 if query is None else query.rows(ListName.SCHEDULED)
        running = 0 if query is None else query.rows(ListName.RUNNING)
        if query is not None and scheduled:
            start = query.offset(ListName.SCHEDULED)
            pipe.zrange(keys.delayed, start, start + scheduled - 1, withscores=True)
        if query is not None and running:
            start = query.offset(ListName.RUNNING)
            pipe.zrevrange(keys.processing, start, start + running - 1, withscores=True)
        replies = [ok(r) for r in await pipe.execute(raise_on_error=False)]
        base = _Base(now_ms=now, queues=queues, hidden_queues=len(self.all_queues()) - len(queues))
        broken: dict[str, str] = {}

        def take(reply: object, key: str, kind: str, default: Any) -> Any:
            if is_wrongtype(reply):
                broken[key] = kind
                return default
            return reply

        for index, name in enumerate(queues):
            key = keys.queue(name)
            base.lengths[name] = int(take(replies[2 * index], key, "list", 0))
            tail = take(replies[2 * index + 1], key, "list", None)
            if tail is not None:
                base.oldest_ids[name] = key_text(tail)
        rest = replies[2 * len(queues) :]
        base.delayed = int(take(rest[0], keys.delayed, "zset", 0))
        base.processing = int(take(rest[1], keys.processing, "zset", 0))
        base.blocked = int(take(rest[2], keys.blocked, "zset", 0))
        base.overdue = int(take(rest[3], keys.processing, "zset", 0))
        probes = rest[4:10]
        pages = iter(rest[10:])
        if scheduled:
            base.delayed_page = _scored(take(next(pages), keys.delayed, "zset", []))
        if running:
            base.processing_page = _scored(take(next(pages), keys.processing, "zset", []))
        await self.histories.update(probes, broken)
        if broken:
            base.problems = await self._key_problems(broken)
        base.completed_24h = self.histories.in_window(ListName.COMPLETED, now)
        base.failed_7d = self.histories.in_window(ListName.FAILED, now)
        base.completed_kept = len(self.histories.lists[ListName.COMPLETED].entries)
        base.failed_kept = len(self.histories.lists[ListName.FAILED].entries)
        return base

    async def _key_problems(self, broken: dict[str, str]) -> tuple[str, ...]:
        """Name each key that is not the type Autumn gives it, and forget such queues."""
        for key in broken:
            name = self.keys.queue_name_of_key(key)
            if name is not None:
                self.discovery.forget(name)
        return tuple(await type_problems(self.client, broken))

    async def read_values(
        self, keys: Sequence[str], first: int = ROW_BYTES, budget: int | None = None
    ) -> list[Value]:
        """``values.read_strings`` with this page's budget unless another is given."""
        return await read_strings(
            self.client, keys, first, PAGE_BYTES if budget is None else budget
        )

    async def _oldest_enqueued(self, base: _Base) -> dict[str, int | None]:
        """Enqueued time of each queue's oldest job, re-reading only records that changed."""
        fresh = {
            q: i for q, i in base.oldest_ids.items() if self._oldest.get(q, ("", None))[0] != i
        }
        if fresh:
            values = await self.read_values(
                [self.keys.record(i) for i in fresh.values()], ROW_BYTES
            )
            pacer = Pacer()
            for (queue, job_id), value in zip(fresh.items(), values, strict=True):
                enqueued = records.enqueued_ms(value) if isinstance(value, bytes) else None
                self._oldest[queue] = (job_id, enqueued)
                await pacer.tick()
        for queue in list(self._oldest):
            if queue not in base.oldest_ids:
                del self._oldest[queue]
        return {q: self._oldest[q][1] for q in base.oldest_ids}

    async def _enqueued_ids(self, base: _Base, query: SnapshotQuery) -> list[tuple[str, str]]:
        """The page of the queue lists concatenated in priority order."""
        parts = spans(
            [(name, base.lengths[name]) for name in base.queues],
            query.offset(ListName.ENQUEUED),
            query.rows(ListName.ENQUEUED),
        )
        if not parts:
            return []
        pipe = self.client.pipeline(transaction=False)
        for part in parts:
            # Autumn LPUSHes and its workers take the right end: the newest is at index 0.
            pipe.lrange(self.keys.queue(part.key), *part.lrange(newest_at_tail=False))
        replies = await pipe.execute(raise_on_error=False)
        out = []
        for part, members in zip(parts, replies, strict=True):
            members = ok(members)
            if not is_wrongtype(members):
                out += [(part.key, key_text(member)) for member in members]
        return out

    def _counters(self, base: _Base, oldest: dict[str, int | None]) -> Counters:
        per_queue = []
        ages: list[float] = []
        for name in base.queues:
            age = None
            enqueued = ms_to_datetime(oldest.get(name))
            if enqueued is not None:
                age = max(0.0, base.now_ms / 1000 - enqueued.timestamp())
                ages.append(age)
            per_queue.append(
                QueueCounters(name=name, enqueued=base.lengths[name], oldest_enqueued_age_s=age)
            )
        problems = base.problems
        if base.hidden_queues:
            problems += (
                f"{base.hidden_queues} more queues exist than the {MAX_QUEUES} shown; "
                "list the ones to watch in the source's queues setting",
            )
        return Counters(
            enqueued=sum(base.lengths.values()),
            scheduled=base.delayed,
            running=base.processing,
            completed_24h=base.completed_24h,
            failed_7d=base.failed_7d,
            oldest_enqueued_age_s=max(ages) if ages else None,
            queues=tuple(per_queue),
            blocked=base.blocked,
            running_overdue=base.overdue,
            problems=problems,
            completed_kept=base.completed_kept,
            failed_kept=base.failed_kept,
        )

    # ---------------------------------------------------------------- rows

    async def _rows(
        self,
        items: Sequence[tuple[str, Value, JobStatus, str, int | None]],
    ) -> list[JobRecord]:
        """Rows of live records: (id, value read, status, raw status, due time in ms)."""
        rows = []
        pacer = Pacer()
        for job_id, value, status, raw_status, score in items:
            if isinstance(value, Unread):
                rows.append(self.unread_row(job_id, status, raw_status, value))
            elif value is None:
                rows.append(self._row(None, job_id, status, raw_status, score))
            else:
                rows.append(
                    await offload.decode(
                        records.live_row, value, self.source, job_id, status, raw_status, score
                    )
                )
            await pacer.tick()
        return rows

    def _row(
        self,
        body: bytes | None,
        job_id: str,
        status: JobStatus,
        raw_status: str,
        due: int | None = None,
    ) -> JobRecord:
        return records.live_row(body, self.source, job_id, status, raw_status, due)

    def unread_row(
        self, job_id: str, status: JobStatus, raw_status: str, value: Unread
    ) -> JobRecord:
        # A record too large to read can still be canceled; one of another type cannot
        # (the script refuses it), so its row offers nothing and says why.
        actions = (Action.CANCEL,) if status in _WAITING and not value.wrong_type else ()
        return JobRecord(
            source=self.source,
            system="autumn",
            id=job_id,
            name="",
            queue="",
            status=status,
            raw_status=raw_status,
            actions=actions,
            problem=f"not read: {value.reason}",
        )

    async def _enqueued_page(
        self,
        base: _Base,
        query: SnapshotQuery,
        ids: list[tuple[str, str]],
        bodies: dict[str, Value],
    ) -> Page:
        rows = await self._rows(
            [(i, bodies.get(i), JobStatus.ENQUEUED, records.RAW_QUEUE, None) for _, i in ids]
        )
        items = tuple(_where_found(row, queue) for row, (queue, _) in zip(rows, ids, strict=True))
        return _page(items, sum(base.lengths.values()), query, ListName.ENQUEUED)

    async def _scheduled_page(
        self, base: _Base, query: SnapshotQuery, bodies: dict[str, Value]
    ) -> Page:
        rows = await self._rows(
            [
                (job_id, bodies.get(job_id), JobStatus.SCHEDULED, records.RAW_DELAYED, due)
                for job_id, due in base.delayed_page
            ]
        )
        rows = [
            job_page.with_score_problem(row, due, "delayed")
            for row, (_, due) in zip(rows, base.delayed_page, strict=True)
        ]
        return _page(tuple(rows), base.delayed, query, ListName.SCHEDULED)

    async def _running_page(
        self, base: _Base, query: SnapshotQuery, bodies: dict[str, Value]
    ) -> Page:
        rows = await self._rows(
            [
                (job_id, bodies.get(job_id), JobStatus.RUNNING, records.RAW_PROCESSING, None)
                for job_id, _ in base.processing_page
            ]
        )
        items = [
            job_page.with_deadline(row, deadline, base.now_ms)
            for row, (_, deadline) in zip(rows, base.processing_page, strict=True)
        ]
        # Autumn re-sorts the page by started_at, newest first.
        epoch = datetime.fromtimestamp(0, tz=UTC)
        items.sort(key=lambda j: j.started_at or epoch, reverse=True)
        return _page(tuple(items), base.processing, query, ListName.RUNNING)

    # ---------------------------------------------------------------- histories

    async def _history_page(self, which: ListName, query: SnapshotQuery, now: int) -> Page:
        """One page of a history window (under the histories' lock)."""
        rows, total = await self.histories.page_rows(
            which, query.offset(which), query.rows(which), now
        )
        return _page(tuple(rows), total, query, which)

    # ---------------------------------------------------------------- job detail

    async def job(self, job_id: str) -> JobDetail | None:
        return await job_page.job(self, job_id)

    # ---------------------------------------------------------------- lifecycle

    async def lifecycle(self, limit: int) -> list[LifecycleEntry]:
        """The newest operator lifecycle entries of this source."""
        return await self.operator.lifecycle(limit)

    # ---------------------------------------------------------------- actions

    @property
    def scripts(self) -> BoundScripts:
        """The ``autumn/lua/*.lua`` action scripts, bound to this client."""
        return self._scripts

    async def retry(self, job_id: str, actor: str) -> ActionResult:
        return await actions.retry(self, job_id, actor)

    async def discard(self, job_id: str, actor: str) -> ActionResult:
        return await actions.discard(self, job_id, actor)

    async def cancel(self, job_id: str, actor: str) -> ActionResult:
        return await actions.cancel(self, job_id, actor)

    async def finished_since(self, cursor: str | None, *, limit: int) -> FinishedBatch:
        """Entries newly pushed to completed and dead (chart series; see finished_feed)."""
        return await finished_feed.finished_since(self.client, self.keys, cursor, limit)

    async def close(self) -> None:
        await self.client.aclose()


# -------------------------------------------------------------------- helpers

_WAITING = frozenset(
    {JobStatus.ENQUEUED, JobStatus.SCHEDULED, JobStatus.RETRYING, JobStatus.BLOCKED}
)


def _scored(members: Iterable[tuple[bytes, float]]) -> list[tuple[str, int | None]]:
    return [(key_text(member), score_ms(score)) for member, score in members]


def _where_found(row: JobRecord, queue: str) -> JobRecord:
    """An enqueued row keeps the queue whose list holds it; a record naming another is flagged."""
    if row.queue == queue or (row.problem is not None and not row.queue):
        return row
    if not row.queue:
        return replace(row, queue=queue)
    problem = f"it waits in queue {queue} but its record names queue {row.queue}"
    return replace(
        row,
        queue=queue,
        problem=f"{row.problem}; {problem}" if row.problem else problem,
    )


def _page(items: tuple[JobRecord, ...], total: int, query: SnapshotQuery, which: ListName) -> Page:
    return Page(
        items=items,
        total=total,
        page=query.page(which),
        per_page=query.size(which),
        skipped=sum(1 for j in items if j.problem is not None),
    )


@dataclass(slots=True)
class _Base:
    """What the first read of a snapshot or counters found."""

    now_ms: int
    queues: tuple[str, ...]
    hidden_queues: int = 0
    lengths: dict[str, int] = field(default_factory=dict)
    oldest_ids: dict[str, str] = field(default_factory=dict)
    delayed: int = 0
    processing: int = 0
    blocked: int = 0
    #: processing members whose deadline has passed
    overdue: int = 0
    delayed_page: list[tuple[str, int | None]] = field(default_factory=list)
    processing_page: list[tuple[str, int | None]] = field(default_factory=list)
    #: completed in the last 24 h, failed in the last 7 days
    completed_24h: int = 0
    failed_7d: int = 0
    #: entries Autumn keeps in each history (at most HISTORY_LIMIT)
    completed_kept: int = 0
    failed_kept: int = 0
    #: keys that could not be read, in words
    problems: tuple[str, ...] = ()
