"""The background follower of one source's chart series: each step, the replica holding the
source's lease reads a bounded batch of newly finished jobs from the system's feed
(``FollowsFinished``), samples the queue depths, and writes both with one script
(``lua/write.lua``) that re-checks the lease and the cursor it read from.

Started by the web app's service (``JobService.start``), never by one-shot CLI reads.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from dataclasses import dataclass

from jobbridge.adapters.contract import FollowsFinished, JobAdapter
from jobbridge.adapters.finished import BATCH, FinishedJob
from jobbridge.series.store import LEASE_LOST, MAX_QUEUES, STALE_CURSOR, SeriesStore

log = logging.getLogger(__name__)

#: seconds between steps (a step with more already waiting is followed at once)
INTERVAL_S = 1.0
#: how long a lease outlives its last renewal: a replica that stops is replaced this fast
LEASE_MS = 10_000
#: steps run back to back while the feed says more is waiting, before a pause
CATCH_UP_STEPS = 20


@dataclass(slots=True)
class StepReport:
    """What one step did (tests and the benchmark read it)."""

    wrote: bool = False
    counted: int = 0
    read: int = 0
    more: bool = False


class SeriesFollower:
    """Follows one source; ``run`` loops until cancelled."""

    def __init__(
        self,
        adapter: JobAdapter,
        store: SeriesStore,
        *,
        interval_s: float = INTERVAL_S,
        batch: int = BATCH,
    ) -> None:
        self.adapter = adapter
        self.store = store
        self.interval_s = interval_s
        self.batch = batch
        #: this replica's lease token
        self.token = secrets.token_hex(8)
        self._failing = False

    async def step(self) -> StepReport:
        """One bounded step: renew (or take) the lease; when held, read, sample and write."""
        report = StepReport()
        if not await self.store.hold_lease(self.token, LEASE_MS):
            return report
        read_from = await self.store.cursor()
        jobs: tuple[FinishedJob, ...] = ()
        cursor = read_from or ""
        if isinstance(self.adapter, FollowsFinished):
            batch = await self.adapter.finished_since(read_from, limit=self.batch)
            jobs, cursor, report.more = batch.jobs, batch.cursor, batch.more
        counters = await self.adapter.counters()
        depths: list[tuple[str, int | None]] = [
            (q.name, q.enqueued) for q in counters.queues[:MAX_QUEUES]
        ]
        named = {name for name, _ in depths}
        for job in jobs:
            # A queue seen only in finished jobs still gets its series (no depth sample).
            if job.queue is not None and job.queue not in named and len(depths) < MAX_QUEUES:
                depths.append((job.queue, None))
                named.add(job.queue)
        counted = await self.store.write(
            token=self.token,
            read_from=read_from,
            cursor=cursor,
            now_s=int(time.time()),
            enqueued=counters.enqueued,
            queue_depths=depths,
            jobs=jobs,
        )
        report.read = len(jobs)
        if counted in (LEASE_LOST, STALE_CURSOR):
            report.more = False
            return report
        report.wrote, report.counted = True, counted
        return report

    async def run(self) -> None:
        """Step until cancelled; a failing step is logged once per outage, not per retry."""
        try:
            while True:
                for _ in range(CATCH_UP_STEPS):
                    if not (await self._safe_step()).more:
                        break
                await asyncio.sleep(self.interval_s)
        finally:
            try:
                await asyncio.shield(self.store.release(self.token))
            except Exception:  # closing: the lease then expires on its own
                pass

    async def _safe_step(self) -> StepReport:
        source = self.adapter.source
        try:
            report = await self.step()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # keep following; the series shows a gap, not an error
            if not self._failing:
                log.warning("chart series of source %s: step failed (%s)", source, exc)
            self._failing = True
            return StepReport()
        if self._failing:
            log.warning("chart series of source %s recovered", source)
            self._failing = False
        return report
