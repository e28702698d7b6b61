"""The Autumn adapter: Autumn's Redis job keys (spec/autumn-redis.md), read and acted on.

Reads follow Autumn's own admin backend (spec §4) within fixed bounds: counters in one
pipeline, one range read per list page and one MGET for its records. The completed and dead
lists are bounded by Autumn itself (1,000 entries), so their 24 h / 7 d windows are computed
over the whole list, as Autumn does, with decoded entries cached by their exact bytes.
Actions are one Lua script each (``lua/autumn_*.lua``).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, cast

from jobbridge.adapters import autumn_records as records
from jobbridge.adapters.base import (
    AUDIT_LIMIT,
    LIFECYCLE_LIMIT,
    LIFECYCLE_TTL_S,
    MAX_NAME_CHARS,
    RECORD_COPY_CAP,
    audit_key,
    client_location,
    glob_escape,
    ms_to_datetime,
    now_ms,
    parse_audit,
    redis_errors,
    text,
)
from jobbridge.adapters.scripts import bind
from jobbridge.model import (
    COMPLETED_WINDOW,
    FAILED_WINDOW,
    Action,
    ActionResult,
    AuditEntry,
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
from jobbridge.payloads import DETAIL_CHARS, json_detail

if TYPE_CHECKING:
    from redis.asyncio import Redis

DEFAULT_KEY_PREFIX = "autumn:jobs"
#: Autumn's DEFAULT_JOB_ADMIN_HISTORY_LIMIT: completed and dead are trimmed to this
HISTORY_LIMIT = 1000
#: Queues shown at most per source, so "O(number of queues)" stays a small number even
#: when hostile records name thousands of queues.
MAX_QUEUES = 100
#: Keys one discovery step asks SCAN to look at.
DISCOVERY_SCAN_COUNT = 1000
#: Decoded history entries kept, per adapter.
HISTORY_CACHE_SIZE = 4 * HISTORY_LIMIT
#: Tries of an action whose re-check found the record changed under it.
ACTION_TRIES = 3


@dataclass(frozen=True, slots=True)
class AutumnKeys:
    """Key names under one Autumn prefix, plus jobbridge's own keys for that source."""

    prefix: str
    jobbridge_prefix: str

    def queue(self, name: str) -> str:
        name = name.strip()
        if not name or name == records.DEFAULT_QUEUE:
            return f"{self.prefix}:queue"
        return f"{self.prefix}:queue:{name}"

    def record(self, job_id: str) -> str:
        return f"{self.prefix}:record:{job_id}"

    def dead_record(self, job_id: str) -> str:
        return f"{self.prefix}:dead-record:{job_id}"

    def unique(self, lock: tuple[str, str] | None) -> str:
        # Autumn passes this placeholder for jobs without a lock; it is never written.
        if lock is None:
            return f"{self.prefix}:unique:-"
        return f"{self.prefix}:unique:{lock[0]}:{lock[1]}"

    @property
    def processing(self) -> str:
        return f"{self.prefix}:processing"

    @property
    def delayed(self) -> str:
        return f"{self.prefix}:delayed"

    @property
    def blocked(self) -> str:
        return f"{self.prefix}:blocked"

    @property
    def completed(self) -> str:
        return f"{self.prefix}:completed"

    @property
    def dead(self) -> str:
        return f"{self.prefix}:dead"

    @property
    def queue_pattern(self) -> str:
        """The SCAN pattern of queue keys; the prefix is escaped, since Autumn lets it hold
        ``*?[]\\`` like any other character."""
        return glob_escape(self.prefix) + ":queue*"

    def queue_name_of_key(self, key: str) -> str | None:
        if key == f"{self.prefix}:queue":
            return records.DEFAULT_QUEUE
        head = f"{self.prefix}:queue:"
        if key.startswith(head) and len(key) > len(head):
            return key[len(head) :]
        return None

    # jobbridge's own keys, never inside Autumn's namespace.
    def lifecycle(self, job_id: str) -> str:
        return f"{self.jobbridge_prefix}autumn:{self.prefix}:lifecycle:{job_id}"

    @property
    def lifecycle_list(self) -> str:
        return f"{self.jobbridge_prefix}autumn:{self.prefix}:lifecycle"

    @property
    def audit(self) -> str:
        return audit_key(self.jobbridge_prefix)


@dataclass(frozen=True, slots=True)
class _HistoryEntry:
    job: JobRecord
    #: sort time in ms; for entries with no time of their own, the time of the newer
    #: neighbour (Autumn pushes newest first), so they stay where they were pushed
    time_ms: int


def _parse_lifecycle(raw: bytes | str | None, source: str) -> LifecycleEntry | None:
    if raw is None:
        return None
    try:
        data: Any = json.loads(raw)
        status = JobStatus(data["status"])
        at = ms_to_datetime(int(data["at_ms"])) or datetime.fromtimestamp(0, tz=UTC)
        job_id = str(data["job_id"])
        stored = data.get("record") or None
    except (ValueError, TypeError, KeyError):
        return None
    new_id = str(data.get("new_id") or "") or None
    if isinstance(stored, str):
        record = records.to_job(
            stored, source=source, job_id=job_id, status=status, raw_status=status.value
        )
        record = _with(record, new_id=new_id, actions=())
    else:
        record = JobRecord(
            source=source,
            system="autumn",
            id=job_id,
            name="",
            queue="",
            status=status,
            raw_status=status.value,
            new_id=new_id,
            problem=f"no copy of the record was kept (larger than {RECORD_COPY_CAP} bytes)",
        )
    return LifecycleEntry(
        job_id=job_id,
        status=status,
        at=at,
        actor=str(data.get("actor") or ""),
        new_id=new_id,
        record=record,
    )


def _with(job: JobRecord, **changes: Any) -> JobRecord:
    return replace(job, **changes)


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
        self.keys = AutumnKeys(key_prefix, jobbridge_prefix)
        self.configured_queues = tuple(q.strip() or records.DEFAULT_QUEUE for q in queues or ())
        self._discovered: dict[str, None] = {}
        if not self.configured_queues:
            self._discovered[records.DEFAULT_QUEUE] = None
        self._scan_cursor = 0
        #: completed discovery passes over the keyspace
        self.discovery_passes = 0
        self._decoded: OrderedDict[tuple[str, bytes], JobRecord] = OrderedDict()
        self._scripts = bind(client, "autumn")

    # ---------------------------------------------------------------- queues

    @property
    def queues(self) -> tuple[str, ...]:
        """Configured queues in their order, then discovered ones ("default" first)."""
        extra = sorted(
            (q for q in self._discovered if q not in self.configured_queues),
            key=lambda q: (q != records.DEFAULT_QUEUE, q),
        )
        return (*self.configured_queues, *extra)[:MAX_QUEUES]

    def _learn_queues(self, names: Iterable[str]) -> None:
        for name in names:
            if len(self._discovered) >= MAX_QUEUES:
                return
            if name and len(name) <= MAX_NAME_CHARS:
                self._discovered.setdefault(name, None)

    async def refresh_queues(self) -> None:
        """One step of a resumable ``SCAN MATCH <prefix>:queue*``; never run per request."""
        async with redis_errors(self.source):
            cursor, found = await self.client.scan(
                self._scan_cursor, match=self.keys.queue_pattern, count=DISCOVERY_SCAN_COUNT
            )
            names = [self.keys.queue_name_of_key(text(key) or "") for key in found]
            candidates = [n for n in names if n is not None]
            if candidates:
                # Only lists are queues; a stray string under the pattern must not break LLEN.
                pipe = self.client.pipeline(transaction=False)
                for name in candidates:
                    pipe.type(self.keys.queue(name))
                kinds = await pipe.execute()
                self._learn_queues(
                    n for n, k in zip(candidates, kinds, strict=True) if k == b"list"
                )
        self._scan_cursor = int(cursor)
        if self._scan_cursor == 0:
            self.discovery_passes += 1

    async def discover_queues(self, max_steps: int = 10_000) -> None:
        """Run discovery steps until one full pass completes (or ``max_steps``)."""
        passes = self.discovery_passes
        for _ in range(max_steps):
            await self.refresh_queues()
            if self.discovery_passes > passes:
                return

    # ---------------------------------------------------------------- reads

    async def ping(self) -> None:
        async with redis_errors(self.source):
            await self.client.ping()

    async def counters(self) -> Counters:
        async with redis_errors(self.source):
            base = await self._read_base(None)
            oldest = await self._oldest_records(base)
        return self._counters(base, oldest)

    async def snapshot(self, query: SnapshotQuery) -> Snapshot:
        async with redis_errors(self.source):
            base = await self._read_base(query)
            enqueued_ids = await self._enqueued_ids(base, query)
            ids = [
                *base.oldest_ids.values(),
                *(m for m, _ in base.delayed_page),
                *(m for m, _ in base.processing_page),
                *(i for _, i in enqueued_ids),
            ]
            bodies = await self._records(ids)
        oldest = {q: bodies.get(i) for q, i in base.oldest_ids.items()}
        counters = self._counters(base, oldest)
        lists = {
            ListName.ENQUEUED: self._enqueued_page(base, query, enqueued_ids, bodies),
            ListName.SCHEDULED: self._scheduled_page(base, query, bodies),
            ListName.RUNNING: self._running_page(base, query, bodies),
            ListName.COMPLETED: self._history_page(
                base.completed_entries, query, ListName.COMPLETED
            ),
            ListName.FAILED: self._history_page(base.dead_entries, query, ListName.FAILED),
        }
        self._learn_queues(
            j.queue for page in lists.values() for j in page.items if j.problem is None
        )
        return Snapshot(
            source=self.source,
            system="autumn",
            taken_at=datetime.fromtimestamp(base.now_ms / 1000, tz=UTC),
            counters=counters,
            lists=lists,
            schedules=(),
            history_limit=HISTORY_LIMIT,
        )

    async def _read_base(self, query: SnapshotQuery | None) -> _Base:
        """Round trip 1: every count, the oldest id per queue, and the zset pages."""
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
        pipe.lrange(keys.completed, 0, HISTORY_LIMIT - 1)
        pipe.lrange(keys.dead, 0, HISTORY_LIMIT - 1)
        if query is not None:
            per = query.per_page
            start = query.offset(ListName.SCHEDULED)
            pipe.zrange(keys.delayed, start, start + per - 1, withscores=True)
            start = query.offset(ListName.RUNNING)
            pipe.zrevrange(keys.processing, start, start + per - 1, withscores=True)
        replies = await pipe.execute()
        lengths: dict[str, int] = {}
        oldest_ids: dict[str, str] = {}
        for index, name in enumerate(queues):
            lengths[name] = int(replies[2 * index])
            tail = replies[2 * index + 1]
            if tail is not None:
                oldest_ids[name] = text(tail) or ""
        rest = replies[2 * len(queues) :]
        base = _Base(
            now_ms=now,
            queues=queues,
            lengths=lengths,
            oldest_ids=oldest_ids,
            delayed=int(rest[0]),
            processing=int(rest[1]),
            blocked=int(rest[2]),
            overdue=int(rest[3]),
            completed_entries=self._history(rest[4], ListName.COMPLETED, now),
            dead_entries=self._history(rest[5], ListName.FAILED, now),
        )
        if query is not None:
            base.delayed_page = [(text(m) or "", int(s)) for m, s in rest[6]]
            base.processing_page = [(text(m) or "", int(s)) for m, s in rest[7]]
        return base

    async def _records(self, ids: Sequence[str]) -> dict[str, bytes | None]:
        """One MGET of the records of these ids."""
        if not ids:
            return {}
        bodies = cast(
            "list[bytes | None]", await self.client.mget([self.keys.record(i) for i in ids])
        )
        return dict(zip(ids, bodies, strict=True))

    async def _oldest_records(self, base: _Base) -> dict[str, bytes | None]:
        bodies = await self._records(list(base.oldest_ids.values()))
        return {q: bodies.get(i) for q, i in base.oldest_ids.items()}

    async def _enqueued_ids(self, base: _Base, query: SnapshotQuery) -> list[tuple[str, str]]:
        """Round trip 2: the page of the queue lists concatenated in priority order."""
        offset, need = query.offset(ListName.ENQUEUED), query.per_page
        ranges: list[tuple[str, int, int]] = []
        for name in base.queues:
            length = base.lengths[name]
            if need <= 0:
                break
            if offset >= length:
                offset -= length
                continue
            take = min(need, length - offset)
            ranges.append((name, offset, offset + take - 1))
            need -= take
            offset = 0
        if not ranges:
            return []
        pipe = self.client.pipeline(transaction=False)
        for name, start, stop in ranges:
            pipe.lrange(self.keys.queue(name), start, stop)
        replies = await pipe.execute()
        return [
            (name, text(member) or "")
            for (name, _, _), members in zip(ranges, replies, strict=True)
            for member in members
        ]

    def _counters(self, base: _Base, oldest: dict[str, bytes | None]) -> Counters:
        per_queue = []
        ages: list[float] = []
        for name in base.queues:
            age = None
            enqueued = ms_to_datetime(_enqueued_ms(oldest.get(name)))
            if enqueued is not None:
                age = max(0.0, base.now_ms / 1000 - enqueued.timestamp())
                ages.append(age)
            per_queue.append(
                QueueCounters(name=name, enqueued=base.lengths[name], oldest_enqueued_age_s=age)
            )
        return Counters(
            enqueued=sum(base.lengths.values()),
            scheduled=base.delayed,
            running=base.processing,
            completed_24h=len(base.completed_entries),
            failed_7d=len(base.dead_entries),
            oldest_enqueued_age_s=max(ages) if ages else None,
            queues=tuple(per_queue),
            blocked=base.blocked,
            running_overdue=base.overdue,
        )

    def _history(self, raws: list[bytes], which: ListName, now: int) -> list[_HistoryEntry]:
        """Decode a completed / dead list, keep its window, newest first (Autumn's rules)."""
        if which is ListName.COMPLETED:
            status, raw_status, window = (
                JobStatus.COMPLETED,
                records.RAW_COMPLETED,
                COMPLETED_WINDOW,
            )
        else:
            status, raw_status, window = JobStatus.FAILED, records.RAW_DEAD, FAILED_WINDOW
        cutoff = now - int(window.total_seconds() * 1000)
        entries: list[_HistoryEntry] = []
        newer = now
        for raw in raws:
            job = self._decode_history(raw, which, status, raw_status)
            own = records.sort_time_ms(job)
            if own is None:
                # Autumn sorts these as time 0; a malformed dead entry has no time at all, so
                # place it by its newer neighbour instead of hiding it from the operator.
                own = newer if job.problem else 0
            newer = own
            if own >= cutoff:
                entries.append(_HistoryEntry(job, own))
        entries.sort(key=lambda e: e.time_ms, reverse=True)
        return entries

    def _decode_history(
        self, raw: bytes, which: ListName, status: JobStatus, raw_status: str
    ) -> JobRecord:
        # Keyed by a digest, not the bytes: entries may be megabytes each.
        key = (which.value, hashlib.blake2b(raw, digest_size=16).digest())
        cached = self._decoded.get(key)
        if cached is not None:
            self._decoded.move_to_end(key)
            return cached
        job = records.to_job(
            raw, source=self.source, job_id="", status=status, raw_status=raw_status
        )
        self._decoded[key] = job
        if len(self._decoded) > HISTORY_CACHE_SIZE:
            self._decoded.popitem(last=False)
        return job

    def _enqueued_page(
        self,
        base: _Base,
        query: SnapshotQuery,
        ids: list[tuple[str, str]],
        bodies: dict[str, bytes | None],
    ) -> Page:
        items = tuple(
            self._row(bodies.get(job_id), job_id, JobStatus.ENQUEUED, records.RAW_QUEUE)
            for _, job_id in ids
        )
        return self._page(items, sum(base.lengths.values()), query, ListName.ENQUEUED)

    def _scheduled_page(
        self, base: _Base, query: SnapshotQuery, bodies: dict[str, bytes | None]
    ) -> Page:
        items = tuple(
            self._row(bodies.get(job_id), job_id, JobStatus.SCHEDULED, records.RAW_DELAYED, due)
            for job_id, due in base.delayed_page
        )
        return self._page(items, base.delayed, query, ListName.SCHEDULED)

    def _running_page(
        self, base: _Base, query: SnapshotQuery, bodies: dict[str, bytes | None]
    ) -> Page:
        items = [
            _with_deadline(
                self._row(bodies.get(job_id), job_id, JobStatus.RUNNING, records.RAW_PROCESSING),
                deadline_ms,
                base.now_ms,
            )
            for job_id, deadline_ms in base.processing_page
        ]
        # Autumn re-sorts the page by started_at, newest first.
        epoch = datetime.fromtimestamp(0, tz=UTC)
        items.sort(key=lambda j: j.started_at or epoch, reverse=True)
        return self._page(tuple(items), base.processing, query, ListName.RUNNING)

    def _history_page(
        self, entries: list[_HistoryEntry], query: SnapshotQuery, which: ListName
    ) -> Page:
        start = query.offset(which)
        items = tuple(e.job for e in entries[start : start + query.size(which)])
        return self._page(items, len(entries), query, which)

    @staticmethod
    def _page(
        items: tuple[JobRecord, ...], total: int, query: SnapshotQuery, which: ListName
    ) -> Page:
        return Page(
            items=items,
            total=total,
            page=query.page(which),
            per_page=query.size(which),
            skipped=sum(1 for j in items if j.problem is not None),
        )

    async def job(self, job_id: str) -> JobDetail | None:
        keys = self.keys
        async with redis_errors(self.source):
            pipe = self.client.pipeline(transaction=False)
            pipe.get(keys.record(job_id))
            pipe.get(keys.dead_record(job_id))
            pipe.zscore(keys.processing, job_id)
            pipe.zscore(keys.delayed, job_id)
            pipe.zscore(keys.blocked, job_id)
            pipe.get(keys.lifecycle(job_id))
            body, dead, processing, delayed, blocked, lifecycle_raw = await pipe.execute()
            lifecycle = _parse_lifecycle(lifecycle_raw, self.source)
            stored: bytes | None = dead or body
            if dead is not None:
                job = self._row(dead, job_id, JobStatus.FAILED, records.RAW_DEAD)
            elif body is not None:
                job = self._live_row(body, job_id, processing, delayed, blocked)
            elif lifecycle is not None and lifecycle.record is not None:
                job = lifecycle.record
                stored = None
            else:
                found = await self._find_in_history(job_id)
                if found is None:
                    return None
                job, stored = found
        return self._detail(job, stored, lifecycle)

    def _row(
        self,
        body: bytes | None,
        job_id: str,
        status: JobStatus,
        raw_status: str,
        due: float | None = None,
    ) -> JobRecord:
        return records.to_job(
            body,
            source=self.source,
            job_id=job_id,
            status=status,
            raw_status=raw_status,
            scheduled_for_ms=None if due is None else int(due),
        )

    def _live_row(
        self,
        body: bytes,
        job_id: str,
        processing: float | None,
        delayed: float | None,
        blocked: float | None,
    ) -> JobRecord:
        if processing is not None:
            running = self._row(body, job_id, JobStatus.RUNNING, records.RAW_PROCESSING)
            return _with_deadline(running, int(processing), now_ms())
        if delayed is not None:
            return self._row(body, job_id, JobStatus.SCHEDULED, records.RAW_DELAYED, delayed)
        if blocked is not None:
            return self._row(body, job_id, JobStatus.BLOCKED, records.RAW_BLOCKED, blocked)
        # Not in any zset: a queue list holds it (finding where would cost O(queue depth)).
        return self._row(body, job_id, JobStatus.ENQUEUED, records.RAW_QUEUE)

    async def _find_in_history(self, job_id: str) -> tuple[JobRecord, bytes] | None:
        """Look for the id in the completed and dead lists (bounded by Autumn to 1,000)."""
        pipe = self.client.pipeline(transaction=False)
        pipe.lrange(self.keys.completed, 0, HISTORY_LIMIT - 1)
        pipe.lrange(self.keys.dead, 0, HISTORY_LIMIT - 1)
        completed, dead = await pipe.execute()
        for raws, which, status, raw_status in (
            (completed, ListName.COMPLETED, JobStatus.COMPLETED, records.RAW_COMPLETED),
            (dead, ListName.FAILED, JobStatus.FAILED, records.RAW_DEAD),
        ):
            for raw in raws:
                job = self._decode_history(raw, which, status, raw_status)
                if job.id == job_id:
                    return job, raw
        return None

    def _detail(
        self, job: JobRecord, stored: bytes | None, lifecycle: LifecycleEntry | None
    ) -> JobDetail:
        decoded = records.decode(stored) if stored is not None else None
        payload_text, kind = "", "empty"
        if decoded is not None and decoded.data is not None:
            key = "raw_payload" if records.is_malformed_dead_entry(decoded.data) else "payload"
            payload_text, kind = json_detail(decoded.data.get(key))
        elif lifecycle is not None and lifecycle.record is not None:
            payload_text, kind = lifecycle.record.payload_preview, "json (preview)"
        raw = text(stored[:DETAIL_CHARS]) if stored is not None else ""
        return JobDetail(
            job=job,
            payload=payload_text,
            payload_kind=kind,
            lifecycle=(lifecycle,) if lifecycle is not None else (),
            raw=raw or "",
        )

    async def audit(self, limit: int) -> list[AuditEntry]:
        async with redis_errors(self.source):
            raws = await self.client.lrange(self.keys.audit, 0, max(0, limit - 1))
        return [e for e in (parse_audit(r) for r in raws) if e is not None]

    @property
    def audit_store(self) -> str:
        return f"{client_location(self.client)}|{self.keys.audit}"

    async def lifecycle(self, limit: int) -> list[LifecycleEntry]:
        """The newest operator lifecycle entries of this source."""
        async with redis_errors(self.source):
            raws = await self.client.lrange(self.keys.lifecycle_list, 0, max(0, limit - 1))
        return [e for e in (_parse_lifecycle(r, self.source) for r in raws) if e is not None]

    # ---------------------------------------------------------------- actions

    def _common_argv(self, now: int, actor: str) -> list[str | int]:
        return [now, actor, self.source, LIFECYCLE_TTL_S, LIFECYCLE_LIMIT, AUDIT_LIMIT]

    async def retry(self, job_id: str, actor: str) -> ActionResult:
        keys = self.keys
        async with redis_errors(self.source):
            for _ in range(ACTION_TRIES):
                stored = cast("bytes | None", await self.client.get(keys.dead_record(job_id)))
                mode, expected, data = "retry", b"", None
                if stored is None:
                    malformed = await self._malformed_dead_entry(job_id)
                    if malformed is not None:
                        mode, expected = "malformed", malformed
                else:
                    expected = stored
                    decoded = records.decode(stored)
                    data = decoded.data if decoded.ok else None
                    if data is None:
                        mode = "corrupt"
                new_id = str(uuid.uuid4())
                now = now_ms()
                new_record = records.retried_record(data, new_id, now) if data else ""
                lock = records.unique_lock_suffix(data)
                reply = await self._scripts["retry"](
                    keys=[
                        keys.dead_record(job_id),
                        keys.dead,
                        keys.record(new_id),
                        keys.queue(records.queue_of(data)),
                        keys.unique(lock),
                        keys.lifecycle(job_id),
                        keys.lifecycle_list,
                        keys.audit,
                    ],
                    args=[
                        job_id,
                        expected,
                        mode,
                        new_id,
                        new_record,
                        "1" if lock else "0",
                        *self._common_argv(now, actor),
                    ],
                )
                code, detail = int(reply[0]), text(reply[1]) or ""
                if code != -4:
                    return _retry_result(job_id, code, detail)
        return ActionResult(
            action=Action.RETRY,
            outcome=Outcome.CONFLICT,
            job_id=job_id,
            message=f"Job {job_id}'s failed record kept changing; nothing was retried.",
        )

    async def _malformed_dead_entry(self, job_id: str) -> bytes | None:
        """The exact text of a malformed dead entry for this id (no dead-record key exists)."""
        raws = cast("list[bytes]", await self.client.lrange(self.keys.dead, 0, HISTORY_LIMIT - 1))
        for raw in raws:
            decoded = records.decode(raw)
            if records.is_malformed_dead_entry(decoded.data):
                assert decoded.data is not None
                if decoded.data.get("id") == job_id:
                    return raw
        return None

    async def discard(self, job_id: str, actor: str) -> ActionResult:
        keys = self.keys
        async with redis_errors(self.source):
            malformed = b""
            if not await self.client.exists(keys.dead_record(job_id)):
                malformed = await self._malformed_dead_entry(job_id) or b""
            reply = await self._scripts["discard"](
                keys=[
                    keys.dead_record(job_id),
                    keys.dead,
                    keys.lifecycle(job_id),
                    keys.lifecycle_list,
                    keys.audit,
                ],
                args=[job_id, malformed, *self._common_argv(now_ms(), actor)],
            )
        code, detail = int(reply[0]), text(reply[1]) or ""
        if code == 1:
            return _result(Action.DISCARD, Outcome.DONE, job_id, f"Discarded job {job_id}.")
        if code == 0:
            return _result(
                Action.DISCARD,
                Outcome.NOT_FOUND,
                job_id,
                f"Job {job_id} is not in the failed list.",
            )
        return _result(Action.DISCARD, Outcome.WRONG_STATE, job_id, _wrong_state(job_id, detail))

    async def cancel(self, job_id: str, actor: str) -> ActionResult:
        keys = self.keys
        async with redis_errors(self.source):
            # As Autumn: a non-atomic read to learn the queue and lock; the script's removals
            # are the re-check (a claimed job is in no waiting list any more).
            decoded = records.decode(await self.client.get(keys.record(job_id)))
            lock = records.unique_lock_suffix(decoded.data)
            reply = await self._scripts["cancel"](
                keys=[
                    keys.record(job_id),
                    keys.queue(records.queue_of(decoded.data)),
                    keys.blocked,
                    keys.delayed,
                    keys.processing,
                    keys.unique(lock),
                    keys.lifecycle(job_id),
                    keys.lifecycle_list,
                    keys.audit,
                ],
                args=[job_id, "1" if lock else "0", *self._common_argv(now_ms(), actor)],
            )
        code, detail = int(reply[0]), text(reply[1]) or ""
        if code == 1:
            return _result(Action.CANCEL, Outcome.DONE, job_id, f"Canceled job {job_id}.")
        if code == 0:
            return _result(Action.CANCEL, Outcome.NOT_FOUND, job_id, f"Job {job_id} not found.")
        return _result(Action.CANCEL, Outcome.WRONG_STATE, job_id, _wrong_state(job_id, detail))

    async def close(self) -> None:
        await self.client.aclose()


@dataclass(slots=True)
class _Base:
    """What round trip 1 read."""

    now_ms: int
    queues: tuple[str, ...]
    lengths: dict[str, int]
    oldest_ids: dict[str, str]
    delayed: int
    processing: int
    blocked: int
    #: processing members whose deadline has passed
    overdue: int
    completed_entries: list[_HistoryEntry]
    dead_entries: list[_HistoryEntry]
    delayed_page: list[tuple[str, int]] = field(default_factory=list)
    processing_page: list[tuple[str, int]] = field(default_factory=list)


def _with_deadline(job: JobRecord, deadline_ms: int, now: int) -> JobRecord:
    """Mark a running job whose claim deadline (its processing score) has passed."""
    if deadline_ms > now:
        return job
    return replace(job, overdue_since=ms_to_datetime(deadline_ms))


def _enqueued_ms(body: bytes | None) -> int | None:
    decoded = records.decode(body)
    if decoded.data is None:
        return None
    value = decoded.data.get("enqueued_at_ms")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _result(
    action: Action, outcome: Outcome, job_id: str, message: str, new_id: str | None = None
) -> ActionResult:
    return ActionResult(
        action=action, outcome=outcome, job_id=job_id, new_id=new_id, message=message
    )


def _wrong_state(job_id: str, detail: str) -> str:
    if detail == "running":
        return f"Job {job_id} is already running; only waiting jobs can be canceled."
    if detail == "not in dead":
        return f"Job {job_id} is not in the failed list."
    if detail == "not waiting":
        return f"Job {job_id} is not waiting in a queue, the delayed set or the blocked set."
    entry = _parse_lifecycle(detail, "")
    if entry is None:
        return f"Job {job_id} is not in the expected state."
    when = entry.at.strftime("%Y-%m-%d %H:%M:%SZ")
    by = f" by {entry.actor}" if entry.actor else ""
    if entry.status is JobStatus.RETRIED and entry.new_id:
        return f"Job {job_id} was already retried as {entry.new_id}{by} at {when}."
    return f"Job {job_id} was already {entry.status.value}{by} at {when}."


def _retry_result(job_id: str, code: int, detail: str) -> ActionResult:
    if code == 1:
        return _result(
            Action.RETRY, Outcome.DONE, job_id, f"Retried job {job_id} as {detail}.", new_id=detail
        )
    if code == 0:
        return _result(
            Action.RETRY, Outcome.NOT_FOUND, job_id, f"Job {job_id} is not in the failed list."
        )
    if code == -2:
        return _result(
            Action.RETRY,
            Outcome.CORRUPT,
            job_id,
            f"Job {job_id}'s stored record is invalid; it cannot be retried (discard it instead).",
        )
    if code == -3:
        holder = f" ({detail})" if detail else ""
        return _result(
            Action.RETRY,
            Outcome.CONFLICT,
            job_id,
            f"An equivalent unique job{holder} is already pending or running; "
            f"job {job_id} was not retried.",
        )
    return _result(Action.RETRY, Outcome.WRONG_STATE, job_id, _wrong_state(job_id, detail))
