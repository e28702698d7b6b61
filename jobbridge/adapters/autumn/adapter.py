"""The Autumn adapter: Autumn's Redis job keys, read and acted on.

Reads follow Autumn's own admin backend within fixed bounds: counters and the history probes
in one pipeline, one range read per list page, and one pipelined, size-capped read of the
page's records. The completed and dead lists (bounded by Autumn to 1,000 entries) are followed
incrementally (jobbridge.adapters.autumn.history): a poll reads what changed, not what is
kept. Actions are one Lua script each (``autumn/lua/*.lua``).

Identity: a job is where Redis holds it — a queue member, a sorted-set member, the key of its
record — never what its record says; a record whose inner id names another job is flagged.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from jobbridge import offload
from jobbridge.adapters import times
from jobbridge.adapters.autumn import records
from jobbridge.adapters.autumn.history import (
    HISTORY_LIMIT,
    AutumnHistories,
    as_identity,
)
from jobbridge.adapters.autumn.history import STATUS as HISTORY_STATUS
from jobbridge.adapters.autumn.keys import (
    DEFAULT_KEY_PREFIX,
    DEFAULT_QUEUE,
    AutumnKeys,
    entry_digest,
)
from jobbridge.adapters.fields import (
    MAX_NAME_CHARS,
    key_text,
    ms_to_datetime,
    now_ms,
    score_ms,
    text,
)
from jobbridge.adapters.keyguard import Refusal, forged, refuse, text_problem, unknown
from jobbridge.adapters.operator_log import (
    MAX_LIFECYCLE_BYTES,
    OperatorKeys,
    OperatorLog,
    RecordReader,
)
from jobbridge.adapters.outcomes import changed_too_often, result, run_script
from jobbridge.adapters.paging import spans
from jobbridge.adapters.payloads import DETAIL_CHARS
from jobbridge.adapters.scripts import bind
from jobbridge.adapters.values import (
    MAX_VALUE_BYTES,
    NOT_A_STRING,
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
    Outcome,
    Page,
    QueueCounters,
    Snapshot,
    SnapshotQuery,
    System,
)
from jobbridge.pacing import Pacer

if TYPE_CHECKING:
    from redis.asyncio import Redis

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
#: Tries of an action whose re-check found the record changed under it.
ACTION_TRIES = 3
#: the lifecycle entry kind of retry and discard: they act on a dead entry carrying the id,
#: not on a live job of that id (operator.OperatorKeys.lifecycle)
DEAD = "dead"
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
        #: discovered queue -> when its key was last seen holding a list (monotonic seconds)
        self._discovered: dict[str, float] = {}
        if not self.configured_queues:
            self._discovered[DEFAULT_QUEUE] = float("inf")
        #: queue names read from records, checked by the next discovery step
        self._candidates: dict[str, None] = {}
        self._scan_cursor = 0
        self._pass_started = time.monotonic()
        #: completed discovery passes over the keyspace
        self.discovery_passes = 0
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
        return self._all_queues()[:MAX_QUEUES]

    def _all_queues(self) -> tuple[str, ...]:
        extra = sorted(
            (q for q in self._discovered if q not in self.configured_queues),
            key=lambda q: (q != DEFAULT_QUEUE, q),
        )
        return (*self.configured_queues, *extra)

    def _note_candidates(self, names: Iterable[str]) -> None:
        """Queue names read from records: learned only once discovery finds their list."""
        for name in names:
            if len(self._candidates) >= MAX_CANDIDATES:
                return
            if name and len(name) <= MAX_NAME_CHARS and name not in self._discovered:
                self._candidates.setdefault(name, None)

    async def refresh_queues(self) -> None:
        """One step of a resumable ``SCAN MATCH <prefix>:queue*``, plus a check of queue
        names read from records; never run per request."""
        cursor, found = await self.client.scan(
            self._scan_cursor, match=self.keys.queue_pattern, count=DISCOVERY_SCAN_COUNT
        )
        names = [self.keys.queue_name_of_key(key_text(key)) for key in found]
        checks = dict.fromkeys(n for n in names if n is not None and len(n) <= MAX_NAME_CHARS)
        for name in list(self._candidates)[:CANDIDATES_PER_STEP]:
            del self._candidates[name]
            checks.setdefault(name, None)
        if checks:
            # Only lists are queues; anything else under the pattern would make LLEN fail.
            pipe = self.client.pipeline(transaction=False)
            for name in checks:
                pipe.type(self.keys.queue(name))
            kinds = await pipe.execute()
            now = time.monotonic()
            for name, kind in zip(checks, kinds, strict=True):
                if kind == b"list":
                    self._discovered[name] = now
        self._scan_cursor = int(cursor)
        if self._scan_cursor == 0:
            self._end_pass()

    def _end_pass(self) -> None:
        """Forget discovered queues whose key this whole pass did not see, after a while."""
        now = time.monotonic()
        for name, seen in list(self._discovered.items()):
            if seen < self._pass_started and now - seen > QUEUE_FORGET_S:
                del self._discovered[name]
        self._pass_started = now
        self.discovery_passes += 1

    async def discover_queues(self, max_steps: int = 10_000) -> None:
        """Run discovery steps until one full pass completes (or ``max_steps``)."""
        passes = self.discovery_passes
        for _ in range(max_steps):
            await self.refresh_queues()
            if self.discovery_passes > passes:
                return

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
        bodies = await self._read_values([self.keys.record(i) for i in page_ids], ROW_BYTES)
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
        base = _Base(now_ms=now, queues=queues, hidden_queues=len(self._all_queues()) - len(queues))
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
            if name is not None and self._discovered.get(name) != float("inf"):
                self._discovered.pop(name, None)
        return tuple(await type_problems(self.client, broken))

    async def _read_values(
        self, keys: Sequence[str], first: int, budget: int | None = None
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
            values = await self._read_values(
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
                rows.append(self._unread_row(job_id, status, raw_status, value))
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

    def _unread_row(
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
            _with_score_problem(row, due, "delayed")
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
            _with_deadline(row, deadline, base.now_ms)
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
        if entry_digest(job_id) is None:
            found = await self._live_job(job_id)
            if found is not None:
                return found
        return await self._history_job(job_id)

    async def _live_job(self, job_id: str) -> JobDetail | None:
        """A job by the keys its id names: its dead-record, its record, its lifecycle entry
        (one of another type is a problem on the page, not an unavailable Redis)."""
        detail, problem = await self._live_parts(job_id)
        if problem is None:
            return detail
        if detail is None:
            return self.operator.unreadable(job_id, problem)
        return replace(detail, job=times.with_problem(detail.job, problem))

    async def _live_parts(self, job_id: str) -> tuple[JobDetail | None, str | None]:
        keys = self.keys
        pipe = self.client.pipeline(transaction=False)
        pipe.zscore(keys.processing, job_id)
        pipe.zscore(keys.delayed, job_id)
        pipe.zscore(keys.blocked, job_id)
        pipe.getrange(self.operator.keys.lifecycle(job_id), 0, MAX_LIFECYCLE_BYTES - 1)
        pipe.getrange(self.operator.keys.lifecycle(job_id, DEAD), 0, MAX_LIFECYCLE_BYTES - 1)
        replies = [ok(r) for r in await pipe.execute(raise_on_error=False)]
        processing, delayed, blocked, job_raw, dead_raw = (
            None if is_wrongtype(r) else r for r in replies
        )
        problems = [
            f"jobbridge's lifecycle key {key} {NOT_A_STRING}"
            for key, reply in (
                (self.operator.keys.lifecycle(job_id), replies[3]),
                (self.operator.keys.lifecycle(job_id, DEAD), replies[4]),
            )
            if is_wrongtype(reply)
        ]
        problem = "; ".join(problems) or None
        dead, body = await self._read_values(
            [keys.dead_record(job_id), keys.record(job_id)], ROW_BYTES, budget=MAX_VALUE_BYTES
        )
        # What was done to the live job (cancel) and to a dead entry of its id (retry,
        # discard) are kept apart: a dead entry naming a live job's id never relabels it.
        of_job = self.operator.parse(job_raw or None, job_id)
        of_dead = self.operator.parse(dead_raw or None, job_id)
        if dead is not None:
            failed = (JobStatus.FAILED, records.RAW_DEAD, None)
            return await self._live_detail(job_id, dead, failed, of_dead), problem
        if body is not None:
            place = _live_place(processing, delayed, blocked)
            return await self._live_detail(job_id, body, place, of_job), problem
        for lifecycle in (of_job, of_dead):
            if lifecycle is not None and lifecycle.record is not None:
                preview = lifecycle.record.payload_preview
                return (
                    _detail(lifecycle.record, None, lifecycle, preview, "json (preview)"),
                    problem,
                )
        return None, problem

    async def _live_detail(
        self,
        job_id: str,
        value: bytes | Unread,
        place: tuple[JobStatus, str, float | None],
        lifecycle: LifecycleEntry | None,
    ) -> JobDetail:
        status, raw_status, score = place
        if isinstance(value, Unread):
            job = self._unread_row(job_id, status, raw_status, value)
            return JobDetail(
                job=job,
                payload="",
                payload_kind="not read",
                lifecycle=(lifecycle,) if lifecycle is not None else (),
            )
        at = None if score is None else score_ms(score)
        due = None if status is JobStatus.RUNNING else at
        job, payload, kind = await offload.decode(
            records.detail, value, self.source, job_id, status, raw_status, due
        )
        if status is JobStatus.RUNNING:
            job = _with_deadline(job, at, now_ms())
        elif score is not None:
            job = _with_score_problem(job, at, raw_status)
        return _detail(job, value, lifecycle, payload, kind)

    async def _history_job(self, job_id: str) -> JobDetail | None:
        """A completed or failed entry by its entry id or the id it records."""
        found = await self.histories.find(job_id)
        if found is None:
            return None
        entry, identity, problem = found
        status, raw_status = HISTORY_STATUS[entry.which]
        row, payload, kind = await offload.decode(
            records.detail, entry.raw, self.source, "", status, raw_status, None, False
        )
        job = as_identity(row, identity, problem, entry.which is ListName.FAILED)
        return _detail(job, entry.raw, None, payload, kind)

    # ---------------------------------------------------------------- lifecycle

    async def lifecycle(self, limit: int) -> list[LifecycleEntry]:
        """The newest operator lifecycle entries of this source."""
        return await self.operator.lifecycle(limit)

    # ---------------------------------------------------------------- actions

    async def retry(self, job_id: str, actor: str) -> ActionResult:
        keys = self.keys
        for _ in range(ACTION_TRIES):
            stored = await self._action_value(keys.dead_record(job_id))
            if isinstance(stored, Unread):
                if not await self._other_type(keys.dead_record(job_id)):
                    return _too_large(Action.RETRY, job_id, stored)
            mode, expected = "retry", b""
            plan = records.RetryPlan("corrupt", "", DEFAULT_QUEUE, None)
            new_id = str(uuid.uuid4())
            now = now_ms()
            if isinstance(stored, Unread):
                pass  # a key of another type: the script refuses it, naming the key
            elif stored is None:
                count, found = await self.histories.failed_entry(job_id)
                if count > 1:
                    return _ambiguous(Action.RETRY, job_id, count)
                if found is not None:
                    mode, expected = "malformed", found.raw
            else:
                expected = stored
                plan = await offload.decode(records.retry_plan, stored, new_id, now)
                mode = plan.mode
                refusal = await self._queue_refusal(plan.queue) if mode == "retry" else None
                if refusal is not None:
                    return await refuse(
                        self._scripts, self.operator, Action.RETRY, job_id, actor, refusal
                    )
            result = await run_script(
                self._scripts["retry"],
                action=Action.RETRY,
                job_id=job_id,
                actor=actor,
                now=now,
                keys=[
                    keys.dead_record(job_id),
                    keys.dead,
                    keys.record(new_id),
                    keys.queue(plan.queue),
                    keys.unique(plan.lock),
                ],
                args=[
                    expected,
                    mode,
                    new_id,
                    plan.record,
                    "1" if plan.lock else "0",
                ],
                operator=self.operator,
                words=_WORDS,
                entry=DEAD,
            )
            if result is not None:
                return result
        return changed_too_often(Action.RETRY, job_id)

    async def _queue_refusal(self, queue: str) -> Refusal | None:
        """Why a retry may not push onto the queue a dead-record names; None for one of the
        source's queues: configured, discovered, or a list now (a queue with jobs waiting).
        A list no worker's schedule names is never drained (docs/autumn.md §5.8)."""
        problem = text_problem(queue)
        if problem is not None:
            return forged("queue", queue, problem)
        if queue in self._all_queues():
            return None
        if await self.client.type(self.keys.queue(queue)) == b"list":
            return None
        return unknown("queue", queue, "queues (configured, or found holding jobs)")

    async def _action_value(self, key: str) -> bytes | Unread | None:
        (value,) = await self._read_values([key], ROW_BYTES, budget=MAX_VALUE_BYTES)
        return value

    async def _other_type(self, key: str) -> bool:
        """Whether a key holds another type than a string (its script refuses it)."""
        return key_text(await self.client.type(key)) not in ("string", "none")

    async def discard(self, job_id: str, actor: str) -> ActionResult:
        keys = self.keys
        entry = b""
        recorded = job_id
        stored = await self._action_value(keys.dead_record(job_id))
        if isinstance(stored, Unread) and not await self._other_type(keys.dead_record(job_id)):
            return _too_large(Action.DISCARD, job_id, stored)
        if stored is None:
            count, found = await self.histories.failed_entry(job_id)
            if count > 1:
                return _ambiguous(Action.DISCARD, job_id, count)
            if found is not None:
                entry = found.raw
                recorded = found.entry.summary.recorded_id or job_id
        result = await run_script(
            self._scripts["discard"],
            action=Action.DISCARD,
            job_id=job_id,
            actor=actor,
            keys=[keys.dead_record(recorded), keys.dead],
            args=[entry],
            operator=self.operator,
            words=_WORDS,
            entry=DEAD,
        )
        return result or changed_too_often(Action.DISCARD, job_id)

    async def cancel(self, job_id: str, actor: str) -> ActionResult:
        keys = self.keys
        # As Autumn: a non-atomic read to learn the queue and lock; the script's removals
        # are the re-check (a claimed job is in no waiting list any more).
        stored = await self._action_value(keys.record(job_id))
        queue, lock = DEFAULT_QUEUE, None
        if isinstance(stored, bytes):
            queue, lock = await offload.decode(records.cancel_plan, stored)
        # P:queue:<name> is Autumn's own shape and the script only takes this id out of it,
        # so any queue the record names will do, as long as it is a name at all.
        problem = text_problem(queue)
        if problem is not None:
            refusal = forged("queue", queue, problem)
            return await refuse(self._scripts, self.operator, Action.CANCEL, job_id, actor, refusal)
        result = await run_script(
            self._scripts["cancel"],
            action=Action.CANCEL,
            job_id=job_id,
            actor=actor,
            keys=[
                keys.record(job_id),
                keys.queue(queue),
                keys.blocked,
                keys.delayed,
                keys.processing,
                keys.unique(lock),
            ],
            args=["1" if lock else "0"],
            operator=self.operator,
            words=_WORDS,
        )
        return result or changed_too_often(Action.CANCEL, job_id)

    async def close(self) -> None:
        await self.client.aclose()


# -------------------------------------------------------------------- helpers

_WAITING = frozenset(
    {JobStatus.ENQUEUED, JobStatus.SCHEDULED, JobStatus.RETRYING, JobStatus.BLOCKED}
)


def _scored(members: Iterable[tuple[bytes, float]]) -> list[tuple[str, int | None]]:
    return [(key_text(member), score_ms(score)) for member, score in members]


def _live_place(
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


def _with_deadline(job: JobRecord, deadline: int | None, now: int) -> JobRecord:
    """Mark a running job whose claim deadline (its processing score) has passed."""
    if deadline is None or ms_to_datetime(deadline) is None:
        return _with_score_problem(job, None, "processing")
    if deadline > now:
        return job
    return replace(job, overdue_since=ms_to_datetime(deadline))


def _with_score_problem(job: JobRecord, score: int | None, where: str) -> JobRecord:
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


#: Autumn's own sentences for script replies (jobbridge.adapters.outcomes has the shared ones)
_WORDS: dict[str | Outcome, str] = {
    "not waiting": "Job {id} is not waiting in a queue, the delayed set or the blocked set.",
    Outcome.CORRUPT: "Job {id}'s stored record is invalid or is not its own failed record; it "
    "cannot be retried (discard it instead).",
    Outcome.CONFLICT: "An equivalent unique job ({detail}) is already pending or running; "
    "job {id} was not retried.",
}


def _too_large(action: Action, job_id: str, value: Unread) -> ActionResult:
    return result(
        action, Outcome.CORRUPT, job_id, f"Job {job_id}'s record was not read: {value.reason}."
    )


def _ambiguous(action: Action, job_id: str, count: int) -> ActionResult:
    return result(
        action,
        Outcome.CONFLICT,
        job_id,
        f"{count} failed entries name job {job_id}; {action.value} each by its entry id "
        "(shown on its row) instead. Nothing was changed.",
    )
