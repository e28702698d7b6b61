"""The RQ adapter: RQ's queues, registries and job hashes (docs/rq.md), read and acted on.

Reads are bounded whatever the depth of a queue or registry: counters are LLEN / ZCARD /
ZCOUNT per queue; a page is one LRANGE or ZRANGE per key it spans (keys of all queues joined
end to end, :mod:`jobbridge.adapters.paging`), then a size-capped, pipelined read of that
page's job hashes. Pipelines hold a bounded number of commands (``RqAdapter._batched``), so
no read holds the event loop for long. Nothing is written, nothing is cleaned up: RQ's
own ``registry.count()`` runs ``cleanup()`` first, which fails abandoned jobs and runs their
callbacks, so jobbridge only ever uses plain ZCARDs and ranges (spec §2 "Counts", §5.7).

Identity: a job is where Redis holds it. Registry members whose hash expired are shown as
flagged rows, never dropped, and every field of a hash may be garbage
(:mod:`jobbridge.adapters.rq.records` turns each into words on the row).

Actions live in :mod:`jobbridge.adapters.rq.actions` (one Lua script each, ``rq/lua/*.lua``).
Redis errors propagate: the service turns them into ``SourceUnavailable``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

import redis.exceptions

from jobbridge import offload
from jobbridge.adapters import times
from jobbridge.adapters.fields import MAX_NAME_CHARS, key_text, text
from jobbridge.adapters.operator_log import OperatorKeys, OperatorLog
from jobbridge.adapters.paging import Span, spans
from jobbridge.adapters.payloads import MAX_INPUT_BYTES
from jobbridge.adapters.rq import calls, hashes, records, workers
from jobbridge.adapters.rq.hashes import Found, JobHash, Where
from jobbridge.adapters.rq.keys import DEFAULT_KEY_PREFIX, DEFAULT_QUEUE, RqKeys
from jobbridge.adapters.scripts import BoundScripts, bind
from jobbridge.adapters.values import MAX_VALUE_BYTES, is_wrongtype, ok, type_problems
from jobbridge.model import (
    ActionResult,
    Counters,
    JobDetail,
    JobRecord,
    JobStatus,
    LifecycleEntry,
    ListName,
    Page,
    QueueCounters,
    Schedule,
    Snapshot,
    SnapshotQuery,
    System,
    Worker,
)
from jobbridge.pacing import Pacer

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["DEFAULT_KEY_PREFIX", "RqAdapter", "RqKeys"]

#: Queues shown at most per source, so "O(number of queues)" stays a small number.
MAX_QUEUES = 100
#: Queue names one discovery pass keeps at most (the first MAX_QUEUES are shown).
MAX_DISCOVERED = 10_000
#: Members of the queues set one discovery step asks SSCAN for.
DISCOVERY_SSCAN_COUNT = 1000
#: Workers shown at most, and the set size read whole (larger: one SSCAN step).
MAX_WORKERS = 200
MAX_WORKER_SET_READ = 1000
#: Cron schedulers and cron jobs read at most, and the largest ``cron_jobs`` field read.
MAX_CRON_SCHEDULERS = 10
MAX_SCHEDULES = 100
MAX_CRON_FIELD_BYTES = 1024 * 1024
#: Bytes of a row's ``data`` read for its preview; bigger data is named, not read.
ROW_DATA_BYTES = 64 * 1024
#: Bytes of large fields one page reads at most; rows past it say so.
PAGE_BYTES = 8 * 1024 * 1024
#: Bytes of each large field the job page reads: what payloads decodes at most (decoded in
#: the worker process when big).
DETAIL_VALUE_BYTES = MAX_INPUT_BYTES
#: Execution ids of one job looked at on its page.
MAX_EXECUTIONS = 5
#: Items per pipeline of a read (each pipeline a few ms of packing and parsing; see
#: ``RqAdapter._batched``): queues of the counters (10 commands each), job hashes (3-5).
QUEUES_PER_PIPELINE = 20
HASHES_PER_PIPELINE = 25

#: the registries a job page looks an id up in, in the order that decides its place
_PLACES = (
    Where.WIP,
    Where.SCHEDULED,
    Where.DEFERRED,
    Where.FAILED,
    Where.FINISHED,
    Where.CANCELED,
    Where.READY,
)
#: the registries counted per queue
_ZSETS = (
    Where.SCHEDULED,
    Where.DEFERRED,
    Where.WIP,
    Where.FINISHED,
    Where.FAILED,
    Where.CANCELED,
)
#: the large fields a row reads (its call, for the preview), within their caps
_ROW_CAPS: Mapping[str, int] = {"data": ROW_DATA_BYTES}
_DETAIL_CAPS: Mapping[str, int] = dict.fromkeys(hashes.LARGE_FIELDS, DETAIL_VALUE_BYTES)

#: (where, queue) of one key of a list
_Part = tuple[Where, str]


@dataclass(slots=True)
class _Base:
    """What the counters pipeline found."""

    now_s: float
    queues: tuple[str, ...]
    hidden_queues: int = 0
    #: (where, queue) -> LLEN / ZCARD
    lengths: dict[_Part, int] = field(default_factory=dict)
    #: wip members whose heartbeat deadline has passed
    overdue: int = 0
    #: the id at the head of each queue (the next one a worker takes: the oldest)
    heads: dict[str, str] = field(default_factory=dict)
    problems: tuple[str, ...] = ()

    def total(self, *kinds: Where) -> int:
        return sum(n for (where, _), n in self.lengths.items() if where in kinds)

    def parts(self, *kinds: Where) -> list[tuple[_Part, int]]:
        """The keys of these kinds, each kind's queues in order, joined end to end."""
        return [((kind, q), self.lengths.get((kind, q), 0)) for kind in kinds for q in self.queues]


@dataclass(frozen=True, slots=True)
class _Entry:
    """One id on a page: its list, where it was found, its place in line."""

    which: ListName
    job_id: str
    found: Found
    place: int | None = None


@dataclass(slots=True)
class _Read:
    """The page's job hashes and the latest results of the ids that wanted one."""

    hashes: dict[str, JobHash] = field(default_factory=dict)
    #: id -> (stream entry id, fields) of its newest result; None when it has none
    results: dict[str, tuple[bytes, dict[bytes, bytes]] | None] = field(default_factory=dict)
    #: ids whose results key is not a stream
    bad_results: set[str] = field(default_factory=set)


class RqAdapter:
    """One RQ source: a key prefix in one Redis database."""

    system: ClassVar[System] = "rq"

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
            key_prefix: RQ's key prefix (RQ 3's ``RQ_KEY_PREFIX``; "rq" before).
            queues: the queues to show, in order; None shows the members of
                ``<prefix>:queues`` (found by ``refresh_queues`` in the background).
            jobbridge_prefix: where jobbridge keeps its audit and lifecycle keys.
        """
        self.client = client
        self.source = source
        self.keys = RqKeys(key_prefix)
        self.configured_queues = tuple(q for q in queues or () if q)
        self.operator = OperatorLog(
            client, source, OperatorKeys(jobbridge_prefix, "rq", key_prefix), self._read_record
        )
        self._scripts = bind(client, __name__.rpartition(".")[0])
        #: queues found by the last complete discovery pass ("default" until the first)
        self._discovered: tuple[str, ...] = (DEFAULT_QUEUE,)
        self._discovered_total = 1
        self._pass: set[str] = set()
        self._pass_total = 0
        self._cursor = 0
        #: completed discovery passes
        self.discovery_passes = 0
        self._discovery_problem: str | None = None
        #: the head id of each queue and its enqueued time, so counters re-read a hash only
        #: when the oldest job changes
        self._oldest: dict[str, tuple[str, datetime | None]] = {}

    @property
    def scripts(self) -> BoundScripts:
        """The ``rq/lua/*.lua`` action scripts, bound to this client (for rq_actions)."""
        return self._scripts

    def _read_record(self, stored: str, job_id: str, status: JobStatus) -> JobRecord:
        """The row a lifecycle entry's copy of a job hash describes."""
        return records.lifecycle_record(self.source, stored, job_id, status)

    # ---------------------------------------------------------------- queues

    @property
    def queues(self) -> tuple[str, ...]:
        """The configured queues, else the discovered ones ("default" first), at most 100."""
        return (self.configured_queues or self._discovered)[:MAX_QUEUES]

    @property
    def _hidden_queues(self) -> int:
        if self.configured_queues:
            return max(0, len(self.configured_queues) - MAX_QUEUES)
        return max(0, self._discovered_total - MAX_QUEUES)

    async def refresh_queues(self) -> None:
        """One SSCAN step over ``<prefix>:queues`` (a set of queue keys, one per queue);
        a completed pass replaces the discovered queues. Never run per request."""
        if self.configured_queues:
            return
        try:
            cursor, members = await self.client.sscan(
                self.keys.queues, self._cursor, count=DISCOVERY_SSCAN_COUNT
            )
        except redis.exceptions.ResponseError as exc:
            if not is_wrongtype(exc):
                raise
            problems = await type_problems(self.client, {self.keys.queues: "set"})
            self._discovery_problem = problems[0]
            self._cursor = 0
            return
        self._discovery_problem = None
        self._take(members)
        self._cursor = int(cursor)
        if self._cursor == 0:
            self._end_pass()

    def _take(self, members: Iterable[bytes | str]) -> None:
        for member in members:
            name = self.keys.queue_name_of_key(key_text(member))
            if name is None or len(name) > MAX_NAME_CHARS or name in self._pass:
                continue
            self._pass_total += 1
            if len(self._pass) < MAX_DISCOVERED:
                self._pass.add(name)

    def _end_pass(self) -> None:
        names = sorted(self._pass, key=lambda q: (q != DEFAULT_QUEUE, q))
        self._discovered = tuple(names) or (DEFAULT_QUEUE,)
        self._discovered_total = max(self._pass_total, len(self._discovered))
        self._pass = set()
        self._pass_total = 0
        self.discovery_passes += 1

    async def discover_queues(self, max_steps: int = 10_000) -> None:
        """Run discovery steps until one full pass completes (or ``max_steps``)."""
        if self.configured_queues:
            return
        passes = self.discovery_passes
        for _ in range(max_steps):
            await self.refresh_queues()
            if self.discovery_passes > passes or self._discovery_problem:
                return

    # ---------------------------------------------------------------- counters

    async def counters(self) -> Counters:
        """The headline counters (see :meth:`_counters` for what each counts)."""
        base = await self._read_base()
        return self._counters(base, await self._oldest_enqueued(base))

    async def _read_base(self) -> _Base:
        """Per queue: LLEN of the queue and its intermediate list, ZCARD of each registry,
        ZCOUNT of overdue wip members, and the head of the queue (LINDEX 0)."""
        queues = self.queues
        keys = self.keys
        now_s = time.time()

        def add(pipe: Any, index: int) -> None:
            name = queues[index]
            pipe.llen(keys.queue(name))
            pipe.llen(keys.intermediate(name))
            for kind in _ZSETS:
                pipe.zcard(keys.registry(kind.value, name))
            # wip scores are heartbeat deadlines (epoch seconds)
            pipe.zcount(keys.wip(name), "-inf", now_s)
            pipe.lindex(keys.queue(name), 0)

        replies = await self._batched(len(queues), QUEUES_PER_PIPELINE, add)
        base = _Base(now_s=now_s, queues=queues, hidden_queues=self._hidden_queues)
        broken: dict[str, str] = {}
        for name, counts in zip(queues, replies, strict=True):
            self._take_counts(base, name, counts, broken)
        problems = list(await type_problems(self.client, broken)) if broken else []
        if self._discovery_problem:
            problems.append(self._discovery_problem)
        base.problems = tuple(problems)
        return base

    def _take_counts(
        self, base: _Base, name: str, replies: Sequence[Any], broken: dict[str, str]
    ) -> None:
        keys = self.keys
        queue_len, intermediate_len, *zcards, overdue, head = replies
        kinds = [
            (Where.QUEUE, keys.queue(name), "list"),
            (Where.INTERMEDIATE, keys.intermediate(name), "list"),
        ]
        kinds += [(kind, keys.registry(kind.value, name), "zset") for kind in _ZSETS]
        for (kind, key, expected), reply in zip(
            kinds, [queue_len, intermediate_len, *zcards], strict=True
        ):
            if is_wrongtype(reply):
                broken[key] = expected
                reply = 0
            base.lengths[(kind, name)] = int(reply)
        if not is_wrongtype(overdue):
            base.overdue += int(overdue)
        if head is not None and not is_wrongtype(head):
            base.heads[name] = key_text(head)

    async def _oldest_enqueued(self, base: _Base) -> dict[str, datetime | None]:
        """``enqueued_at`` of each queue's head job, re-read only when the head changes."""
        fresh = {q: i for q, i in base.heads.items() if self._oldest.get(q, ("", None))[0] != i}
        if fresh:
            pipe = self.client.pipeline(transaction=False)
            for job_id in fresh.values():
                pipe.hget(self.keys.job(job_id), "enqueued_at")
            replies = [ok(r) for r in await pipe.execute(raise_on_error=False)]
            for (queue, job_id), reply in zip(fresh.items(), replies, strict=True):
                self._oldest[queue] = (job_id, _enqueued(reply))
        for queue in list(self._oldest):
            if queue not in base.heads:
                del self._oldest[queue]
        return {q: self._oldest[q][1] for q in base.heads}

    def _counters(self, base: _Base, oldest: Mapping[str, datetime | None]) -> Counters:
        """The counters of a base read.

        - enqueued: the queue lists plus their intermediate lists (ids a worker has taken off
          the queue but not started yet; the enqueued list shows them last, as
          "intermediate"), so the count equals the enqueued list's total. RQ's
          ``Queue.count`` is the first part only.
        - scheduled: the scheduled and the deferred registries (waiting on a time, or on
          dependencies).
        - running: the wip registries' ZCARDs. They count executions, not jobs (RQ 2+ keys
          members by ``<job_id>:<execution_id>``); one job has one execution at a time.
        - completed_24h / failed_7d: None. RQ scores finished and failed registries by their
          expiry (now + result_ttl / failure_ttl), not by when the job ended, so a time
          window cannot be counted in bounded work; ``completed_kept`` / ``failed_kept``
          count what the registries still hold.
        """
        per_queue = []
        ages: list[float] = []
        for name in base.queues:
            age = None
            enqueued = oldest.get(name)
            if enqueued is not None:
                age = max(0.0, base.now_s - enqueued.timestamp())
                ages.append(age)
            count = base.lengths[(Where.QUEUE, name)] + base.lengths[(Where.INTERMEDIATE, name)]
            per_queue.append(QueueCounters(name=name, enqueued=count, oldest_enqueued_age_s=age))
        problems = base.problems
        if base.hidden_queues:
            problems += (
                f"{base.hidden_queues} more queues exist than the {MAX_QUEUES} shown; "
                "list the ones to watch in the source's queues setting",
            )
        return Counters(
            enqueued=base.total(Where.QUEUE, Where.INTERMEDIATE),
            scheduled=base.total(Where.SCHEDULED, Where.DEFERRED),
            running=base.total(Where.WIP),
            completed_24h=None,
            failed_7d=None,
            oldest_enqueued_age_s=max(ages) if ages else None,
            queues=tuple(per_queue),
            running_overdue=base.overdue,
            problems=problems,
            completed_kept=base.total(Where.FINISHED),
            failed_kept=base.total(Where.FAILED),
            canceled=base.total(Where.CANCELED),
        )

    # ---------------------------------------------------------------- snapshot

    async def snapshot(self, query: SnapshotQuery) -> Snapshot:
        """The counters, one page of each list, the workers and the cron schedules.

        Lists, newest first, each queue's keys joined end to end in queue order:

        - enqueued: the queue lists, then the intermediate lists (RQ RPUSHes and workers pop
          the left end, so the newest id is at the tail); rows say their place in line;
        - scheduled: the scheduled registries, earliest due first, then the deferred ones,
          earliest registered first;
        - running: the wip registries, latest heartbeat deadline first;
        - completed / failed: the finished / failed registries, highest score (latest
          expiry, so latest ended for a queue's usual TTL) first;
        - canceled: the canceled registries, latest canceled first (RQ scores them by the
          time of the cancel).
        """
        base = await self._read_base()
        oldest = await self._oldest_enqueued(base)
        entries = await self._page_entries(base, query)
        rows = await self._rows(entries, base.now_s)
        lists = {which: self._page(which, rows, base, query) for which in _LIST_KINDS}
        return Snapshot(
            source=self.source,
            system="rq",
            taken_at=datetime.fromtimestamp(base.now_s, tz=UTC),
            counters=self._counters(base, oldest),
            lists=lists,
            schedules=await self._schedules(),
            # workers: added by the service (ListsWorkers) when the whole page is read
        )

    def _page(
        self,
        which: ListName,
        rows: Sequence[tuple[_Entry, JobRecord]],
        base: _Base,
        query: SnapshotQuery,
    ) -> Page:
        items = tuple(row for entry, row in rows if entry.which is which)
        return Page(
            items=items,
            total=base.total(*_LIST_KINDS[which]),
            page=query.page(which),
            per_page=query.size(which),
            skipped=sum(1 for j in items if j.problem is not None),
        )

    async def _page_entries(self, base: _Base, query: SnapshotQuery) -> list[_Entry]:
        """One pipeline of range reads: each list's page, as spans over its keys."""
        plan: list[tuple[ListName, Span[_Part]]] = []
        for which, kinds in _LIST_KINDS.items():
            need = query.rows(which)
            if need:
                plan += [(which, s) for s in spans(base.parts(*kinds), query.offset(which), need)]
        if not plan:
            return []
        pipe = self.client.pipeline(transaction=False)
        for which, span in plan:
            self._queue_range(pipe, which, span)
        replies = await pipe.execute(raise_on_error=False)
        entries: list[_Entry] = []
        for (which, span), reply in zip(plan, replies, strict=True):
            reply = ok(reply)
            if not is_wrongtype(reply):
                entries += _span_entries(which, span, reply)
        return entries

    def _queue_range(self, pipe: Any, which: ListName, span: Span[_Part]) -> None:
        kind, queue = span.key
        if kind in (Where.QUEUE, Where.INTERMEDIATE):
            key = self.keys.queue(queue) if kind is Where.QUEUE else self.keys.intermediate(queue)
            start, stop = span.lrange(newest_at_tail=True)
            pipe.lrange(key, start, stop)
            return
        desc = which in (ListName.RUNNING, ListName.COMPLETED, ListName.FAILED, ListName.CANCELED)
        pipe.zrange(
            self.keys.registry(kind.value, queue), span.first, span.last, desc=desc, withscores=True
        )

    # ---------------------------------------------------------------- rows

    async def _rows(
        self, entries: Sequence[_Entry], now_s: float
    ) -> list[tuple[_Entry, JobRecord]]:
        """Rows of a page's ids: one capped read of their hashes (and of the failed ones'
        latest results), then each mapped, yielding to the loop as it goes."""
        ids = list(dict.fromkeys(e.job_id for e in entries))
        failed = {e.job_id for e in entries if e.which is ListName.FAILED}
        read = await self._read_hashes(ids, _ROW_CAPS, PAGE_BYTES, failed)
        out = []
        pacer = Pacer()
        for entry in entries:
            job = read.hashes[entry.job_id]
            row = await self._row(job, entry.found, entry.job_id, read)
            if entry.found.where is Where.WIP:
                row = records.with_deadline(row, entry.found.score, now_s)
            if entry.place is not None:
                row = replace(row, extra={**row.extra, "place in line": str(entry.place)})
            out.append((entry, row))
            await pacer.tick()
        return out

    async def _row(
        self,
        job: JobHash,
        found: Found,
        job_id: str,
        read: _Read,
        call: calls.CallSummary | None = None,
    ) -> JobRecord:
        data = job.fields.get("data")
        if call is None and data:
            call = await offload.decode(calls.summarize_call, data)
        error, problem = _latest_error(job, read, job_id)
        return records.to_job(
            job,
            found,
            source=self.source,
            job_id=job_id,
            call=call,
            last_error=error,
            error_problem=problem,
        )

    async def _batched(
        self, count: int, per: int, add: Callable[[Any, int], None]
    ) -> list[list[Any]]:
        """Each item's replies, its commands queued by ``add(pipe, index)``, ``per`` items to
        a pipeline, one pipeline after the other.

        redis-py packs a pipeline's commands and parses its replies in one go: a single
        pipeline for a page of a hundred rows (or a hundred queues' counters) would hold the
        event loop for tens of ms. Pipelines of a bounded size hold it a few ms each, and
        other requests run between them; pipelines in flight together would not help, as
        their replies are parsed back to back. Costs one round trip per ``per`` items.
        """
        out: list[list[Any]] = []
        for start in range(0, count, per):
            pipe = self.client.pipeline(transaction=False)
            sizes = []
            for index in range(start, min(start + per, count)):
                before = len(pipe.command_stack)
                add(pipe, index)
                sizes.append(len(pipe.command_stack) - before)
            replies = iter([ok(r) for r in await pipe.execute(raise_on_error=False)])
            out += [[next(replies) for _ in range(size)] for size in sizes]
        return out

    async def _read_hashes(
        self,
        ids: Sequence[str],
        caps: Mapping[str, int],
        budget: int,
        results_for: Iterable[str] = (),
    ) -> _Read:
        """Job hashes, bounded: first EXISTS, one HMGET of the small fields and HSTRLEN of
        each large field in ``caps`` (plus the newest results-stream entry of
        ``results_for``); then one HMGET of the large fields within their cap while
        ``budget`` (bytes, for all ids) lasts."""
        read = _Read()
        large = tuple(caps)
        wants = set(results_for)

        def add(pipe: Any, index: int) -> None:
            job_id = ids[index]
            key = self.keys.job(job_id)
            pipe.exists(key)
            pipe.hmget(key, list(hashes.SMALL_FIELDS))
            for name in large:
                pipe.hstrlen(key, name)
            if job_id in wants:
                pipe.xrevrange(self.keys.results(job_id), "+", "-", count=1)

        replies = await self._batched(len(ids), HASHES_PER_PIPELINE, add)
        for job_id, reply in zip(ids, replies, strict=True):
            read.hashes[job_id] = _first_read(reply[: 2 + len(large)], large)
            if job_id not in wants:
                continue
            newest = reply[2 + len(large)]
            if is_wrongtype(newest):
                read.bad_results.add(job_id)
            else:
                read.results[job_id] = _newest(newest)
        await self._read_large(read, caps, budget)
        return read

    async def _read_large(self, read: _Read, caps: Mapping[str, int], budget: int) -> None:
        plan: list[tuple[str, list[str]]] = []
        for job_id, job in read.hashes.items():
            names = []
            for name, limit in caps.items():
                size = job.sizes.get(name, 0)
                if 0 < size <= min(limit, budget):
                    budget -= size
                    names.append(name)
            if names:
                plan.append((job_id, names))
        if not plan:
            return

        def add(pipe: Any, index: int) -> None:
            job_id, names = plan[index]
            pipe.hmget(self.keys.job(job_id), names)

        replies = await self._batched(len(plan), HASHES_PER_PIPELINE, add)
        for (job_id, names), (values,) in zip(plan, replies, strict=True):
            job = read.hashes[job_id]
            if is_wrongtype(values):
                read.hashes[job_id] = replace(job, wrong_type=True)
                continue
            fields = dict(job.fields)
            fields.update({n: v for n, v in zip(names, values, strict=True) if v is not None})
            read.hashes[job_id] = replace(job, fields=fields)

    # ---------------------------------------------------------------- job page

    async def job(self, job_id: str) -> JobDetail | None:
        """One job wherever it is: its hash (place from ZSCOREs over its ``origin`` queue's
        registries, never a scan of a queue list), its payload, its latest result, and its
        lifecycle entry; a job known only by its lifecycle entry still shows."""
        lifecycle, problem = await self.operator.entry(job_id)
        detail = await self._job(job_id, lifecycle)
        if problem is None:
            return detail
        if detail is None:
            return self.operator.unreadable(job_id, problem)
        return replace(detail, job=times.with_problem(detail.job, problem))

    async def _job(self, job_id: str, lifecycle: LifecycleEntry | None) -> JobDetail | None:
        read = await self._read_hashes([job_id], _DETAIL_CAPS, MAX_VALUE_BYTES, [job_id])
        job = read.hashes[job_id]
        if job.exists:
            found, execution = await self._place(job_id, job)
            return await self._detail(job_id, job, found, execution, read, lifecycle)
        if lifecycle is not None and lifecycle.record is not None:
            record = lifecycle.record
            return JobDetail(
                job=record,
                payload=record.payload_preview,
                payload_kind="copy kept when the action ran",
                lifecycle=(lifecycle,),
            )
        return await self._dangling(job_id, read)

    async def _place(self, job_id: str, job: JobHash) -> tuple[Found, dict[bytes, bytes]]:
        """Where a job with a hash is: ZSCORE of its id in each registry of its ``origin``
        queue (wip members by their execution ids), and its running execution's hash."""
        origin = text(job.fields.get("origin")) or ""
        if not origin or len(origin) > MAX_NAME_CHARS:
            return Found(Where.HASH, ""), {}
        keys = self.keys
        executions = await self._members(keys.executions(job_id), MAX_EXECUTIONS)
        pipe = self.client.pipeline(transaction=False)
        for kind in _PLACES:
            pipe.zscore(keys.registry(kind.value, origin), job_id)
        for execution_id in executions:
            pipe.zscore(keys.wip(origin), f"{job_id}:{execution_id}")
            pipe.hgetall(keys.execution(job_id, execution_id))
        replies = [ok(r) for r in await pipe.execute(raise_on_error=False)]
        scores = [None if is_wrongtype(r) else r for r in replies[: len(_PLACES)]]
        rest = replies[len(_PLACES) :]
        for index, execution_id in enumerate(executions):
            score, info = rest[2 * index], rest[2 * index + 1]
            if score is not None and not is_wrongtype(score):
                detail = info if isinstance(info, dict) else {}
                return Found(Where.WIP, origin, float(score), execution_id), detail
        for kind, score in zip(_PLACES, scores, strict=True):
            if score is not None:
                return Found(kind, origin, float(score)), {}
        status = text(job.fields.get("status"))
        where = Where.QUEUE if status in ("queued", "created") else Where.HASH
        return Found(where, origin), {}

    async def _detail(
        self,
        job_id: str,
        job: JobHash,
        found: Found,
        execution: Mapping[bytes, bytes],
        read: _Read,
        lifecycle: LifecycleEntry | None,
    ) -> JobDetail:
        data = job.fields.get("data")
        call, call_text, serializer = None, "", ""
        if data:
            # Always off the loop: a few stored bytes may inflate to MAX_INFLATED_BYTES.
            call, call_text, serializer = await offload.decode(
                calls.detail_call, data, inline_bytes=0
            )
        row = await self._row(job, found, job_id, read, call)
        if row.worker is None and row.status is JobStatus.RUNNING and execution:
            worker = hashes.cap_name(text(execution.get(b"worker_name")))
            row = replace(row, worker=worker)
        if found.where is Where.WIP:
            row = records.with_deadline(row, found.score, time.time())
        payload = records.detail_payload(
            call_text or row.payload_preview,
            await _described(job.fields.get("meta")),
            await self._result_text(read.results.get(job_id)),
            await _described(job.fields.get("result"), "legacy result: "),
        )
        kind = serializer or ("description" if not data else "unknown")
        return records.to_detail(row, job, payload, kind, lifecycle)

    async def _result_text(self, newest: tuple[bytes, dict[bytes, bytes]] | None) -> str:
        if newest is None:
            return ""
        entry_id, entry = newest
        value = entry.get(b"return_value")
        shown = ""
        if value:
            shown = await offload.decode(
                calls.describe_stream_value, value, inline_bytes=calls.ROW_INFLATED_BYTES
            )
        return calls.describe_result(entry_id, entry, shown)

    async def _dangling(self, job_id: str, read: _Read) -> JobDetail | None:
        """An id without a hash that a registry of a shown queue still holds (the page of a
        flagged row); None when none does. O(queues) ZSCOREs."""
        queues = self.queues
        pipe = self.client.pipeline(transaction=False)
        for name in queues:
            for kind in _PLACES:
                pipe.zscore(self.keys.registry(kind.value, name), job_id)
        replies = [ok(r) for r in await pipe.execute(raise_on_error=False)]
        for index, score in enumerate(replies):
            if score is None or is_wrongtype(score):
                continue
            name, kind = queues[index // len(_PLACES)], _PLACES[index % len(_PLACES)]
            found = Found(kind, name, float(score))
            row = await self._row(read.hashes[job_id], found, job_id, read)
            result = await self._result_text(read.results.get(job_id))
            return JobDetail(job=row, payload=result, payload_kind="not stored")
        return None

    async def _members(self, key: str, count: int, *, desc: bool = False) -> list[str]:
        """The first ``count`` members of a sorted set; none when the key is another type."""
        pipe = self.client.pipeline(transaction=False)
        pipe.zrange(key, 0, count - 1, desc=desc)
        (reply,) = await pipe.execute(raise_on_error=False)
        reply = ok(reply)
        if is_wrongtype(reply) or not isinstance(reply, list):
            return []
        return [key_text(m) for m in reply]

    # ---------------------------------------------------------------- workers

    async def workers(self) -> tuple[Worker, ...]:
        """The workers in ``<prefix>:workers`` (at most 200, by name): one pipelined HMGET
        of their hashes, plus one member of each RQ 3 worker's executions set (its current
        job). A listed worker whose hash expired, or that recorded its death, is dead."""
        names = await self._worker_names()
        if not names:
            return ()
        pipe = self.client.pipeline(transaction=False)
        for name in names:
            pipe.hmget(self.keys.worker(name), list(workers.WORKER_FIELDS))
            pipe.srandmember(self.keys.worker_executions(name))
        replies = [ok(r) for r in await pipe.execute(raise_on_error=False)]
        out = []
        for index, name in enumerate(names):
            values, member = replies[2 * index], replies[2 * index + 1]
            if is_wrongtype(values):
                out.append(
                    Worker(
                        name=hashes.cap_name(name) or "",
                        state="?",
                        problem="its key holds another type than a hash",
                    )
                )
                continue
            member = None if is_wrongtype(member) else member
            out.append(workers.to_worker(name, values, member))
        return tuple(out)

    async def _worker_names(self) -> list[str]:
        key = self.keys.workers
        members: Iterable[bytes | str]
        try:
            size = await self.client.scard(key)
            if size > MAX_WORKER_SET_READ:
                _, members = await self.client.sscan(key, 0, count=MAX_WORKER_SET_READ)
            else:
                members = await self.client.smembers(key)
        except redis.exceptions.ResponseError as exc:
            if not is_wrongtype(exc):
                raise
            return []
        names = {self.keys.worker_name_of_key(key_text(m)) for m in members}
        return sorted(n for n in names if n)[:MAX_WORKERS]

    # ---------------------------------------------------------------- cron

    async def _schedules(self) -> tuple[Schedule, ...]:
        """RQ's cron jobs (rq/cron.py), as the live cron schedulers list them: the newest
        ``MAX_CRON_SCHEDULERS`` schedulers' ``cron_jobs`` JSON, deduplicated, each with the
        status of the last job it enqueued. Bounded by the caps above."""
        names = await self._members(self.keys.cron_schedulers, MAX_CRON_SCHEDULERS, desc=True)
        if not names:
            return ()
        fields = await self._cron_fields(names)
        schedules: dict[tuple[str, str], Schedule] = {}
        for raw in fields:
            found, _ = workers.cron_schedules(raw, MAX_SCHEDULES)
            for schedule in found:
                schedules.setdefault((schedule.name, schedule.schedule), schedule)
        return await self._with_last_status(list(schedules.values())[:MAX_SCHEDULES])

    async def _cron_fields(self, names: Sequence[str]) -> list[bytes]:
        pipe = self.client.pipeline(transaction=False)
        for name in names:
            pipe.hstrlen(self.keys.cron_scheduler(name), "cron_jobs")
        sizes = [ok(r) for r in await pipe.execute(raise_on_error=False)]
        wanted = [
            n
            for n, s in zip(names, sizes, strict=True)
            if not is_wrongtype(s) and 0 < int(s) <= MAX_CRON_FIELD_BYTES
        ]
        if not wanted:
            return []
        pipe = self.client.pipeline(transaction=False)
        for name in wanted:
            pipe.hget(self.keys.cron_scheduler(name), "cron_jobs")
        values = [ok(r) for r in await pipe.execute(raise_on_error=False)]
        return [v for v in values if isinstance(v, bytes)]

    async def _with_last_status(self, schedules: list[Schedule]) -> tuple[Schedule, ...]:
        """Each schedule with the status of the newest job its cron job enqueued."""
        if not schedules:
            return ()
        pipe = self.client.pipeline(transaction=False)
        for schedule in schedules:
            pipe.zrange(self.keys.cron_job_history(schedule.name), 0, 0, desc=True)
        newest = [ok(r) for r in await pipe.execute(raise_on_error=False)]
        ids = [key_text(r[0]) if isinstance(r, list) and r else None for r in newest]
        pipe = self.client.pipeline(transaction=False)
        for job_id in ids:
            if job_id is not None:
                pipe.hget(self.keys.job(job_id), "status")
        statuses = iter([ok(r) for r in await pipe.execute(raise_on_error=False)])
        out = []
        for schedule, job_id in zip(schedules, ids, strict=True):
            if job_id is not None:
                status = next(statuses)
                word = None if is_wrongtype(status) else hashes.cap_name(text(status))
                schedule = replace(schedule, last_status=word)
            out.append(schedule)
        return tuple(out)

    # ---------------------------------------------------------------- actions

    async def cancel(self, job_id: str, actor: str) -> ActionResult:
        from jobbridge.adapters.rq import actions as rq_actions

        return await rq_actions.cancel(self, job_id, actor)

    async def retry(self, job_id: str, actor: str) -> ActionResult:
        from jobbridge.adapters.rq import actions as rq_actions

        return await rq_actions.retry(self, job_id, actor)

    async def discard(self, job_id: str, actor: str) -> ActionResult:
        from jobbridge.adapters.rq import actions as rq_actions

        return await rq_actions.discard(self, job_id, actor)

    async def stop(self, job_id: str, actor: str) -> ActionResult:
        from jobbridge.adapters.rq import actions as rq_actions

        return await rq_actions.stop(self, job_id, actor)

    async def close(self) -> None:
        await self.client.aclose()


# -------------------------------------------------------------------- helpers

#: the keys each list spans, in display order
_LIST_KINDS: Mapping[ListName, tuple[Where, ...]] = {
    ListName.ENQUEUED: (Where.QUEUE, Where.INTERMEDIATE),
    ListName.SCHEDULED: (Where.SCHEDULED, Where.DEFERRED),
    ListName.RUNNING: (Where.WIP,),
    ListName.COMPLETED: (Where.FINISHED,),
    ListName.FAILED: (Where.FAILED,),
    ListName.CANCELED: (Where.CANCELED,),
}


def _span_entries(which: ListName, span: Span[_Part], reply: Any) -> list[_Entry]:
    """The ids one range read returned, in display order (newest first)."""
    kind, queue = span.key
    if kind in (Where.QUEUE, Where.INTERMEDIATE):
        members = list(reversed(reply))
        return [
            _Entry(
                which,
                key_text(m),
                Found(kind, queue),
                span.place(i) if kind is Where.QUEUE else None,
            )
            for i, m in enumerate(members)
        ]
    out = []
    for member, score in reply:
        job_id, execution_id = key_text(member), None
        if kind is Where.WIP:
            job_id, execution_id = records.split_wip_member(job_id)
        out.append(_Entry(which, job_id, Found(kind, queue, float(score), execution_id)))
    return out


def _first_read(replies: Sequence[Any], large: Sequence[str]) -> JobHash:
    """A hash from its EXISTS, small-field HMGET and large-field HSTRLEN replies."""
    exists, values, *sizes = replies
    if is_wrongtype(values) or any(is_wrongtype(s) for s in sizes):
        return JobHash(exists=True, wrong_type=True)
    if not exists:
        return JobHash(exists=False)
    fields = {n: v for n, v in zip(hashes.SMALL_FIELDS, values, strict=True) if v is not None}
    return JobHash(
        exists=True,
        fields=fields,
        sizes={n: int(s) for n, s in zip(large, sizes, strict=True)},
    )


def _newest(reply: Any) -> tuple[bytes, dict[bytes, bytes]] | None:
    """The newest entry of an XREVRANGE … COUNT 1 reply."""
    if not reply:
        return None
    entry_id, entry = reply[0]
    return bytes(entry_id), dict(entry or {})


def _latest_error(job: JobHash, read: _Read, job_id: str) -> tuple[str | None, str | None]:
    """A failed job's error: its newest result's ``exc_string``, else the legacy hash
    ``exc_info``."""
    if job_id in read.bad_results:
        return None, "its results key holds another type than a stream"
    newest = read.results.get(job_id)
    error, problem = calls.result_error(newest[1] if newest else None)
    if error is None and problem is None:
        error, problem = calls.legacy_error(job.fields.get("exc_info"))
    return error, problem


def _enqueued(reply: object) -> datetime | None:
    if not isinstance(reply, bytes):
        return None
    try:
        return hashes.parse_timestamp(reply)
    except ValueError:
        return None


async def _described(raw: bytes | None, label: str = "") -> str:
    """A serialized value as text for the job page (decoded in the worker process if big)."""
    if not raw:
        return ""
    return label + await offload.decode(
        calls.describe_value, raw, inline_bytes=calls.ROW_INFLATED_BYTES
    )
