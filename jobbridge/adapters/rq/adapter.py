"""The RQ adapter: RQ's queues, registries and job hashes, read with bounded work and never
written by a read (docs/rq.md §4, §6.3). A job is where Redis holds it; a member whose hash
is gone or garbage is a flagged row. Actions live in :mod:`.actions`, the job page in
:mod:`.job_page`, workers and cron schedulers in :mod:`.workers`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

import redis.exceptions

from jobbridge import offload
from jobbridge.adapters.discovery import DiscoveryProblem, QueueDiscovery
from jobbridge.adapters.fields import MAX_NAME_CHARS, key_text
from jobbridge.adapters.operator_log import OperatorKeys, OperatorLog
from jobbridge.adapters.paging import Span, spans
from jobbridge.adapters.rq import actions, calls, finished_feed, hashes, job_page, records
from jobbridge.adapters.rq import workers as rq_workers
from jobbridge.adapters.rq.hashes import Found, JobHash, Where
from jobbridge.adapters.rq.keys import DEFAULT_KEY_PREFIX, DEFAULT_QUEUE, RqKeys
from jobbridge.adapters.rq.reads import HashesRead, batched, latest_error, read_hashes
from jobbridge.adapters.scripts import BoundScripts, bind
from jobbridge.adapters.values import is_wrongtype, ok, type_problems
from jobbridge.model import (
    ActionResult,
    Counters,
    JobDetail,
    JobRecord,
    JobStatus,
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

    from jobbridge.adapters.finished import FinishedBatch

__all__ = ["DEFAULT_KEY_PREFIX", "RqAdapter", "RqKeys"]

#: Queues shown at most per source, so "O(number of queues)" stays a small number.
MAX_QUEUES = 100
#: Members of the queues set one discovery step asks SSCAN for.
DISCOVERY_SSCAN_COUNT = 1000
#: Bytes of a row's ``data`` read for its preview; bigger data is named, not read.
ROW_DATA_BYTES = 64 * 1024
#: Bytes of large fields one page reads at most; rows past it say so.
PAGE_BYTES = 8 * 1024 * 1024
#: Queues per pipeline of the counters (10 commands each; see ``reads.batched``).
QUEUES_PER_PIPELINE = 20

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
        #: the members of ``<prefix>:queues``, found by ``refresh_queues`` in the background
        self.discovery = QueueDiscovery(self._discovery_step, default=DEFAULT_QUEUE)
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
        return (self.configured_queues or self.discovery.names)[:MAX_QUEUES]

    @property
    def _hidden_queues(self) -> int:
        if self.configured_queues:
            return max(0, len(self.configured_queues) - MAX_QUEUES)
        return max(0, self.discovery.total - MAX_QUEUES)

    @property
    def discovery_passes(self) -> int:
        """Completed discovery passes over ``<prefix>:queues``."""
        return self.discovery.passes

    async def refresh_queues(self) -> None:
        """One SSCAN step over ``<prefix>:queues`` (a set of queue keys, one per queue);
        a completed pass replaces the discovered queues. Never run per request."""
        if not self.configured_queues:
            await self.discovery.step()

    async def _discovery_step(self, cursor: int) -> tuple[int, list[str]]:
        try:
            cursor, members = await self.client.sscan(
                self.keys.queues, cursor, count=DISCOVERY_SSCAN_COUNT
            )
        except redis.exceptions.ResponseError as exc:
            if not is_wrongtype(exc):
                raise
            problems = await type_problems(self.client, {self.keys.queues: "set"})
            raise DiscoveryProblem(problems[0]) from exc
        names = (self.keys.queue_name_of_key(key_text(m)) for m in members)
        return int(cursor), [n for n in names if n is not None and len(n) <= MAX_NAME_CHARS]

    async def discover_queues(self, max_steps: int = 10_000) -> None:
        """Run discovery steps until one full pass completes (or ``max_steps``)."""
        if not self.configured_queues:
            await self.discovery.run(max_steps)

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

        replies = await batched(self.client, len(queues), QUEUES_PER_PIPELINE, add)
        base = _Base(now_s=now_s, queues=queues, hidden_queues=self._hidden_queues)
        broken: dict[str, str] = {}
        for name, counts in zip(queues, replies, strict=True):
            self._take_counts(base, name, counts, broken)
        problems = list(await type_problems(self.client, broken)) if broken else []
        if self.discovery.problem:
            problems.append(self.discovery.problem)
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
        - scheduled: the scheduled registries (waiting on a time).
        - blocked: the deferred registries' ZCARDs (waiting on the jobs they depend on, not
          on a time); the scheduled list shows them after the scheduled ones, so its total
          is scheduled + blocked.
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
            scheduled=base.total(Where.SCHEDULED),
            blocked=base.total(Where.DEFERRED),
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
        - scheduled: the scheduled registries, earliest due first, then the deferred ones
          (blocked on their dependencies), earliest registered first;
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
        read = await read_hashes(self.client, self.keys, ids, _ROW_CAPS, PAGE_BYTES, failed)
        out = []
        pacer = Pacer()
        for entry in entries:
            job = read.hashes[entry.job_id]
            row = await self.row(job, entry.found, entry.job_id, read)
            if entry.found.where is Where.WIP:
                row = records.with_deadline(row, entry.found.score, now_s)
            if entry.place is not None:
                row = replace(row, extra={**row.extra, "place in line": str(entry.place)})
            out.append((entry, row))
            await pacer.tick()
        return out

    async def row(
        self,
        job: JobHash,
        found: Found,
        job_id: str,
        read: HashesRead,
        call: calls.CallSummary | None = None,
    ) -> JobRecord:
        data = job.fields.get("data")
        if call is None and data:
            call = await offload.decode(calls.summarize_call, data)
        error, problem = latest_error(job, read, job_id)
        return records.to_job(
            job,
            found,
            source=self.source,
            job_id=job_id,
            call=call,
            last_error=error,
            error_problem=problem,
        )

    # ---------------------------------------------------------------- job page

    async def job(self, job_id: str) -> JobDetail | None:
        """One job wherever it is (:mod:`jobbridge.adapters.rq.job_page`)."""
        return await job_page.job(self, job_id)

    # ---------------------------------------------------------------- workers and cron

    async def workers(self) -> tuple[Worker, ...]:
        """The workers in ``<prefix>:workers`` (:mod:`jobbridge.adapters.rq.workers`)."""
        return await rq_workers.workers(self)

    async def _schedules(self) -> tuple[Schedule, ...]:
        return await rq_workers.schedules(self)

    # ---------------------------------------------------------------- actions

    async def cancel(self, job_id: str, actor: str) -> ActionResult:
        return await actions.cancel(self, job_id, actor)

    async def retry(self, job_id: str, actor: str) -> ActionResult:
        return await actions.retry(self, job_id, actor)

    async def discard(self, job_id: str, actor: str) -> ActionResult:
        return await actions.discard(self, job_id, actor)

    async def stop(self, job_id: str, actor: str) -> ActionResult:
        return await actions.stop(self, job_id, actor)

    async def finished_since(self, cursor: str | None, *, limit: int) -> FinishedBatch:
        """Members newly added to finished and failed registries (chart series)."""
        return await finished_feed.finished_since(
            self.client, self.keys, self.queues, cursor, limit
        )

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


def _enqueued(reply: object) -> datetime | None:
    if not isinstance(reply, bytes):
        return None
    try:
        return hashes.parse_timestamp(reply)
    except ValueError:
        return None
