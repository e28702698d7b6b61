"""The comparison of every source and queue side by side: the overview's sortable table, the
``/api/compare`` reply and ``jobbridge compare``.

One row per source, then one per queue of it: depth, oldest waiting age, throughput and failure
rate over the last 5 and 60 minutes (from the chart series), workers busy / idle, overdue
running jobs. Built from the service's coalesced reads only (every source's counters, one
workers read and one hour series per source and per queue), so a refresh costs O(sources +
queues) Redis work, never a scan.

"Worst first", the default order: a source that cannot be read; then the highest failure rate
over the last 5 minutes; then the oldest waiting job; then the deepest queue.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from jobbridge.adapters.registry import systems
from jobbridge.errors import SourceUnavailable
from jobbridge.model import Counters, System, Worker, api
from jobbridge.serialize import rfc3339, to_json
from jobbridge.series.model import STEP_S, SeriesPoint, Window
from jobbridge.service import JobService, SourceRead

log = logging.getLogger(__name__)

#: the two windows of throughput and failure rate, in minutes
SHORT_MINUTES = 5
LONG_MINUTES = 60

#: how the page and the CLI say what "worst" means
WORST_FIRST = (
    "Worst first: sources that cannot be read, then the highest failure rate over the last "
    "5 minutes, then the oldest waiting job, then the deepest queue."
)


class RowKind(enum.StrEnum):
    """What a row compares."""

    SOURCE = "source"
    QUEUE = "queue"


class SortKey(enum.StrEnum):
    """The columns the comparison sorts by (``?sort=`` and ``--sort``)."""

    WORST = "worst"
    NAME = "name"
    SYSTEM = "system"
    DEPTH = "depth"
    OLDEST = "oldest"
    THROUGHPUT_5M = "throughput_5m"
    FAILURE_5M = "failure_5m"
    THROUGHPUT_60M = "throughput_60m"
    FAILURE_60M = "failure_60m"
    BUSY = "busy"
    IDLE = "idle"
    OVERDUE = "overdue"


class Direction(enum.StrEnum):
    ASC = "asc"
    DESC = "desc"


#: the direction a first click on a column sorts in: names A-Z, numbers largest first
DEFAULT_DIRECTION = {key: Direction.DESC for key in SortKey} | {
    SortKey.NAME: Direction.ASC,
    SortKey.SYSTEM: Direction.ASC,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Rates:
    """Jobs that finished over the last minutes of a chart series."""

    minutes: int = field(metadata=api("the window, in minutes"))
    completed: int = field(metadata=api("jobs that completed in the window"))
    failed: int = field(metadata=api("jobs that failed terminally in the window"))
    per_minute: float = field(
        metadata=api("throughput: jobs that finished (completed + failed) per minute")
    )
    failure_rate: float | None = field(
        metadata=api("failed / (completed + failed), 0..1; null when none finished")
    )


def rates(points: Sequence[SeriesPoint], minutes: int, step_s: int = 60) -> Rates:
    """The sums of the last ``minutes`` worth of points (oldest first, the last one holding
    now), as counts, jobs per minute and a failure rate.

    Args:
        points: a series' points, oldest first.
        minutes: the window; fewer points than it covers count as what there is, still
            divided by the whole window.
        step_s: seconds per point.
    """
    count = max(0, minutes * 60 // step_s)
    last = points[-count:] if count else ()
    completed = sum(p.completed for p in last)
    failed = sum(p.failed for p in last)
    finished = completed + failed
    return Rates(
        minutes=minutes,
        completed=completed,
        failed=failed,
        per_minute=finished / minutes if minutes > 0 else 0.0,
        failure_rate=failed / finished if finished else None,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class CompareRow:
    """One source, or one queue of a source, as the comparison shows it."""

    kind: RowKind = field(metadata=api("a whole source, or one queue of it"))
    source: str
    system: System = field(metadata=api(systems=True))
    queue: str | None = field(default=None, metadata=api("the queue (null on a source row)"))
    depth: int | None = field(
        default=None, metadata=api("jobs waiting for a worker (null: the source is unreadable)")
    )
    oldest_enqueued_age_s: float | None = field(
        default=None, metadata=api("age of the oldest waiting job, seconds (null: none/unknown)")
    )
    oldest_enqueued_age_at_least: bool = field(
        default=False,
        metadata=api(
            "the age is a lower bound: the system does not record when the job was enqueued, "
            "and jobbridge counts from when it first saw it"
        ),
    )
    last_5m: Rates | None = field(
        default=None, metadata=api("finished jobs over the last 5 minutes (null: not read)")
    )
    last_60m: Rates | None = field(
        default=None, metadata=api("finished jobs over the last 60 minutes (null: not read)")
    )
    workers_busy: int | None = field(
        default=None,
        metadata=api(
            "registered workers running a job (on a queue row: that listen on the queue); "
            "null where the system registers no workers"
        ),
    )
    workers_idle: int | None = field(
        default=None, metadata=api("registered workers waiting for work; null as workers_busy")
    )
    workers_away: int | None = field(
        default=None,
        metadata=api("registered workers neither busy nor idle (dead, offline, suspended)"),
    )
    running_overdue: int | None = field(
        default=None,
        metadata=api("running jobs past their claim's deadline (source rows only)"),
    )
    error: str | None = field(default=None, metadata=api("why the source could not be read"))
    slow: bool = field(default=False, metadata=api("the source's Redis did not answer in time"))
    problems: tuple[str, ...] = field(
        default=(), metadata=api("parts of the row that could not be read (series, workers)")
    )

    @property
    def name(self) -> str:
        return self.queue if self.queue is not None else self.source

    @property
    def failure_5m(self) -> float | None:
        return self.last_5m.failure_rate if self.last_5m else None


@dataclass(frozen=True, slots=True, kw_only=True)
class Comparison:
    """Every source's row followed by its queues' rows, in the requested order."""

    taken_at: datetime
    sort: SortKey
    dir: Direction
    rows: tuple[CompareRow, ...]


def comparison_json(comparison: Comparison) -> dict[str, Any]:
    """The API's and ``jobbridge compare --json``'s one shape."""
    return {
        "taken_at": rfc3339(comparison.taken_at),
        "sort": comparison.sort.value,
        "dir": comparison.dir.value,
        "rows": [to_json(row) for row in comparison.rows],
    }


# ---------------------------------------------------------------------------- workers


def default_worker_busy(worker: Worker) -> bool | None:
    """Busy (True), idle (False) or neither (None), for a system whose registry entry has no
    ``worker_busy`` of its own: a current job or "busy" is busy, "idle" is idle."""
    if worker.current_job is not None or worker.state == "busy" or (worker.active or 0) > 0:
        return True
    return False if worker.state == "idle" else None


def worker_busy_of(system: System) -> Callable[[Worker], bool | None]:
    spec = systems().get(system)
    if spec is not None and spec.worker_busy is not None:
        return spec.worker_busy
    return default_worker_busy


@dataclass(frozen=True, slots=True)
class WorkerCounts:
    busy: int
    idle: int
    away: int


def count_workers(
    workers: Sequence[Worker], busy_of: Callable[[Worker], bool | None], queue: str | None = None
) -> WorkerCounts:
    """Busy, idle and away workers (with ``queue``: of those that listen on it)."""
    busy = idle = away = 0
    for worker in workers:
        if queue is not None and queue not in worker.queues:
            continue
        state = busy_of(worker)
        if state is True:
            busy += 1
        elif state is False:
            idle += 1
        else:
            away += 1
    return WorkerCounts(busy, idle, away)


@dataclass(frozen=True, slots=True)
class QueueWorkers:
    """The workers that consume one queue: how many, and how many of them are busy, idle
    and neither (dead, offline, suspended)."""

    queue: str
    workers: int
    busy: int
    idle: int
    away: int


def workers_by_queue(workers: Sequence[Worker], system: System) -> list[QueueWorkers]:
    """Per queue any of ``workers`` consumes (by name), its consumers counted by the
    system's own busy rule (:func:`worker_busy_of`, :func:`count_workers`)."""
    busy_of = worker_busy_of(system)
    queues = sorted({q for w in workers for q in w.queues})
    out = []
    for queue in queues:
        counts = count_workers(workers, busy_of, queue)
        total = counts.busy + counts.idle + counts.away
        out.append(QueueWorkers(queue, total, counts.busy, counts.idle, counts.away))
    return out


# ---------------------------------------------------------------------------- building


async def compare(
    service: JobService,
    sort: SortKey = SortKey.WORST,
    direction: Direction | None = None,
    reads: Sequence[SourceRead[Counters]] | None = None,
) -> Comparison:
    """The comparison of every source, sorted (``direction`` None: the column's default).

    Args:
        reads: every source's counters when the caller has just read them (the overview's
            fragment shows them too), so they are not read twice.
    """
    if reads is None:
        reads = await service.every_counters()
    groups = await asyncio.gather(*(_source_rows(service, read) for read in reads))
    chosen = direction or DEFAULT_DIRECTION[sort]
    return Comparison(
        taken_at=datetime.now(tz=UTC),
        sort=sort,
        dir=chosen,
        rows=tuple(sort_rows([row for group in groups for row in group], sort, chosen)),
    )


async def _source_rows(service: JobService, read: SourceRead[Counters]) -> list[CompareRow]:
    counters = read.value
    if counters is None:
        row = CompareRow(
            kind=RowKind.SOURCE,
            source=read.name,
            system=read.system,
            error=read.error,
            slow=read.slow,
        )
        return [row]
    queues = [q.name for q in counters.queues]
    problems: list[str] = []
    series, workers = await asyncio.gather(
        _series_points(service, read.name, [None, *queues], problems),
        _workers(service, read.name, problems),
    )
    busy_of = worker_busy_of(read.system)

    def fill(row: CompareRow, points: Sequence[SeriesPoint] | None) -> CompareRow:
        step = STEP_S[Window.HOUR]
        if points is not None:
            row = replace(
                row,
                last_5m=rates(points, SHORT_MINUTES, step),
                last_60m=rates(points, LONG_MINUTES, step),
            )
        if workers is not None:
            counts = count_workers(workers, busy_of, row.queue)
            row = replace(
                row, workers_busy=counts.busy, workers_idle=counts.idle, workers_away=counts.away
            )
        return row

    rows = [
        fill(
            CompareRow(
                kind=RowKind.SOURCE,
                source=read.name,
                system=read.system,
                depth=counters.enqueued,
                oldest_enqueued_age_s=counters.oldest_enqueued_age_s,
                oldest_enqueued_age_at_least=counters.oldest_enqueued_age_at_least,
                running_overdue=counters.running_overdue,
                problems=tuple(problems),
            ),
            series[0],
        )
    ]
    for queue, points in zip(counters.queues, series[1:], strict=True):
        rows.append(
            fill(
                CompareRow(
                    kind=RowKind.QUEUE,
                    source=read.name,
                    system=read.system,
                    queue=queue.name,
                    depth=queue.enqueued,
                    oldest_enqueued_age_s=queue.oldest_enqueued_age_s,
                    oldest_enqueued_age_at_least=queue.oldest_enqueued_age_at_least,
                ),
                points,
            )
        )
    return rows


async def _series_points(
    service: JobService, source: str, queues: list[str | None], problems: list[str]
) -> list[tuple[SeriesPoint, ...] | None]:
    """The hour series of the source (``None`` in ``queues``) and of each queue; None for
    one that could not be read (said once in ``problems``)."""

    async def one(queue: str | None) -> tuple[SeriesPoint, ...] | None:
        try:
            return (await service.series(source, Window.HOUR, queue=queue)).points
        except SourceUnavailable as exc:
            problems.append(f"series unavailable ({exc.detail})")
        except Exception:  # a bug in one series must not hide the row
            log.exception("series of source %s (queue %r) failed", source, queue)
            problems.append("series: internal error")
        return None

    points = await asyncio.gather(*(one(q) for q in queues))
    # one problem per kind, however many queues hit it
    problems[:] = list(dict.fromkeys(problems))
    return list(points)


async def _workers(
    service: JobService, source: str, problems: list[str]
) -> tuple[Worker, ...] | None:
    try:
        return await service.workers(source)
    except SourceUnavailable as exc:
        problems.append(f"workers unavailable ({exc.detail})")
    except Exception:
        log.exception("workers of source %s failed", source)
        problems.append("workers: internal error")
    return None


# ---------------------------------------------------------------------------- sorting


def _value(row: CompareRow, key: SortKey) -> object:
    """The row's value of a numeric column (None: sorts last either way)."""
    if key is SortKey.DEPTH:
        return row.depth
    if key is SortKey.OLDEST:
        return row.oldest_enqueued_age_s
    if key is SortKey.THROUGHPUT_5M:
        return row.last_5m.per_minute if row.last_5m else None
    if key is SortKey.FAILURE_5M:
        return row.failure_5m
    if key is SortKey.THROUGHPUT_60M:
        return row.last_60m.per_minute if row.last_60m else None
    if key is SortKey.FAILURE_60M:
        return row.last_60m.failure_rate if row.last_60m else None
    if key is SortKey.BUSY:
        return row.workers_busy
    if key is SortKey.IDLE:
        return row.workers_idle
    if key is SortKey.OVERDUE:
        return row.running_overdue
    if key is SortKey.SYSTEM:
        return row.system
    return row.name.casefold()


def worst_key(row: CompareRow) -> tuple[bool, float, float, int]:
    """Larger is worse: unreadable, failure rate over 5 min, oldest waiting age, depth."""
    return (
        row.error is not None,
        row.failure_5m if row.failure_5m is not None else -1.0,
        row.oldest_enqueued_age_s if row.oldest_enqueued_age_s is not None else -1.0,
        row.depth if row.depth is not None else -1,
    )


def _order(rows: list[CompareRow], key: SortKey, direction: Direction) -> list[CompareRow]:
    by_name = sorted(rows, key=lambda r: (r.name.casefold(), r.name))
    descending = direction is Direction.DESC
    if key is SortKey.WORST:
        return sorted(by_name, key=worst_key, reverse=descending)
    known = [r for r in by_name if _value(r, key) is not None]
    unknown = [r for r in by_name if _value(r, key) is None]
    known.sort(key=lambda r: _value(r, key), reverse=descending)  # type: ignore[arg-type,return-value]
    return known + unknown


def sort_rows(rows: Sequence[CompareRow], key: SortKey, direction: Direction) -> list[CompareRow]:
    """Source rows in the order, each followed by its queue rows in the same order (ties by
    name; a value that is not known sorts last either way)."""
    sources = [r for r in rows if r.kind is RowKind.SOURCE]
    queues: dict[str, list[CompareRow]] = {}
    for row in rows:
        if row.kind is RowKind.QUEUE:
            queues.setdefault(row.source, []).append(row)
    out: list[CompareRow] = []
    for source in _order(sources, key, direction):
        out.append(source)
        out.extend(_order(queues.get(source.source, []), key, direction))
    return out


def parse_sort(sort: str | None, direction: str | None) -> tuple[SortKey, Direction | None]:
    """``?sort=`` and ``?dir=`` (or ``--sort``/``--dir``) as a key and direction.

    Raises:
        ValueError: either names no column or direction; the message lists the valid ones.
    """
    try:
        key = SortKey(sort) if sort else SortKey.WORST
    except ValueError:
        raise ValueError(f"sort must be one of {', '.join(k.value for k in SortKey)}") from None
    try:
        chosen = Direction(direction) if direction else None
    except ValueError:
        raise ValueError("dir must be asc or desc") from None
    return key, chosen


# ---------------------------------------------------------------------------- wording


def throughput_text(value: Rates | None) -> str:
    """ "2.4/min (12)": jobs that finished per minute, and how many; "—" when not read."""
    if value is None:
        return "—"
    return f"{value.per_minute:.1f}/min ({value.completed + value.failed})"


def counts_text(value: Rates | None) -> str:
    """ "12 completed, 3 failed in 5 min", or "" when not read."""
    if value is None:
        return ""
    return f"{value.completed} completed, {value.failed} failed in {value.minutes} min"


def failure_text(value: Rates | None) -> str:
    """ "20% (3)": the share of finished jobs that failed, and how many; "—" when none
    finished or not read."""
    if value is None or value.failure_rate is None:
        return "—"
    return f"{value.failure_rate * 100:.0f}% ({value.failed})"


def workers_text(row: CompareRow) -> str:
    """ "2 / 1" busy / idle (with "+1 away"), or "—" where the system registers none."""
    if row.workers_busy is None or row.workers_idle is None:
        return "—"
    away = f" (+{row.workers_away} away)" if row.workers_away else ""
    return f"{row.workers_busy} / {row.workers_idle}{away}"
