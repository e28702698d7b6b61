"""The Celery adapter: kombu's broker lists and ``unacked`` hash, and jobbridge's own index of
Celery's results, read with bounded work; what needs a scan runs in the background. What each
list holds and how it is read: docs/celery.md §4.2. Actions live in :mod:`.actions`, a task's
page in :mod:`.job_page`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, ClassVar

import redis.exceptions

from jobbridge import offload
from jobbridge.adapters import times
from jobbridge.adapters.celery import actions, finished_feed, job_page, records
from jobbridge.adapters.celery.index import ResultIndex
from jobbridge.adapters.celery.index_store import COUNT_REPLIES
from jobbridge.adapters.celery.index_summary import Bucket
from jobbridge.adapters.celery.keys import DEFAULT_SEP, PRIORITY_STEPS, CeleryKeys, JobbridgeKeys
from jobbridge.adapters.celery.lookup import decode_held, revoked_ids
from jobbridge.adapters.celery.priority_lists import PriorityListWatch
from jobbridge.adapters.celery.subscription import Subscription
from jobbridge.adapters.celery.tail_ages import ListAge, ReadPlan, SentTimes, TailAges
from jobbridge.adapters.celery.task_events import TaskEventFeed
from jobbridge.adapters.celery.unacked import UnackedView
from jobbridge.adapters.celery.workers import WorkerWatch
from jobbridge.adapters.discovery import QueueDiscovery
from jobbridge.adapters.fields import glob_escape, key_text
from jobbridge.adapters.keyguard import text_problem
from jobbridge.adapters.operator_log import OperatorKeys, OperatorLog
from jobbridge.adapters.paging import spans
from jobbridge.adapters.scripts import BoundScripts, bind
from jobbridge.adapters.values import is_wrongtype, ok
from jobbridge.model import (
    ActionResult,
    Counters,
    JobDetail,
    JobRecord,
    JobStatus,
    ListName,
    Page,
    QueueCounters,
    Snapshot,
    SnapshotQuery,
    System,
    Worker,
)
from jobbridge.pacing import Pacer

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from jobbridge.adapters.finished import FinishedBatch

log = logging.getLogger(__name__)

#: the queue Celery sends to unless routed elsewhere (``task_default_queue``)
DEFAULT_QUEUE = "celery"
#: exchanges whose bindings are Celery's own plumbing (events, remote control), not queues
PLUMBING_EXCHANGES = frozenset({"celeryev", "celery.pidbox", "reply.celery.pidbox"})
#: Queues shown at most per source.
MAX_QUEUES = 100
#: Keys one discovery SCAN step asks for, and binding members read per exchange.
DISCOVERY_SCAN_COUNT = 5_000
MAX_BINDINGS_READ = 1_000
#: Seconds between background sorts of ``unacked``.
UNACKED_REFRESH_S = 1.0
#: ... and one more second per this many messages held, up to ``UNACKED_REFRESH_MAX_S``
#: (each sort reads every tag: a large ``unacked`` is sorted less often)
UNACKED_PER_SECOND = 10_000
UNACKED_REFRESH_MAX_S = 10.0
#: Seconds between the end of one discovery pass and the start of the next.
DISCOVERY_PASS_INTERVAL_S = 30.0
#: Bytes of a waiting message decoded on the event loop; bigger ones in the decoding process.
INLINE_BYTES = 64 * 1024
#: Pools whose workers go silent (no heartbeats, no answers) while they run a task: their
#: being offline says nothing of the task.
SILENT_POOLS = frozenset({"solo"})
#: Why a running task whose worker went offline is overdue.
LOST_NOTE = (
    "its worker went offline: this task will not finish there (with acks_late, kombu "
    "delivers its message again after the visibility timeout; without, it is lost)"
)

_INDEXED = {
    ListName.COMPLETED: Bucket.COMPLETED,
    ListName.FAILED: Bucket.FAILED,
    ListName.CANCELED: Bucket.CANCELED,
}

#: (queue, priority step) of one broker list
_Part = tuple[str, int]


@dataclass(slots=True)
class _Base:
    """What the counters pipeline found."""

    now_ms: int
    queues: tuple[str, ...]
    lengths: dict[_Part, int] = field(default_factory=dict)
    unacked: int = 0
    totals: dict[Bucket, int] = field(default_factory=dict)
    completed_24h: int = 0
    failed_7d: int = 0
    #: the wait of each non-empty list's oldest message (tail_ages.py)
    ages: dict[_Part, ListAge] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def parts(self, steps: Sequence[int]) -> list[tuple[_Part, int]]:
        """Every list in display order: each queue's steps from the last to run."""
        return [((q, s), self.lengths.get((q, s), 0)) for q in self.queues for s in reversed(steps)]

    def ahead(self, queue: str, step: int) -> int:
        """Messages of the queue in lists that run before this step's."""
        return sum(n for (q, s), n in self.lengths.items() if q == queue and s < step)


def _oldest(ages: Sequence[ListAge | None]) -> tuple[float | None, bool]:
    """A queue's oldest waiting age from its lists' (None: an empty list): the greatest, and
    whether it is only a lower bound, which it is when any list's age is one or is unknown
    (that list's oldest message may have waited longer)."""
    timed = [a.age_s for a in ages if a is not None and a.age_s is not None]
    if not timed:
        return None, False
    at_least = any(a is not None and (a.at_least or a.age_s is None) for a in ages)
    return max(timed), at_least


class CeleryAdapter:
    """One Celery deployment: a broker (and its global_keyprefix) and a result backend."""

    system: ClassVar[System] = "celery"

    def __init__(
        self,
        client: Redis,
        *,
        source: str,
        results: Redis | None = None,
        global_keyprefix: str = "",
        result_keyprefix: str = "",
        queues: Sequence[str] | None = None,
        jobbridge_prefix: str = "jobbridge:",
        sep: str = DEFAULT_SEP,
        priority_steps: Sequence[int] | None = None,
    ) -> None:
        """Bind an adapter to its clients.

        Args:
            client: the broker's asyncio client (``decode_responses=False``); jobbridge's own
                keys (audit, lifecycle, the result index) live there too.
            source: the configured source name.
            results: the result backend's client, when not the broker's Redis and database.
            global_keyprefix: kombu's ``global_keyprefix`` of the broker.
            result_keyprefix: the result backend's ``global_keyprefix``.
            queues: the queues to show, in order; None discovers them from the bindings.
            jobbridge_prefix: where jobbridge keeps its keys.
            sep, priority_steps: kombu's transport options of the same names; None (not
                configured): kombu's default steps, and every step a list is found for.
        """
        self.client = client
        self.results = results if results is not None else client
        self.source = source
        self.keys = CeleryKeys(
            global_keyprefix,
            sep,
            tuple(priority_steps or PRIORITY_STEPS),
            result_global_keyprefix=result_keyprefix,
        )
        self.configured_queues = tuple(q for q in queues or () if q)
        operator_keys = OperatorKeys(jobbridge_prefix, "celery", global_keyprefix)
        self.operator = OperatorLog(client, source, operator_keys, self._read_record)
        self._scripts = bind(client, __name__.rpartition(".")[0])
        # One pub/sub connection for the watch, the index and the event feed (the index has
        # one of its own on a result backend that is another Redis).
        self.subscription = Subscription(client, source=source)
        self.index = ResultIndex(
            client,
            self.results,
            keys=self.keys,
            base=JobbridgeKeys(global_keyprefix, jobbridge_prefix).index,
            lifecycle_prefix=operator_keys.lifecycle(""),
            source=source,
            subscription=self.subscription if self.results is client else None,
        )
        self.db = int(client.connection_pool.connection_kwargs.get("db", 0) or 0)
        self.watch = WorkerWatch(
            client,
            global_keyprefix=global_keyprefix,
            db=self.db,
            source=source,
            subscription=self.subscription,
        )
        self.sent_times = SentTimes()
        self.task_events = TaskEventFeed(
            client,
            self.index,
            global_keyprefix=global_keyprefix,
            db=self.db,
            source=source,
            subscription=self.subscription,
            sent_times=self.sent_times,
            worker_tasks=self.watch,
        )
        self.tail_ages = TailAges(
            client,
            key=JobbridgeKeys(global_keyprefix, jobbridge_prefix).tail_seen,
            lists=lambda: [self.keys.step_list(q, s) for q, s in self._parts()],
            sent=self.sent_times,
            source=source,
        )
        self.unacked = UnackedView(client, self.keys, jobbridge_prefix=jobbridge_prefix)
        self._unacked_at = float("-inf")
        #: how many reserved task ids the index also has as STARTED (background)
        self._started_held = 0
        self.discovery = QueueDiscovery(
            self._discovery_step,
            default=DEFAULT_QUEUE,
            pass_interval_s=DISCOVERY_PASS_INTERVAL_S,
        )
        #: every ``<queue><sep><n>`` list the broker holds, against priority_steps
        self.priority_lists = PriorityListWatch(
            client,
            self.keys,
            source=source,
            on_found=self._read_found_steps if priority_steps is None else None,
        )
        self._background = False
        self._inspected = False

    @property
    def scripts(self) -> BoundScripts:
        """The ``celery/lua/*.lua`` action scripts bound to the broker's client."""
        return self._scripts

    def _read_found_steps(self, found: frozenset[int]) -> None:
        """Read the steps whose lists a pass found too (``priority_steps`` not configured).

        Steps once read stay read: kombu deletes an emptied list, and a message pushed to it
        later must not go uncounted until the next pass.
        """
        steps = tuple(sorted(set(self.keys.priority_steps) | found))
        if steps != self.keys.priority_steps:
            log.info(
                "source %s: reading the priority steps %s found in the broker",
                self.source,
                list(steps),
            )
            self.keys = replace(self.keys, priority_steps=steps)

    def _read_record(self, stored: str, job_id: str, status: JobStatus) -> JobRecord:
        return actions.lifecycle_record(self.source, stored, job_id, status)

    # ---------------------------------------------------------------- background

    async def start(self) -> None:
        """Start the result index (subscription and backfill), the task event feed, the
        worker watch and the sampler of the lists' oldest messages."""
        if not self._background:
            self._background = True
            await self.index.start()
            await self.task_events.start()
            await self.watch.start()
            await self.subscription.start()
            await self.tail_ages.start()

    async def finished_since(self, cursor: str | None, *, limit: int) -> FinishedBatch:
        """Index entries newly finished (chart series; see finished_feed)."""
        return await finished_feed.finished_since(self.index, cursor, limit)

    async def close(self) -> None:
        await self.tail_ages.close()
        await self.subscription.close()
        await self.watch.close()
        await self.task_events.close()
        await self.index.close()
        await self.client.aclose()
        if self.results is not self.client:
            await self.results.aclose()

    @property
    def queues(self) -> tuple[str, ...]:
        return (self.configured_queues or self.discovery.names)[:MAX_QUEUES]

    @property
    def known_queues(self) -> tuple[str, ...]:
        """Every queue an action may write to: the configured ones, else every one a kombu
        binding names (as of the last discovery pass), shown or not."""
        return self.configured_queues or self.discovery.names

    @property
    def discovery_passes(self) -> int:
        """Completed discovery passes over the binding keys."""
        return self.discovery.passes

    async def refresh_queues(self) -> None:
        """One background step: a SCAN step over the binding keys, and (once a second) a
        sort of ``unacked``."""
        now = time.monotonic()
        held = len(self.unacked.sorted.scheduled) + len(self.unacked.sorted.reserved)
        interval = min(UNACKED_REFRESH_MAX_S, UNACKED_REFRESH_S + held / UNACKED_PER_SECOND)
        if now - self._unacked_at >= interval:
            self._unacked_at = now
            await self._refresh_unacked()
        if not self.configured_queues:
            await self.discovery.refresh()
        await self.priority_lists.refresh()

    async def _refresh_unacked(self) -> None:
        await self.unacked.refresh()
        ids = self.unacked.reserved_ids()
        held = 0
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            scores = await self.client.zmscore(self.index.key(Bucket.RUNNING), chunk)
            held += sum(1 for s in scores if s is not None)
        self._started_held = held

    async def _discovery_step(self, cursor: int) -> tuple[int, list[str]]:
        """The queues the bindings of one SCAN step's exchanges name."""
        pattern = glob_escape(self.keys.binding("")) + "*"
        cursor, found = await self.client.scan(cursor, match=pattern, count=DISCOVERY_SCAN_COUNT)
        exchanges = [
            e
            for e in (self.keys.exchange_of_binding_key(key_text(k)) for k in found)
            if e is not None and e not in PLUMBING_EXCHANGES
        ]
        queues: list[str] = []
        if exchanges:
            pipe = self.client.pipeline(transaction=False)
            for exchange in exchanges:
                pipe.sscan(self.keys.binding(exchange), 0, count=MAX_BINDINGS_READ)
            for reply in await pipe.execute(raise_on_error=False):
                reply = ok(reply)
                if isinstance(reply, list | tuple) and len(reply) == 2:
                    queues += self._queues_bound(reply[1])
        return int(cursor), queues

    def _queues_bound(self, members: Iterable[bytes | str]) -> list[str]:
        queues = []
        for member in members:
            queue = self.keys.queue_of_binding(member)
            if queue is None:
                continue
            # A binding is stored data too: one naming kombu's bookkeeping is no queue.
            jobbridge_prefix = self.operator.keys.jobbridge_prefix
            if text_problem(queue) or self.keys.queue_name_problem(queue, jobbridge_prefix):
                continue
            queues.append(queue)
        return queues

    async def discover_queues(self, max_steps: int = 10_000) -> None:
        """Steps until one full pass completes (the CLI, before a one-shot read)."""
        await self._refresh_unacked()
        if not self.configured_queues:
            await self.discovery.run(max_steps)
        await self.priority_lists.run()
        try:
            # one sighting of the tails, so a one-shot read finds what replicas remembered
            await self.tail_ages.step()
        except redis.exceptions.NoPermissionError:
            pass  # a viewer's ACL user may not run scripts: ages read as lower bounds of 0

    def _parts(self) -> list[_Part]:
        """Every (queue, priority step) list of the queues shown."""
        return [(q, s) for q in self.queues for s in self.keys.priority_steps]

    # ---------------------------------------------------------------- counters

    async def _read_base(self) -> _Base:
        queues = self.queues
        steps = self.keys.priority_steps
        base = _Base(now_ms=int(time.time() * 1000), queues=queues)
        pipe = self.client.pipeline(transaction=False)
        for queue in queues:
            for step in steps:
                pipe.llen(self.keys.step_list(queue, step))
        pipe.hlen(self.keys.unacked)
        self.index.queue_counts(pipe, base.now_ms)
        parts = [(q, s) for q in queues for s in steps]
        plan = self.tail_ages.queue_reads(pipe, [self.keys.step_list(q, s) for q, s in parts])
        replies = [ok(r) for r in await pipe.execute(raise_on_error=False)]
        tail_replies = replies[len(replies) - plan.replies :]
        replies = replies[: len(replies) - plan.replies]
        n = len(queues) * len(steps)
        for index, reply in enumerate(replies[:n]):
            queue, step = queues[index // len(steps)], steps[index % len(steps)]
            if is_wrongtype(reply) or not isinstance(reply, int):
                base.problems.append(f"{self.keys.step_list(queue, step)!r} is not a list")
                reply = 0
            base.lengths[(queue, step)] = int(reply)
        unacked = replies[n]
        base.unacked = int(unacked) if isinstance(unacked, int) else 0
        if is_wrongtype(unacked):
            base.problems.append(
                f"{key_text(self.keys.unacked)!r} is not a hash: the messages workers hold "
                "cannot be read"
            )
        counts = self.index.take_counts(replies[n + 1 : n + 1 + COUNT_REPLIES])
        base.totals = dict(counts.totals)
        base.completed_24h = counts.completed_24h
        base.failed_7d = counts.failed_7d
        await self._read_ages(base, parts, plan, tail_replies)
        held = self.unacked.sorted
        if held.problem:
            base.problems.append(held.problem)
        if held.left_out:
            base.problems.append(
                f"{held.left_out} messages held by workers past the first "
                f"{len(held.scheduled) + len(held.reserved)} are not sorted into the lists"
            )
        hidden = (len(self.configured_queues) or len(self.discovery.names)) - len(queues)
        if hidden > 0:
            base.problems.append(f"{hidden} more queues are not shown (at most {MAX_QUEUES})")
        if self.priority_lists.problem:
            base.problems.append(self.priority_lists.problem)
        return base

    async def _read_ages(
        self, base: _Base, parts: Sequence[_Part], plan: ReadPlan, replies: Sequence[object]
    ) -> None:
        """The age of each non-empty list's oldest message, into ``base`` (tail_ages.py)."""
        ages = await self.tail_ages.take_reads(plan, replies, base.now_ms)
        for part in parts:
            if not base.lengths.get(part):
                continue  # empty (a big tail is not read again: the step's view of it)
            age = ages.get(self.keys.step_list(*part)) or self.tail_ages.not_seen()
            base.ages[part] = age
            if age.problem:
                name = key_text(self.keys.step_list(*part))
                base.problems.append(f"the oldest message of {name!r} {age.problem}")
        if self.tail_ages.problem:
            base.problems.append(self.tail_ages.problem)

    def _started_free(self, base: _Base) -> int:
        """STARTED tasks of the index that no worker holds in ``unacked``."""
        return max(0, base.totals.get(Bucket.RUNNING, 0) - self._started_held)

    def _counters(self, base: _Base) -> Counters:
        held = self.unacked.sorted
        per_queue = []
        for queue in base.queues:
            waiting = sum(base.lengths.get((queue, s), 0) for s in self.keys.priority_steps)
            age, at_least = _oldest([base.ages.get((queue, s)) for s in self.keys.priority_steps])
            per_queue.append(
                QueueCounters(
                    name=queue,
                    enqueued=waiting,
                    oldest_enqueued_age_s=age if waiting else None,
                    oldest_enqueued_age_at_least=at_least and waiting > 0,
                )
            )
        oldest, at_least = _oldest(
            [
                ListAge(q.oldest_enqueued_age_s, q.oldest_enqueued_age_at_least)
                for q in per_queue
                if q.enqueued
            ]
        )
        return Counters(
            enqueued=sum(base.lengths.values()),
            oldest_enqueued_age_s=oldest,
            oldest_enqueued_age_at_least=at_least,
            scheduled=len(held.scheduled),
            running=len(held.reserved) + self._started_free(base),
            completed_24h=base.completed_24h,
            failed_7d=base.failed_7d,
            completed_kept=base.totals.get(Bucket.COMPLETED, 0),
            failed_kept=base.totals.get(Bucket.FAILED, 0),
            canceled=base.totals.get(Bucket.CANCELED, 0),
            queues=tuple(per_queue),
            problems=tuple(base.problems),
        )

    async def counters(self) -> Counters:
        return self._counters(await self._read_base())

    # ---------------------------------------------------------------- snapshot

    async def snapshot(self, query: SnapshotQuery) -> Snapshot:
        base = await self._read_base()
        counters = self._counters(base)
        lists: dict[ListName, Page] = {}
        totals = {
            ListName.ENQUEUED: counters.enqueued,
            ListName.SCHEDULED: counters.scheduled,
            ListName.RUNNING: counters.running,
            ListName.COMPLETED: base.totals.get(Bucket.COMPLETED, 0),
            ListName.FAILED: base.totals.get(Bucket.FAILED, 0),
            ListName.CANCELED: base.totals.get(Bucket.CANCELED, 0),
        }
        for which in ListName:
            rows: list[JobRecord] = []
            if query.rows(which):
                rows = await self._list_page(which, base, query)
            lists[which] = Page(
                items=tuple(rows),
                total=totals[which],
                page=query.page(which),
                per_page=query.size(which),
                skipped=sum(1 for r in rows if r.problem is not None),
            )
        return Snapshot(
            source=self.source,
            system="celery",
            taken_at=datetime.fromtimestamp(base.now_ms / 1000, tz=UTC),
            counters=counters,
            lists=lists,
        )

    async def _list_page(
        self, which: ListName, base: _Base, query: SnapshotQuery
    ) -> list[JobRecord]:
        offset, need = query.offset(which), query.rows(which)
        if which is ListName.ENQUEUED:
            return await self._waiting(base, offset, need)
        if which is ListName.SCHEDULED:
            tags = self.unacked.sorted.scheduled[offset : offset + need]
            return await self.held_rows(tags, JobStatus.SCHEDULED)
        if which is ListName.RUNNING:
            return await self._running(base, offset, need)
        tasks = await self.index.page(_INDEXED[which], offset, need)
        return [records.indexed_row(self.source, t) for t in tasks]

    async def _waiting(self, base: _Base, offset: int, need: int) -> list[JobRecord]:
        plan = spans(base.parts(self.keys.priority_steps), offset, need)
        if not plan:
            return []
        pipe = self.client.pipeline(transaction=False)
        for span in plan:
            queue, step = span.key
            start, stop = span.lrange(newest_at_tail=False)
            pipe.lrange(self.keys.step_list(queue, step), start, stop)
        replies = await pipe.execute(raise_on_error=False)
        rows = []
        pacer = Pacer()
        for span, reply in zip(plan, replies, strict=True):
            reply = ok(reply)
            if is_wrongtype(reply) or not isinstance(reply, list):
                continue
            queue, step = span.key
            ahead = base.ahead(queue, step)
            for offset_in, raw in enumerate(reply):
                message = await offload.decode(records.decode_row, raw, inline_bytes=INLINE_BYTES)
                step_words = (
                    "" if len(self.keys.priority_steps) == 1 else f" (priority step {step})"
                )
                # a message has no enqueue time of its own: its task-sent event, when the app
                # sends them and this process heard it, is that time
                sent_ms = self.sent_times.get(message.task_id)
                rows.append(
                    records.message_row(
                        self.source,
                        message,
                        raw=raw,
                        queue=queue,
                        status=JobStatus.ENQUEUED,
                        raw_status=f"waiting{step_words}",
                        held_since=times.epoch_ms(sent_ms),
                        extra={"place in line": str(ahead + span.place(offset_in))},
                    )
                )
                await pacer.tick()
        return rows

    async def held_rows(self, tags: Sequence[str], status: JobStatus) -> list[JobRecord]:
        """Rows of held messages by delivery tag (one HMGET and one ZMSCORE)."""
        if not tags:
            return []
        pipe = self.client.pipeline(transaction=False)
        pipe.hmget(self.keys.unacked, list(tags))
        pipe.zmscore(self.keys.unacked_index, list(tags))
        values, scores = [ok(r) for r in await pipe.execute(raise_on_error=False)]
        if is_wrongtype(values) or not isinstance(values, list):
            return []
        if not isinstance(scores, list):
            scores = [None] * len(tags)
        pacer = Pacer()
        held = []
        for tag, raw, score in zip(tags, values, scores, strict=True):
            if raw is None:
                continue  # acknowledged since the last sort
            entry = await offload.decode(decode_held, raw, inline_bytes=INLINE_BYTES)
            held.append((tag, raw, score, entry))
            await pacer.tick()
        started: set[str] = set()
        if status is JobStatus.RUNNING:
            started = await self._started(
                [e.message.task_id for *_, e in held if e.message.task_id]
            )
        revoked: set[str] = set()
        if status is JobStatus.SCHEDULED:
            revoked = await revoked_ids(
                self, [e.message.task_id for *_, e in held if e.message.task_id]
            )
        rows = []
        for tag, raw, score, entry in held:
            message = entry.message
            since = times.epoch_s(score)
            row_status, words = status, "held until its eta"
            if status is JobStatus.RUNNING:
                running = message.task_id in started
                row_status = JobStatus.RUNNING
                words = "running (acknowledges late)" if running else "reserved (prefetched)"
            row = records.message_row(
                self.source,
                message,
                raw=raw,
                queue=entry.routing_key or message.routing_key or "",
                status=row_status,
                raw_status=words,
                held_since=since,
                extra={"delivery_tag": tag},
            )
            if entry.problem and row.problem is None:
                row = replace(row, problem=entry.problem)
            if row.id in revoked:
                row = records.revoked_pending(row)
            if score is not None and since is None:
                row = times.with_problem(row, "its score in unacked_index is not a time")
            rows.append(row)
            await pacer.tick()
        return rows

    async def _started(self, ids: Sequence[str]) -> set[str]:
        if not ids:
            return set()
        scores = await self.client.zmscore(self.index.key(Bucket.RUNNING), list(ids))
        return {i for i, s in zip(ids, scores, strict=True) if s is not None}

    async def _running(self, base: _Base, offset: int, need: int) -> list[JobRecord]:
        reserved = self.unacked.sorted.reserved
        rows = await self.held_rows(reserved[offset : offset + need], JobStatus.RUNNING)
        need -= len(reserved[offset : offset + need])
        if need <= 0:
            return rows
        # Then STARTED results no worker holds: read past the held ones and leave them out.
        start = max(0, offset - len(reserved))
        held = self.unacked.sorted.task_ids
        tasks = await self.index.page(Bucket.RUNNING, start, need + self._started_held)
        free = [t for t in tasks if t.task_id not in held][:need]
        return rows + [self._mark_lost(records.indexed_row(self.source, t)) for t in free]

    def _mark_lost(self, row: JobRecord) -> JobRecord:
        """A running task whose worker went offline: overdue since then. Not for a solo
        worker (it sends no heartbeats and answers nothing while it runs a task), nor for a
        worker whose pool was never told or that the watch never heard of."""
        if row.status is not JobStatus.RUNNING or not row.worker or row.overdue_since:
            return row
        gone = self.watch.went_offline(row.worker)
        if gone is None or gone.pool is None or gone.pool in SILENT_POOLS:
            return row
        return replace(row, overdue_since=gone.since, extra={**row.extra, "overdue": LOST_NOTE})

    # ---------------------------------------------------------------- one job

    async def job_entry(self, job_id: str, entry: str) -> JobDetail | None:
        """One waiting message of a task, by its digest; once it is gone, the task's page."""
        return await job_page.job_entry(self, job_id, entry)

    async def job(self, job_id: str) -> JobDetail | None:
        """One task (:mod:`jobbridge.adapters.celery.job_page`)."""
        return await job_page.job(self, job_id)

    # ---------------------------------------------------------------- workers

    async def workers(self) -> tuple[Worker, ...]:
        """The workers the watch has heard from (heartbeats, and stats replies). Without the
        background watch (a one-shot CLI read), one inspection first: a second of replies."""
        if not self._background and not self._inspected:
            self._inspected = True
            try:
                await self.watch.inspect()
            except redis.exceptions.NoPermissionError:
                pass  # a viewer's ACL user may not inspect: the workers heard so far
        return self.watch.workers()

    # ---------------------------------------------------------------- actions

    async def cancel(self, job_id: str, actor: str) -> ActionResult:
        return await actions.cancel(self, job_id, actor)

    async def cancel_entry(self, job_id: str, entry: str, actor: str) -> ActionResult:
        return await actions.cancel(self, job_id, actor, entry)

    async def retry(self, job_id: str, actor: str) -> ActionResult:
        return await actions.retry(self, job_id, actor)

    async def discard(self, job_id: str, actor: str) -> ActionResult:
        return await actions.discard(self, job_id, actor)

    async def stop(self, job_id: str, actor: str) -> ActionResult:
        return await actions.revoke(self, job_id, actor, terminate=True)

    async def revoke(self, job_id: str, actor: str) -> ActionResult:
        return await actions.revoke(self, job_id, actor, terminate=False)
