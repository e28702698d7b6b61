"""Running bulk runs: background tasks that match (walk a list in bounded pages, keeping the
ids of matching rows) and, once confirmed, act on exactly those ids in small batches through
``JobService.act`` — the per-job Lua script and audit entry of a single action.

A list shifts while it is walked (workers take jobs, new failures arrive), so ids are collected
first and acted on later: each job's own script then decides, atomically against the workers,
whether the action still applies (its outcome says so). Between steps the task pauses for a
share of the step's time, so the source's Redis keeps serving the workers.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections import Counter
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from jobbridge.adapters.operator_log import AUDIT_LIMIT
from jobbridge.bulk.model import (
    BULK_ACTIONS,
    MAX_BULK_JOBS,
    MAX_LOOKED,
    MAX_SKIPS,
    MAX_TICKED,
    SAMPLE_SIZE,
    BulkBusy,
    BulkCountMismatch,
    BulkError,
    BulkForbidden,
    BulkNotFound,
    BulkRun,
    BulkSkip,
    BulkState,
    BulkWrongState,
)
from jobbridge.bulk.store import BulkStore, LeaseLost, now_ms, run_fields, sample_text, script
from jobbridge.errors import SourceUnavailable
from jobbridge.filters import FILTERABLE, JobFilter
from jobbridge.model import Action, JobRecord, ListName, Outcome, SnapshotQuery, reachable_id

if TYPE_CHECKING:
    from jobbridge.service import JobService

log = logging.getLogger(__name__)

#: rows read per page while matching
MATCH_PAGE = 100
#: jobs acted on per batch while running
BATCH = 20
#: after each step, a pause of this share of the step's time (and at least PAUSE_MIN_S):
#: the Redis a run keeps busy also serves the system's workers
PAUSE_RATIO = 0.5
PAUSE_MIN_S = 0.002
#: seconds between progress writes (and lease renewals) while matching
WRITE_EVERY_S = 0.5
#: bulk runs one process matches or runs at once
MAX_RUNNING = 4
#: characters of an error kept
MAX_ERROR_CHARS = 300


@dataclass(slots=True)
class Tally:
    """What a run has done so far, in the process."""

    looked_at: int = 0
    matched: int = 0
    capped: bool = False
    sample: list[JobRecord] = field(default_factory=list)
    acted: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    skips: int = 0


def new_run(
    source: str,
    action: Action,
    which: ListName,
    job_filter: JobFilter,
    actor: str,
    ids: Sequence[str],
) -> BulkRun:
    return BulkRun(
        id=secrets.token_hex(8),
        source=source,
        action=action,
        list=which,
        filter=job_filter,
        ids=tuple(ids),
        actor=actor,
        created_at=datetime.fromtimestamp(now_ms() / 1000, tz=UTC),
        state=BulkState.MATCHING,
        looked_at=0,
        matched=0,
        capped=False,
        sample=(),
        acted=0,
        outcomes={},
        skipped=(),
        started_at=None,
        finished_at=None,
        canceled_by=None,
        error=None,
    )


async def _pause(started: float) -> None:
    await asyncio.sleep(max(PAUSE_MIN_S, (time.monotonic() - started) * PAUSE_RATIO))


class BulkManager:
    """The bulk runs of one service: their stores, and the tasks this process runs."""

    def __init__(self, service: JobService, max_running: int = MAX_RUNNING) -> None:
        self.service = service
        self.max_running = max_running
        self._tasks: dict[tuple[str, str], asyncio.Task[None]] = {}

    def store(self, source: str, run_id: str) -> BulkStore:
        adapter = self.service.adapter(source)
        prefix = adapter.operator.keys.jobbridge_prefix
        return BulkStore(adapter.client, prefix, source, run_id)

    def running(self) -> int:
        return sum(1 for t in self._tasks.values() if not t.done())

    def _spawn(self, key: tuple[str, str], work: Coroutine[Any, Any, None]) -> None:
        self._tasks = {k: t for k, t in self._tasks.items() if not t.done()}
        self._tasks[key] = asyncio.create_task(work)

    # ------------------------------------------------------------ requests

    async def start(
        self,
        source: str,
        action: Action,
        which: ListName,
        job_filter: JobFilter,
        actor: str,
        ids: Sequence[str] = (),
    ) -> BulkRun:
        """Start a dry run (matching in the background); the run as it stands."""
        self.service.adapter(source)  # UnknownSource first
        if action not in BULK_ACTIONS:
            raise BulkError(f"a bulk action is one of {', '.join(a.value for a in BULK_ACTIONS)}")
        if which not in FILTERABLE:
            raise BulkError(f"a bulk action takes the {', '.join(FILTERABLE)} list")
        ids = list(dict.fromkeys(i for i in ids if i))
        if len(ids) > MAX_TICKED:
            raise BulkError(f"at most {MAX_TICKED:,} ticked jobs per bulk run")
        if self.running() >= self.max_running:
            raise BulkBusy(f"{self.max_running} bulk runs are going already; try when one ends")
        run = new_run(source, action, which, job_filter, actor, ids)
        store = self.store(source, run.id)
        token = secrets.token_hex(8)
        await store.write(token, run_fields(run), first=True)
        self._spawn((source, run.id), self._match_guarded(run, store, token))
        return run

    async def read(self, source: str, run_id: str) -> BulkRun | None:
        self.service.adapter(source)
        if not _valid_id(run_id):
            return None
        return await self.store(source, run_id).read()

    async def confirm(self, source: str, run_id: str, count: int, actor: str) -> BulkRun:
        """Act on exactly the ids the dry run matched.

        Raises:
            BulkForbidden: read-only mode.
            BulkNotFound, BulkWrongState, BulkCountMismatch: see their docs.
        """
        if self.service.read_only:
            raise BulkForbidden("jobbridge is in read-only mode; no action was taken.")
        run = await self._existing(source, run_id)
        if run.state is not BulkState.MATCHED:
            raise BulkWrongState(f"bulk run {run_id} is {run.state.value}, not matched")
        if count != run.matched:
            raise BulkCountMismatch(
                f"the dry run matched {run.matched:,} jobs, not {count:,}: confirm that count"
            )
        store = self.store(source, run_id)
        token = secrets.token_hex(8)
        if not await store.take_lease(token):
            raise BulkWrongState(f"bulk run {run_id} is being run already")
        fresh = await store.read()
        if fresh is None or fresh.state is not BulkState.MATCHED or fresh.matched != count:
            await store.release(token)
            raise BulkWrongState(f"bulk run {run_id} changed meanwhile; read it again")
        if self.running() >= self.max_running:
            await store.release(token)
            raise BulkBusy(f"{self.max_running} bulk runs are going already; try when one ends")
        cancel_by = await store.write(
            token, {"state": BulkState.RUNNING.value, "started_at": now_ms(), "confirmed_by": actor}
        )
        if cancel_by:
            await store.write(token, canceled(cancel_by), last=True)
        else:
            self._spawn((source, run_id), self._act_guarded(fresh, store, token))
        return await self._existing(source, run_id)

    async def cancel(self, source: str, run_id: str, actor: str) -> BulkRun:
        """Stop a run: matching or running, between two steps (the rest untouched); a dry run
        waiting for its confirm, at once.

        Raises:
            BulkNotFound: no such run.
        """
        run = await self._existing(source, run_id)
        if run.finished:
            return run
        store = self.store(source, run_id)
        await store.ask_cancel(actor)
        token = secrets.token_hex(8)
        if await store.take_lease(token):
            # nobody runs it (a dry run waiting for its confirm): it ends here
            fresh = await store.read()
            if fresh is not None and not fresh.finished:
                await store.write(token, canceled(actor), last=True)
            else:
                await store.release(token)
        return await self._existing(source, run_id)

    async def _existing(self, source: str, run_id: str) -> BulkRun:
        run = await self.read(source, run_id)
        if run is None:
            raise BulkNotFound(f"no bulk run {run_id[:40]!r} in source {source!r} (or it expired)")
        return run

    async def close(self) -> None:
        tasks = [t for t in self._tasks.values() if not t.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()

    # ------------------------------------------------------------ matching

    async def _match_guarded(self, run: BulkRun, store: BulkStore, token: str) -> None:
        await self._guarded(run, store, token, self._match(run, store, token))

    async def _act_guarded(self, run: BulkRun, store: BulkStore, token: str) -> None:
        await self._guarded(run, store, token, self._act(run, store, token))

    async def _guarded(
        self, run: BulkRun, store: BulkStore, token: str, work: Coroutine[Any, Any, None]
    ) -> None:
        try:
            await work
        except LeaseLost:
            log.warning("bulk run %s/%s: another process took it over", run.source, run.id)
        except asyncio.CancelledError:
            await asyncio.shield(self._give_up(run, store, token, "stopped: jobbridge shut down"))
            raise
        except SourceUnavailable as exc:
            await self._give_up(run, store, token, f"Redis unavailable ({exc.detail})")
        except Exception as exc:
            log.exception("bulk run %s/%s failed", run.source, run.id)
            await self._give_up(run, store, token, f"{type(exc).__name__}: {exc}")

    async def _give_up(self, run: BulkRun, store: BulkStore, token: str, error: str) -> None:
        fields: dict[str, str | int] = {
            "state": BulkState.FAILED.value,
            "error": error[:MAX_ERROR_CHARS],
            "finished_at": now_ms(),
        }
        try:
            await store.write(token, fields, last=True)
            stored = await store.read()
            if stored is not None and stored.started_at is not None:
                await self._audit(stored)
        except Exception:  # Redis is gone: the lease expires and the run reads interrupted
            log.warning("bulk run %s/%s: its failure could not be stored", run.source, run.id)

    async def _match(self, run: BulkRun, store: BulkStore, token: str) -> None:
        matcher = Matcher(run, store, token)
        if run.ids:
            going = await self._match_ids(run, matcher)
        else:
            going = await self._match_list(run, matcher)
        if going:
            await matcher.finish()

    async def _match_ids(self, run: BulkRun, matcher: Matcher) -> bool:
        """Look the ticked ids up (one read each); False: stopped."""
        for start in range(0, len(run.ids), MATCH_PAGE):
            began = time.monotonic()
            chunk = run.ids[start : start + MATCH_PAGE]
            rows = []
            for job_id in chunk:
                detail = await self.service.job(run.source, job_id)
                if detail is not None:
                    rows.append(detail.job)
            if not await matcher.step(rows, len(chunk)):
                return False
            await _pause(began)
        return True

    async def _match_list(self, run: BulkRun, matcher: Matcher) -> bool:
        """Walk the list a bounded page at a time; False: stopped."""
        page = 1
        while matcher.tally.looked_at < MAX_LOOKED:
            began = time.monotonic()
            query = SnapshotQuery.build(
                {run.list: page},
                MATCH_PAGE,
                history_per_page=MATCH_PAGE,
                only=frozenset({run.list}),
            )
            snapshot = await self.service.snapshot(run.source, query)
            listed = snapshot.lists.get(run.list)
            if listed is None:
                return True
            looked = len(listed.items) + listed.skipped
            if not await matcher.step(listed.items, looked):
                return False
            if looked < MATCH_PAGE or page * MATCH_PAGE >= listed.total:
                return True
            page += 1
            await _pause(began)
        matcher.tally.capped = True
        return True

    # ------------------------------------------------------------ acting

    async def _act(self, run: BulkRun, store: BulkStore, token: str) -> None:
        tally = Tally(acted=0)
        index = 0
        ended: dict[str, str | int] = {"state": BulkState.DONE.value}
        while index < run.matched:
            began = time.monotonic()
            batch = await store.ids(index, BATCH)
            if not batch:
                break
            skips: list[BulkSkip] = []
            for job_id, entry in batch:
                result = await self.service.act(
                    run.source, job_id, run.action, run.actor, entry=entry
                )
                tally.acted += 1
                tally.outcomes[result.outcome.value] += 1
                if result.outcome is not Outcome.DONE and tally.skips < MAX_SKIPS:
                    tally.skips += 1
                    outcome, message = result.outcome.value, result.message
                    skips.append(BulkSkip(job_id=job_id, outcome=outcome, message=message))
            index += len(batch)
            fields: dict[str, str | int] = {
                "acted": tally.acted,
                "outcomes": json.dumps(dict(tally.outcomes), ensure_ascii=True),
            }
            cancel_by = await store.write(token, fields, skips=skips)
            if cancel_by and index < run.matched:
                ended = canceled(cancel_by)
                break
            await _pause(began)
        ended["finished_at"] = now_ms()
        await store.write(token, ended, last=True)
        stored = await store.read()
        if stored is not None:
            await self._audit(stored)

    async def _audit(self, run: BulkRun) -> None:
        """The bulk run's own audit entry (each job has its own, written by its script)."""
        adapter = self.service.adapter(run.source)
        counts = ", ".join(f"{k} {v:,}" for k, v in sorted(run.outcomes.items())) or "none"
        what = f"{len(run.ids)} ticked jobs" if run.ids else run.filter.describe()
        message = (
            f"bulk {run.action.value} of {what} on the {run.list.value} list: "
            f"matched {run.matched:,}{' (capped)' if run.capped else ''}, acted on "
            f"{run.acted:,}: {counts}"
        )
        if run.canceled_by:
            message += f"; canceled by {run.canceled_by}"
        if run.error:
            message += f"; {run.error}"
        entry = json.dumps(
            {
                "at_ms": now_ms(),
                "actor": run.actor,
                "source": run.source,
                "job_id": f"bulk:{run.id}",
                "action": f"bulk_{run.action.value}",
                "outcome": run.state.value,
                "new_id": "",
                "message": message,
                "entry": "",
            },
            ensure_ascii=True,
        )
        audit = adapter.client.register_script(script("audit"))
        await audit(keys=[adapter.operator.keys.audit], args=[entry, AUDIT_LIMIT])


class Matcher:
    """The matching rows of a run's steps, written as they are found."""

    def __init__(self, run: BulkRun, store: BulkStore, token: str) -> None:
        self.run = run
        self.store = store
        self.token = token
        self.tally = Tally()
        self.seen: set[tuple[str, str | None]] = set()
        self.last_write = time.monotonic()

    def wants(self, row: JobRecord) -> bool:
        run = self.run
        if run.action not in row.actions or not reachable_id(row.id):
            return False
        return bool(run.ids) or run.filter.matches(row, run.list)

    async def step(self, rows: Sequence[JobRecord], looked: int) -> bool:
        """Keep the matching rows of one step; False: stop (canceled, or the cap reached)."""
        tally = self.tally
        tally.looked_at += looked
        sampled = len(tally.sample)
        fresh: list[tuple[str, str | None]] = []
        for row in rows:
            key = (row.id, row.entry)
            if key in self.seen or not self.wants(row):
                continue
            if tally.matched >= MAX_BULK_JOBS:
                tally.capped = True
                break
            self.seen.add(key)
            fresh.append(key)
            tally.matched += 1
            if len(tally.sample) < SAMPLE_SIZE:
                tally.sample.append(row)
        fields: dict[str, str | int] = {"looked_at": tally.looked_at, "matched": tally.matched}
        if len(tally.sample) > sampled:
            fields["sample"] = sample_text(tally.sample)
        if fresh or time.monotonic() - self.last_write >= WRITE_EVERY_S:
            cancel_by = await self.store.write(self.token, fields, ids=fresh)
            self.last_write = time.monotonic()
            if cancel_by:
                await self.store.write(self.token, {**fields, **canceled(cancel_by)}, last=True)
                return False
        return not tally.capped

    async def finish(self) -> None:
        tally = self.tally
        final: dict[str, str | int] = {
            "looked_at": tally.looked_at,
            "matched": tally.matched,
            "capped": int(tally.capped),
            "sample": sample_text(tally.sample),
            "state": BulkState.MATCHED.value,
        }
        cancel_by = await self.store.write(self.token, final)
        if cancel_by:
            final.update(canceled(cancel_by))
        await self.store.write(self.token, final, last=True)


def canceled(actor: str) -> dict[str, str | int]:
    """The fields of a run stopped by ``actor``."""
    return {"state": BulkState.CANCELED.value, "canceled_by": actor, "finished_at": now_ms()}


def _valid_id(run_id: str) -> bool:
    return 0 < len(run_id) <= 32 and all(c in "0123456789abcdef" for c in run_id)
