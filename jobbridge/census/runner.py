"""Running a census: the pages of a queue read one step at a time in a background task, the
tally kept in the process, progress and result written to Redis (``store.py``).

Each step is one LRANGE of ``plan.page`` elements and the system's count of them (one read
of the page's records, decoded in the decoding process: jobbridge.offload); the task yields
to the event loop between steps, so requests are served while a million jobs are read.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from jobbridge.adapters import systems
from jobbridge.adapters.values import is_wrongtype, ok
from jobbridge.census.model import (
    MAX_DISTINCT,
    TOP,
    CensusBusy,
    CensusPlan,
    CensusResult,
    CensusState,
    CensusUnsupported,
    PageCount,
)
from jobbridge.census.store import CensusStore

if TYPE_CHECKING:
    from jobbridge.adapters.contract import JobAdapter

log = logging.getLogger(__name__)

#: seconds between progress writes (and lease renewals) while reading
WRITE_EVERY_S = 0.5
#: censuses one process runs at once (each is one Redis command in flight at a time)
MAX_RUNNING = 2
#: characters of an error kept in a failed result
MAX_ERROR_CHARS = 300
#: after each step, a pause of this share of the step's time: a census is background work,
#: and the Redis it keeps busy also serves the system's workers (and this process's requests
#: share its cores), so it takes about two thirds of the time at most
PAUSE_RATIO = 0.5

Progress = Callable[[int, int], None]


class LeaseLost(Exception):
    """Another process holds the census's lease now; this run stops writing."""


def plan_for(adapter: JobAdapter, queue: str) -> CensusPlan:
    """The census plan of one queue of a source, from its system's registry entry.

    Raises:
        CensusUnsupported: the system has no census reader.
    """
    spec = systems().get(str(adapter.system))
    if spec is None or spec.census is None:
        title = spec.title if spec is not None else str(adapter.system)
        raise CensusUnsupported(f"{title} sources have no queue census")
    return spec.census(adapter, queue)


def store_for(adapter: JobAdapter, queue: str) -> CensusStore:
    """The census keys of a queue, in the source's Redis under its jobbridge prefix."""
    prefix = adapter.operator.keys.jobbridge_prefix
    return CensusStore(adapter.client, prefix, adapter.source, queue)


def _now_ms() -> int:
    return int(time.time() * 1000)


class Tally:
    """The counts of the pages read so far."""

    def __init__(self, principals: bool) -> None:
        self.names: Counter[str] = Counter()
        self.principals: Counter[str] | None = Counter() if principals else None
        self.other_names = 0
        self.other_principals = 0
        self.read = 0
        self.missing = 0

    def add(self, page: PageCount, elements: int) -> None:
        self.read += elements
        self.missing += page.missing
        self.other_names += _merge(self.names, page.names)
        if self.principals is not None and page.principals is not None:
            self.other_principals += _merge(self.principals, page.principals)

    def fields(self) -> dict[str, str | int]:
        top = self.names.most_common(TOP)
        fields: dict[str, str | int] = {
            "read": self.read,
            "missing": self.missing,
            "names": json.dumps(top, ensure_ascii=True),
            "other_names": self.other_names + sum(self.names.values()) - sum(c for _, c in top),
            "distinct": len(self.names) + (1 if self.other_names else 0),
        }
        if self.principals is not None:
            ptop = self.principals.most_common(TOP)
            fields["principals"] = json.dumps(ptop, ensure_ascii=True)
            fields["other_principals"] = (
                self.other_principals + sum(self.principals.values()) - sum(c for _, c in ptop)
            )
        return fields


def _merge(into: Counter[str], page: dict[str, int]) -> int:
    """Add a page's counts; names past ``MAX_DISTINCT`` are not kept: their count returns."""
    left_out = 0
    for name, count in page.items():
        if name in into or len(into) < MAX_DISTINCT:
            into[name] += count
        else:
            left_out += count
    return left_out


async def _lengths(plan: CensusPlan) -> tuple[list[int], list[str]]:
    pipe = plan.client.pipeline(transaction=False)
    for key in plan.lists:
        pipe.llen(key)
    lengths, problems = [], []
    for key, reply in zip(plan.lists, await pipe.execute(raise_on_error=False), strict=True):
        reply = ok(reply)
        if is_wrongtype(reply) or not isinstance(reply, int):
            problems.append(f"{key!r} is not a list")
            reply = 0
        lengths.append(int(reply))
    return lengths, problems


def coverage_note(start: int, end: int, read: int, short: bool, missing: int) -> str | None:
    """What the counts cover when it is not exactly the queue as it was at the start."""
    notes = []
    if short or end != start:
        notes.append(
            f"the queue changed during the read ({start:,} waiting at the start, {end:,} at "
            f"the end): the counts are of the {read:,} jobs read in pages from the head, and "
            "jobs that workers took or that were added meanwhile may be missed or counted twice"
        )
    if missing:
        notes.append(f"{missing:,} ids read had no record any more (taken meanwhile)")
    return "; ".join(notes) or None


async def run_census(
    plan: CensusPlan, store: CensusStore, token: str, progress: Progress | None = None
) -> None:
    """Read the queue to the end (of its length at the start), writing progress as it goes;
    the caller holds the lease under ``token``.

    Raises:
        LeaseLost: another process took the lease (its census wins; nothing more is written).
    """
    started = _now_ms()
    lengths, problems = await _lengths(plan)
    total = sum(lengths)
    tally = Tally(plan.principals)
    head: dict[str, str | int] = {
        "state": CensusState.RUNNING.value,
        "total": total,
        "started_at": started,
    }
    if not await store.write(token, {**head, **tally.fields(), "updated_at": started}, first=True):
        raise LeaseLost
    if progress is not None:
        progress(0, total)
    last_write = time.monotonic()
    short = False
    for key, length in zip(plan.lists, lengths, strict=True):
        offset = 0
        while offset < length:
            step_started = time.monotonic()
            stop = min(offset + plan.page, length) - 1
            elements: list[Any]
            if plan.read is not None:
                elements = await plan.read(key, offset, stop)
            else:
                reply = ok(await plan.client.lrange(key, offset, stop))
                elements = reply if isinstance(reply, list) else []
            if elements:
                tally.add(await plan.count(elements), len(elements))
            if progress is not None:
                progress(tally.read, total)
            if len(elements) < stop - offset + 1:
                short = True  # the list got shorter than it was: its end is reached
                break
            offset += len(elements)
            if time.monotonic() - last_write >= WRITE_EVERY_S:
                fields = {**tally.fields(), "updated_at": _now_ms()}
                if not await store.write(token, fields):
                    raise LeaseLost
                last_write = time.monotonic()
            await asyncio.sleep((time.monotonic() - step_started) * PAUSE_RATIO)
    end_lengths, _ = await _lengths(plan)
    note = coverage_note(total, sum(end_lengths), tally.read, short, tally.missing)
    if problems:
        note = "; ".join([*problems, *([note] if note else [])])
    done = _now_ms()
    fields = {
        **tally.fields(),
        "state": CensusState.DONE.value,
        "updated_at": done,
        "finished_at": done,
        "note": note or "",
    }
    if not await store.write(token, fields, last=True):
        raise LeaseLost


async def run_guarded(
    plan: CensusPlan, store: CensusStore, token: str, progress: Progress | None = None
) -> None:
    """``run_census``, its failure stored as the result (and the lease given up)."""
    try:
        await run_census(plan, store, token, progress)
    except LeaseLost:
        log.warning("census of %s/%s: another process took it over", store.source, store.queue)
    except asyncio.CancelledError:
        await asyncio.shield(_give_up(store, token, "stopped: jobbridge shut down"))
        raise
    except Exception as exc:
        log.exception("census of %s/%s failed", store.source, store.queue)
        await _give_up(store, token, f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS])


async def _give_up(store: CensusStore, token: str, error: str) -> None:
    now = _now_ms()
    fields: dict[str, str | int] = {
        "state": CensusState.FAILED.value,
        "error": error,
        "updated_at": now,
        "finished_at": now,
    }
    try:
        await store.write(token, fields, last=True)
    except Exception:  # Redis is gone: the lease expires and the result reads interrupted
        log.warning("census of %s/%s: its failure could not be stored", store.source, store.queue)


class CensusManager:
    """The censuses this process runs, one background task per queue."""

    def __init__(self, max_running: int = MAX_RUNNING) -> None:
        self.max_running = max_running
        self._tasks: dict[tuple[str, str], asyncio.Task[None]] = {}

    def running(self) -> int:
        return sum(1 for t in self._tasks.values() if not t.done())

    async def start(self, adapter: JobAdapter, queue: str) -> CensusResult:
        """Start a census of the queue unless one runs (here or on another replica); the
        census as it stands now.

        Raises:
            CensusUnsupported: the system has no census reader.
            CensusBusy: this process runs ``max_running`` censuses already.
        """
        plan = plan_for(adapter, queue)
        store = store_for(adapter, queue)
        key = (adapter.source, queue)
        task = self._tasks.get(key)
        if task is None or task.done():
            if self.running() >= self.max_running:
                raise CensusBusy(
                    f"{self.max_running} censuses are running already; try again when one ends"
                )
            token = secrets.token_hex(8)
            if await store.take_lease(token):
                # The first write (state running, read 0) happens before the task yields, so
                # the answer below already shows the new census.
                ready = asyncio.Event()
                self._tasks[key] = asyncio.create_task(self._run(plan, store, token, ready))
                await ready.wait()
        result = await store.read()
        # None: another process took the lease an instant ago and has not written yet
        return result if result is not None else _empty(adapter.source, queue)

    async def _run(
        self, plan: CensusPlan, store: CensusStore, token: str, ready: asyncio.Event
    ) -> None:
        def progress(read: int, total: int) -> None:
            ready.set()

        try:
            await run_guarded(plan, store, token, progress)
        finally:
            ready.set()

    async def result(self, adapter: JobAdapter, queue: str) -> CensusResult | None:
        """The stored census of a queue; None when there is none."""
        plan_for(adapter, queue)  # a system without a census says so
        return await store_for(adapter, queue).read()

    async def close(self) -> None:
        tasks = [t for t in self._tasks.values() if not t.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()


def _empty(source: str, queue: str) -> CensusResult:
    return CensusResult(
        source=source,
        queue=queue,
        state=CensusState.RUNNING,
        total_at_start=0,
        read=0,
        names=(),
        other_names=0,
        distinct_names=0,
        principals=None,
        other_principals=0,
        missing=0,
        started_at=None,
        finished_at=None,
        updated_at=None,
    )
