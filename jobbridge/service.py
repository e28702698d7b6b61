"""The only caller of adapters: coalesced reads, the overview, actions and their audit.

The web app and the CLI talk to a ``JobService``; they never touch Redis. Identical reads that
arrive within ``cache_ttl_s`` share one Redis round trip, so many viewers polling the same
dashboard cost what one does.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from jobbridge.adapters.contract import (
    DiscoversQueues,
    FollowsFinished,
    JobAdapter,
    ListsWorkers,
    NamesEntries,
    RevokesTasks,
    RunsInBackground,
    StopsJobs,
)
from jobbridge.adapters.redis_errors import UNAVAILABLE_ERRORS as UNAVAILABLE_ERRORS
from jobbridge.adapters.redis_errors import read_again_after_drop, redis_errors
from jobbridge.adapters.redis_errors import unavailable_detail as unavailable_detail
from jobbridge.adapters.stopping import cancel_until_done
from jobbridge.bulk.model import BulkRun
from jobbridge.bulk.runner import BulkManager
from jobbridge.coalescer import Coalescer as Coalescer
from jobbridge.errors import SourceTimedOut, SourceUnavailable, UnknownSource
from jobbridge.filters import JobFilter
from jobbridge.model import (
    MAX_JOB_ID_CHARS,
    Action,
    ActionResult,
    AuditEntry,
    Counters,
    JobDetail,
    JobRecord,
    ListName,
    Outcome,
    Snapshot,
    SnapshotQuery,
    System,
    Worker,
    reachable_id,
)
from jobbridge.read_limits import DEFAULT_READ_TIMEOUT_S, ReadLimits
from jobbridge.series.follower import SeriesFollower
from jobbridge.series.model import Series, Window
from jobbridge.series.store import SeriesStore
from jobbridge.settings import SourceConfig
from jobbridge.sources import Redetection, build_adapters
from jobbridge.tally import TALLY_QUERY, SourceSample, tally_document

# ``X as X`` above re-exports: web's shared state words the failures of its own Redis as a
# source's and reaches adapters' modules only through this one; the Coalescer lived here.

log = logging.getLogger(__name__)

#: longest the service waits for its own background tasks to stop
CLOSE_S = 5.0

T = TypeVar("T")

#: What every adapter does, for the API's ``capabilities``; the opt-in protocols add theirs.
BASE_CAPABILITIES = ("snapshot", "job", "cancel", "retry", "discard", "audit", "lifecycle")


def capabilities(adapter: JobAdapter) -> tuple[str, ...]:
    """What a source can do: the base set, plus what its adapter opts into. Whether an action
    applies to one job is that job's ``actions``."""
    extra = (
        ("workers", isinstance(adapter, ListsWorkers)),
        ("stop", isinstance(adapter, StopsJobs)),
        ("revoke", isinstance(adapter, RevokesTasks)),
        ("queue_discovery", isinstance(adapter, DiscoversQueues)),
        ("finished_series", isinstance(adapter, FollowsFinished)),
    )
    return BASE_CAPABILITIES + tuple(name for name, has in extra if has)


async def read(adapter: JobAdapter, load: Callable[[], Awaitable[T]]) -> T:
    """An idempotent read of one source: any Redis failure becomes ``SourceUnavailable``
    naming it, and a read whose connection had dropped (a Redis restart) runs once more."""
    return await read_again_after_drop(adapter.source, adapter.client, load)


#: Failures per source that the overview merges into "most recent failures".
OVERVIEW_FAILURES = 10
#: Newest entries of each audit list that a filtered audit read looks at.
AUDIT_SCAN = 2000
#: Seconds between background queue-discovery steps.
DISCOVERY_INTERVAL_S = 0.5


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceInfo:
    name: str
    system: System
    capabilities: tuple[str, ...]


#: what a source whose read hit a bug of jobbridge's shows (the traceback goes to the log)
INTERNAL_ERROR = "internal error reading this source"


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceRead(Generic[T]):
    """One source's part of a read of every source: what was read, or why it could not be."""

    name: str
    system: System
    value: T | None = None
    #: why the read failed: Redis's words, or ``INTERNAL_ERROR``; None when it did not
    detail: str | None = None
    #: the source's Redis did not answer in time (slow, not down): ``detail`` says how long
    slow: bool = False
    #: the read hit a bug of jobbridge's, not a Redis failure
    internal: bool = False

    @property
    def error(self) -> str | None:
        """The failure in the one wording every page and the API show."""
        if self.detail is None or self.internal:
            return self.detail
        return f"Redis {'slow' if self.slow else 'unavailable'} ({self.detail})"

    @property
    def public_error(self) -> str | None:
        """What an unauthenticated probe may know: how long a slow Redis was given ("timed out
        after 2 s"), "unavailable" or "internal", never Redis's own words."""
        if self.detail is None:
            return None
        if self.slow:
            return self.detail
        return "internal" if self.internal else "unavailable"


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceStatus:
    """One row of the overview: counters, or why they could not be read."""

    name: str
    system: System
    counters: Counters | None
    error: str | None = None
    #: the source's Redis did not answer in time (slow, not down): ``error`` says how long
    slow: bool = False

    @property
    def healthy(self) -> bool:
        return self.error is None

    @classmethod
    def of(cls, read: SourceRead[Any], counters: Counters | None) -> SourceStatus:
        return cls(
            name=read.name, system=read.system, counters=counters, error=read.error, slow=read.slow
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Overview:
    taken_at: datetime
    sources: tuple[SourceStatus, ...]
    #: the newest terminal failures across all sources, newest first
    recent_failures: tuple[JobRecord, ...]
    #: every source's counters as read for the rows, for the comparison (not read again)
    counter_reads: tuple[SourceRead[Counters], ...] = ()


class JobService:
    """Everything the web app and CLI may do, over the configured adapters."""

    def __init__(
        self,
        adapters: Mapping[str, JobAdapter],
        *,
        cache_ttl_s: float = 1.0,
        read_only: bool = False,
        read_timeout_s: float = DEFAULT_READ_TIMEOUT_S,
    ) -> None:
        """Wrap adapters, keyed by source name, in their configured order.

        Args:
            read_timeout_s: how long a read of one source may take (see ``read_limits``).
        """
        self.adapters = dict(adapters)
        self.read_only = read_only
        self.cache = Coalescer(cache_ttl_s)
        self.limits = ReadLimits(read_timeout_s)
        #: one discovery loop per server, so a slow server delays only its own sources'
        self._discovery: list[asyncio.Task[None]] = []
        #: sources whose last discovery step failed (each outage is logged once)
        self._discovery_failing: set[str] = set()
        #: each source's chart series keys (jobbridge.series), and their followers once started
        self._series_stores: dict[str, SeriesStore] = {}
        self._series: list[asyncio.Task[None]] = []
        #: ``serve --redis``'s background detection, once started (``redetect``)
        self._redetecting: asyncio.Task[None] | None = None
        #: whether ``start`` ran (a source added later starts its background work at once)
        self._started = False
        self._bulk: BulkManager | None = None

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Start background queue discovery (bounded SCAN steps, never per request) and the
        background work of the adapters that have some (Celery's result index and worker
        watch)."""
        self._started = True
        if not self._discovery:
            for adapter in self.adapters.values():
                if isinstance(adapter, RunsInBackground):
                    await adapter.start()
            by_server: dict[tuple[str, ...], list[JobAdapter]] = {}
            for adapter in self.adapters.values():
                if isinstance(adapter, DiscoversQueues):
                    by_server.setdefault(self.limits.servers(adapter), []).append(adapter)
            self._discovery = [
                asyncio.create_task(self._discover_forever(group)) for group in by_server.values()
            ]
        if not self._series:
            self._series = [
                asyncio.create_task(SeriesFollower(adapter, self.series_store(name)).run())
                for name, adapter in self.adapters.items()
            ]

    async def add_source(self, name: str, adapter: JobAdapter) -> None:
        """Serve one more source from now on (``serve --redis`` found its system after
        start-up), last in the order; once started, its background work (discovery, the
        adapter's own, its chart series) starts as the others' did.

        Raises:
            ValueError: a source of that name is served already.
        """
        if name in self.adapters:
            raise ValueError(f"source {name!r} is served already")
        if self._started and isinstance(adapter, RunsInBackground):
            await adapter.start()
        # A new dict, not a change of the one a read of every source may be going through.
        self.adapters = {**self.adapters, name: adapter}
        if not self._started:
            return
        if isinstance(adapter, DiscoversQueues):
            self._discovery.append(asyncio.create_task(self._discover_forever([adapter])))
        self._series.append(
            asyncio.create_task(SeriesFollower(adapter, self.series_store(name)).run())
        )

    def redetect(self, detection: Redetection) -> None:
        """Run ``detection`` in the background until ``close``: each system it finds at a
        prefix no source watches becomes a source (``add_source``)."""

        async def add(config: SourceConfig) -> None:
            await self.add_source(config.name, build_adapters([config])[config.name])

        if self._redetecting is None:
            self._redetecting = asyncio.create_task(detection.run(add))

    async def _discover_forever(self, adapters: list[JobAdapter]) -> None:
        while True:
            for adapter in adapters:
                await self._discover_step(adapter)
            await asyncio.sleep(DISCOVERY_INTERVAL_S)

    async def _discover_step(self, adapter: JobAdapter) -> None:
        """One discovery step of one source, logging when it goes bad and when it recovers.

        Steps repeat every ``DISCOVERY_INTERVAL_S``; a source that stays down is logged once,
        not on every retry.
        """
        source = adapter.source
        if not isinstance(adapter, DiscoversQueues):
            return
        try:
            async with redis_errors(source):
                await adapter.refresh_queues()
        except SourceUnavailable as exc:
            if source not in self._discovery_failing:
                log.warning(
                    "queue discovery of source %s failed: Redis unavailable (%s); "
                    "retrying quietly until it recovers",
                    source,
                    exc.detail,
                )
            self._discovery_failing.add(source)
        except Exception:  # keep discovering the other sources
            if source not in self._discovery_failing:
                log.exception(
                    "queue discovery of source %s failed; retrying quietly until it recovers",
                    source,
                )
            self._discovery_failing.add(source)
        else:
            if source in self._discovery_failing:
                self._discovery_failing.discard(source)
                # Same level as the failure, so whoever saw one sees the other.
                log.warning("queue discovery of source %s recovered", source)

    async def discover_once(self) -> None:
        """One whole queue discovery of every source that discovers, for a one-shot command;
        a source whose Redis fails is left for its own read to report."""
        for adapter in self.adapters.values():
            if isinstance(adapter, DiscoversQueues):
                try:
                    async with redis_errors(adapter.source):
                        await adapter.discover_queues()
                except SourceUnavailable:
                    pass

    async def close(self) -> None:
        if self._bulk is not None:
            await self._bulk.close()
        # No source is added once closing has begun.
        redetecting, self._redetecting = self._redetecting, None
        if redetecting is not None:
            await cancel_until_done([redetecting], CLOSE_S)
        tasks, self._discovery = self._discovery + self._series, []
        self._series = []
        await cancel_until_done(tasks, CLOSE_S)
        for adapter in self.adapters.values():
            await adapter.close()

    # ------------------------------------------------------------ reads

    def adapter(self, source: str) -> JobAdapter:
        try:
            return self.adapters[source]
        except KeyError:
            raise UnknownSource(source) from None

    def sources(self) -> list[SourceInfo]:
        return [
            SourceInfo(name=name, system=a.system, capabilities=capabilities(a))
            for name, a in self.adapters.items()
        ]

    async def snapshot(self, source: str, query: SnapshotQuery | None = None) -> Snapshot:
        """One source's dashboard: counters and one page of each list."""
        adapter = self.adapter(source)
        query = query or SnapshotQuery.build()
        key = (
            source,
            "snapshot",
            tuple(sorted(query.pages.items())),
            query.per_page,
            query.history_per_page,
            query.only,
        )
        return await self.cache.get(
            key,
            lambda: self.limits.run(
                adapter, lambda: read(adapter, lambda: self._snapshot(adapter, query))
            ),
        )

    @staticmethod
    async def _snapshot(adapter: JobAdapter, query: SnapshotQuery) -> Snapshot:
        snapshot = await adapter.snapshot(query)
        if isinstance(adapter, ListsWorkers) and query.only is None:
            snapshot = replace(snapshot, workers=await adapter.workers())
        return without_unreachable_actions(snapshot)

    async def counters(self, source: str) -> Counters:
        adapter = self.adapter(source)
        return await self.cache.get(
            (source, "counters"),
            lambda: self.limits.run(adapter, lambda: read(adapter, adapter.counters)),
        )

    async def workers(self, source: str) -> tuple[Worker, ...] | None:
        """A source's registered workers (one coalesced read); None when its system registers
        none."""
        adapter = self.adapter(source)
        if not isinstance(adapter, ListsWorkers):
            return None
        lister = adapter
        return await self.cache.get(
            (source, "workers"),
            lambda: self.limits.run(adapter, lambda: read(adapter, lister.workers)),
        )

    async def read_every_source(
        self, read: Callable[[str], Awaitable[T]], what: str
    ) -> list[SourceRead[T]]:
        """``read`` of every source side by side, in their configured order; a source that
        fails is reported, never raised, so the others still show.

        Args:
            read: reads one source, by name.
            what: names the read in the log line of a bug.
        """

        async def one(name: str, adapter: JobAdapter) -> SourceRead[T]:
            try:
                return SourceRead(name=name, system=adapter.system, value=await read(name))
            except SourceUnavailable as exc:
                slow = isinstance(exc, SourceTimedOut)
                return SourceRead(name=name, system=adapter.system, detail=exc.detail, slow=slow)
            except Exception:  # one source's bug must not fail the others' read
                log.exception("%s of source %s failed", what, name)
                return SourceRead(
                    name=name, system=adapter.system, detail=INTERNAL_ERROR, internal=True
                )

        return list(await asyncio.gather(*(one(n, a) for n, a in self.adapters.items())))

    async def every_counters(self) -> list[SourceRead[Counters]]:
        """Every source's counters (the overview's refresh, the API, /metrics)."""
        return await self.read_every_source(self.counters, "counters")

    async def overview(self) -> Overview:
        """Counters of every source side by side, plus the newest failures across them."""
        # Counters and the newest failures: no other list's page is read.
        first_pages = SnapshotQuery.build(
            per_page=OVERVIEW_FAILURES, only=frozenset({ListName.FAILED})
        )
        reads = await self.read_every_source(
            lambda name: self.snapshot(name, first_pages), "overview"
        )
        rows: list[SourceStatus] = []
        failures: list[JobRecord] = []
        for read in reads:
            snapshot = read.value
            rows.append(SourceStatus.of(read, snapshot.counters if snapshot else None))
            if snapshot is not None:
                failures.extend(snapshot.lists[ListName.FAILED].items)
        epoch = datetime.fromtimestamp(0, tz=UTC)
        # Equal times (Autumn stamps whole ms) fall back to source and id, so the merged list
        # does not reorder between polls.
        failures.sort(key=lambda j: (j.sort_time or epoch, j.source, j.id), reverse=True)
        return Overview(
            taken_at=datetime.now(tz=UTC),
            sources=tuple(rows),
            recent_failures=tuple(failures[:OVERVIEW_FAILURES]),
            counter_reads=tuple(
                SourceRead(
                    name=r.name,
                    system=r.system,
                    value=r.value.counters if r.value else None,
                    detail=r.detail,
                    slow=r.slow,
                    internal=r.internal,
                )
                for r in reads
            ),
        )

    def series_store(self, source: str) -> SeriesStore:
        """The chart series keys of a source, in its Redis under its jobbridge prefix."""
        store = self._series_stores.get(source)
        if store is None:
            adapter = self.adapter(source)
            prefix = adapter.operator.keys.jobbridge_prefix
            store = self._series_stores[source] = SeriesStore(adapter.client, prefix, source)
        return store

    async def series(self, source: str, window: Window, queue: str | None = None) -> Series:
        """A chart series of one source (or of one of its queues, for the first
        ``series.store.MAX_QUEUES`` queues): one HMGET of a bounded hash, shared by the
        readers of the same series within the TTL. Written by the background followers."""
        adapter = self.adapter(source)
        store = self.series_store(source)
        return await self.cache.get(
            (source, "series", window.value, queue),
            lambda: self.limits.run(
                adapter, lambda: read(adapter, lambda: store.read(window, queue, time.time()))
            ),
        )

    async def job_name_counts(self) -> dict[str, Any]:
        """Per-job-name counters across sources (``/actuator/jobs``; see ``jobbridge.tally``)."""
        reads = await self.read_every_source(
            lambda name: self.snapshot(name, TALLY_QUERY), "job-name counts"
        )
        return tally_document(
            [SourceSample(r.name, r.system, r.value, r.public_error) for r in reads]
        )

    async def job(self, source: str, job_id: str, *, entry: str | None = None) -> JobDetail | None:
        """One job wherever it is (with ``entry``: that entry of the id only); viewers of the
        same job within the TTL share one read."""
        adapter = self.adapter(source)
        if not reachable_id(job_id):
            return None
        if entry is None:
            return await self.cache.get(
                (source, "job", job_id),
                lambda: self.limits.run(
                    adapter, lambda: read(adapter, lambda: adapter.job(job_id))
                ),
            )
        if not isinstance(adapter, NamesEntries):
            return None
        named = adapter
        return await self.cache.get(
            (source, "job", job_id, entry),
            lambda: self.limits.run(
                adapter, lambda: read(adapter, lambda: named.job_entry(job_id, entry))
            ),
        )

    async def audit(
        self, source: str | None = None, limit: int = 100, *, job_id: str | None = None
    ) -> list[AuditEntry]:
        """Newest audit entries, of one source or of all, merged newest first.

        Args:
            source: only this source's entries.
            limit: entries returned, 1..1000.
            job_id: only entries about this job (as the job acted on or the job a retry made).

        Filters look at the newest ``AUDIT_SCAN`` entries of each audit list, so a request
        costs the same however long the list is.
        """
        limit = max(1, min(limit, 1000))
        filtering = source is not None or job_id is not None
        adapters = [self.adapter(source)] if source else list(self.adapters.values())
        count = AUDIT_SCAN if filtering else limit
        # Sources in one Redis share one audit list; read it once.
        stores: dict[str, JobAdapter] = {}
        for adapter in adapters:
            stores.setdefault(adapter.operator.audit_store, adapter)

        async def newest(adapter: JobAdapter) -> list[AuditEntry]:
            load = functools.partial(adapter.operator.audit, count)
            return await self.limits.run(adapter, lambda: read(adapter, load))

        # Side by side, so a slow server costs its own timeout, not everyone's in a row.
        results = await asyncio.gather(
            *(newest(a) for a in stores.values()), return_exceptions=True
        )
        entries: list[AuditEntry] = []
        for result in results:
            if isinstance(result, SourceUnavailable) and not source:
                continue
            if isinstance(result, BaseException):
                raise result
            entries.extend(result)
        if source:
            entries = [e for e in entries if e.source == source]
        if job_id is not None:
            entries = [e for e in entries if job_id in (e.job_id, e.new_id)]
        entries.sort(key=lambda e: e.at, reverse=True)
        return entries[:limit]

    async def readiness(self) -> list[SourceRead[None]]:
        """Whether each source's Redis answers a PING."""

        async def ping(name: str) -> None:
            adapter = self.adapters[name]
            await self.limits.run(adapter, lambda: read(adapter, adapter.client.ping))

        return await self.read_every_source(ping, "readiness check")

    async def ready(self) -> dict[str, str | None]:
        """Each source's readiness: None when its Redis answers, else the reason."""
        return {r.name: r.detail for r in await self.readiness()}

    # ------------------------------------------------------------ actions

    async def act(
        self, source: str, job_id: str, action: Action, actor: str, *, entry: str | None = None
    ) -> ActionResult:
        """Run one action on exactly the job named (with ``entry``: on that entry of the id
        only) and report exactly what happened."""
        adapter = self.adapter(source)
        if self.read_only:
            return ActionResult(
                action=action,
                outcome=Outcome.FORBIDDEN,
                job_id=job_id,
                message="jobbridge is in read-only mode; no action was taken.",
            )
        if not reachable_id(job_id):
            return ActionResult(
                action=action,
                outcome=Outcome.NOT_FOUND,
                job_id=job_id[:MAX_JOB_ID_CHARS],
                message=f"Job ids longer than {MAX_JOB_ID_CHARS} characters cannot be named "
                "on any route; nothing was changed.",
            )
        run = {
            Action.CANCEL: adapter.cancel,
            Action.RETRY: adapter.retry,
            Action.DISCARD: adapter.discard,
        }.get(action)
        if action is Action.STOP and isinstance(adapter, StopsJobs):
            run = adapter.stop
        if action is Action.REVOKE and isinstance(adapter, RevokesTasks):
            run = adapter.revoke
        if entry is not None:
            if action is not Action.CANCEL or not isinstance(adapter, NamesEntries):
                return ActionResult(
                    action=action,
                    outcome=Outcome.NOT_FOUND,
                    job_id=job_id,
                    message=f"Job {job_id} has no entry {entry!r} to {action.value}; "
                    "nothing was changed.",
                )
            named, wanted = adapter, entry

            async def run_entry(job_id: str, actor: str) -> ActionResult:
                return await named.cancel_entry(job_id, wanted, actor)

            run = run_entry
        if run is None:
            return ActionResult(
                action=action,
                outcome=Outcome.WRONG_STATE,
                job_id=job_id,
                message=f"{adapter.system} sources have no {action.value} action; "
                "nothing was changed.",
            )
        try:
            # Not read_again_after_drop: an action whose connection dropped may have run.
            async with redis_errors(source):
                result = await run(job_id, actor)
        except SourceUnavailable as exc:
            return ActionResult(
                action=action,
                outcome=Outcome.UNAVAILABLE,
                job_id=job_id,
                message=f"Redis of source {source!r} is unavailable ({exc.detail}); "
                "whether the action applied is unknown: check the audit log.",
            )
        finally:
            self.cache.invalidate(source)
        log.info(
            "action %s on %s/%s by %s: %s",
            action.value,
            source,
            job_id,
            actor,
            result.outcome.value,
        )
        return result

    # ------------------------------------------------------------ bulk actions (issue 19)

    @property
    def bulk(self) -> BulkManager:
        """The bulk runs (jobbridge/bulk/runner.py), made on first use."""
        if self._bulk is None:
            self._bulk = BulkManager(self)
        return self._bulk

    async def bulk_start(
        self,
        source: str,
        action: Action,
        which: ListName,
        job_filter: JobFilter,
        actor: str,
        *,
        ids: Sequence[str] = (),
    ) -> BulkRun:
        """Start a bulk run as a dry run: matching in the background (MATCHING -> MATCHED);
        returns at once.

        Raises:
            UnknownSource; BulkError: a wrong action or list, too many ids; BulkBusy.
        """
        async with redis_errors(source):
            return await self.bulk.start(source, action, which, job_filter, actor, ids)

    async def bulk_confirm(self, source: str, run_id: str, count: int, actor: str) -> BulkRun:
        """Act on exactly the ids the dry run matched, in the background.

        Raises:
            BulkForbidden: read-only mode. BulkNotFound; BulkWrongState: not MATCHED;
            BulkCountMismatch: ``count`` is not ``run.matched``; BulkBusy.
        """
        async with redis_errors(source):
            return await self.bulk.confirm(source, run_id, count, actor)

    async def bulk_read(self, source: str, run_id: str) -> BulkRun | None:
        """A bulk run as stored (by any replica); None: no such run, or it expired."""
        async with redis_errors(source):
            return await self.bulk.read(source, run_id)

    async def bulk_cancel(self, source: str, run_id: str, actor: str) -> BulkRun:
        """Stop a bulk run between two batches (the rest untouched).

        Raises:
            BulkNotFound: no such run.
        """
        async with redis_errors(source):
            return await self.bulk.cancel(source, run_id, actor)


#: a row whose id no route can name says so instead of offering actions that cannot be sent
UNREACHABLE_ID = (
    f"its id is longer than {MAX_JOB_ID_CHARS} characters, so no page, API call or command "
    "can name it: act on it with the system's own tools"
)


def without_unreachable_actions(snapshot: Snapshot) -> Snapshot:
    """Rows whose id is too long for any route offer no action and say why."""

    def fix(job: JobRecord) -> JobRecord:
        if reachable_id(job.id):
            return job
        problem = f"{job.problem}; {UNREACHABLE_ID}" if job.problem else UNREACHABLE_ID
        return replace(job, actions=(), problem=problem)

    if all(reachable_id(j.id) for page in snapshot.lists.values() for j in page.items):
        return snapshot
    lists = {
        name: replace(page, items=tuple(fix(j) for j in page.items))
        for name, page in snapshot.lists.items()
    }
    return replace(snapshot, lists=lists)
