"""The comparison's pure parts: rates from series points, worker states, sorting, parsing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jobbridge.adapters import system
from jobbridge.compare import (
    CompareRow,
    Direction,
    Rates,
    RowKind,
    SortKey,
    count_workers,
    default_worker_busy,
    failure_text,
    parse_sort,
    rates,
    sort_rows,
    throughput_text,
    worker_busy_of,
)
from jobbridge.model import Worker
from jobbridge.series.model import SeriesPoint

START = datetime(2026, 1, 1, tzinfo=UTC)


def points(pairs: list[tuple[int, int]]) -> list[SeriesPoint]:
    """One-minute points, oldest first, of (completed, failed)."""
    return [
        SeriesPoint(at=START + timedelta(minutes=n), completed=c, failed=f)
        for n, (c, f) in enumerate(pairs)
    ]


def test_rates_sum_the_last_minutes_only() -> None:
    series = points([(100, 100)] * 55 + [(1, 0), (2, 1), (0, 0), (3, 0), (4, 1)])
    short = rates(series, 5)
    assert (short.completed, short.failed) == (10, 2)
    assert short.per_minute == pytest.approx(12 / 5)
    assert short.failure_rate == pytest.approx(2 / 12)
    long = rates(series, 60)
    assert (long.completed, long.failed) == (5510, 5502)
    assert long.per_minute == pytest.approx((5510 + 5502) / 60)
    assert long.failure_rate == pytest.approx(5502 / 11012)


def test_rates_of_nothing_finished_have_no_failure_rate() -> None:
    quiet = rates(points([(0, 0)] * 60), 5)
    assert quiet == Rates(minutes=5, completed=0, failed=0, per_minute=0.0, failure_rate=None)
    assert failure_text(quiet) == "—" and throughput_text(quiet) == "0.0/min (0)"
    busy = rates(points([(9, 3)]), 5)
    assert (throughput_text(busy), failure_text(busy)) == ("2.4/min (12)", "25% (3)")


def test_rates_all_failed_is_a_rate_of_one() -> None:
    assert rates(points([(0, 3)] * 5), 5).failure_rate == 1.0


def test_rates_of_a_short_series_divide_by_the_whole_window() -> None:
    few = rates(points([(6, 0), (6, 0)]), 60)
    assert (few.completed, few.per_minute) == (12, pytest.approx(0.2))
    assert rates([], 5).failure_rate is None


def test_rates_of_wider_steps_take_fewer_points() -> None:
    wide = points([(1, 0)] * 10)
    # 60 minutes are the last 4 steps of 15 minutes
    assert rates(wide, 60, step_s=900).completed == 4
    assert rates(wide, 5, step_s=900).completed == 0


@pytest.mark.parametrize(
    ("worker", "busy"),
    [
        (Worker(name="a", state="busy"), True),
        (Worker(name="a", state="idle", current_job="j1"), True),
        (Worker(name="a", state="idle"), False),
        (Worker(name="a", state="dead"), None),
    ],
)
def test_default_worker_rule(worker: Worker, busy: bool | None) -> None:
    assert default_worker_busy(worker) is busy


def test_each_system_words_its_workers_states() -> None:
    rq = worker_busy_of("rq")
    assert rq is system("rq").worker_busy
    assert rq(Worker(name="w", state="started")) is False
    assert rq(Worker(name="w", state="suspended")) is None
    assert rq(Worker(name="w", state="busy")) is True
    celery = worker_busy_of("celery")
    assert celery(Worker(name="w", state="online", active=2)) is True
    assert celery(Worker(name="w", state="online", active=0)) is False
    assert celery(Worker(name="w", state="offline", active=2)) is None
    # a system without its own rule gets the default one
    assert worker_busy_of("autumn") is default_worker_busy


def test_workers_of_a_queue_are_those_that_listen_on_it() -> None:
    workers = [
        Worker(name="a", state="busy", queues=("default", "low")),
        Worker(name="b", state="idle", queues=("low",)),
        Worker(name="c", state="dead", queues=("default",)),
    ]
    whole = count_workers(workers, default_worker_busy)
    assert (whole.busy, whole.idle, whole.away) == (1, 1, 1)
    low = count_workers(workers, default_worker_busy, "low")
    assert (low.busy, low.idle, low.away) == (1, 1, 0)
    none = count_workers(workers, default_worker_busy, "other")
    assert (none.busy, none.idle, none.away) == (0, 0, 0)


def row(source: str, queue: str | None = None, **kw: object) -> CompareRow:
    kind = RowKind.QUEUE if queue is not None else RowKind.SOURCE
    return CompareRow(kind=kind, source=source, system="toy", queue=queue, **kw)  # type: ignore[arg-type]


def rate(failed: int, completed: int) -> Rates:
    return rates(points([(completed, failed)]), 5)


def names(rows: list[CompareRow]) -> list[str]:
    return [r.name for r in rows]


def test_worst_first_is_unreadable_then_failure_rate_then_age_then_depth() -> None:
    rows = [
        row("calm", depth=1, last_5m=rate(0, 10)),
        row("deep", depth=500, last_5m=rate(0, 10)),
        row("old", depth=1, oldest_enqueued_age_s=900.0, last_5m=rate(0, 10)),
        row("failing", depth=0, last_5m=rate(5, 5)),
        row("down", error="Redis unavailable (refused)"),
        row("quiet", depth=0),
    ]
    ordered = sort_rows(rows, SortKey.WORST, Direction.DESC)
    assert names(ordered) == ["down", "failing", "old", "deep", "calm", "quiet"]
    assert names(sort_rows(rows, SortKey.WORST, Direction.ASC)) == names(ordered)[::-1]


def test_queues_follow_their_source_sorted_the_same_way() -> None:
    rows = [
        row("a", depth=3),
        row("a", "a-small", depth=1),
        row("a", "a-big", depth=2),
        row("b", depth=10),
        row("b", "b-one", depth=10),
    ]
    assert names(sort_rows(rows, SortKey.DEPTH, Direction.DESC)) == [
        "b",
        "b-one",
        "a",
        "a-big",
        "a-small",
    ]
    assert names(sort_rows(rows, SortKey.DEPTH, Direction.ASC)) == [
        "a",
        "a-small",
        "a-big",
        "b",
        "b-one",
    ]
    assert names(sort_rows(rows, SortKey.NAME, Direction.DESC)) == [
        "b",
        "b-one",
        "a",
        "a-small",
        "a-big",
    ]


def test_unknown_values_sort_last_either_way() -> None:
    rows = [row("x", workers_busy=None), row("y", workers_busy=2), row("z", workers_busy=0)]
    assert names(sort_rows(rows, SortKey.BUSY, Direction.DESC)) == ["y", "z", "x"]
    assert names(sort_rows(rows, SortKey.BUSY, Direction.ASC)) == ["z", "y", "x"]


def test_parse_sort() -> None:
    assert parse_sort(None, None) == (SortKey.WORST, None)
    assert parse_sort("depth", "asc") == (SortKey.DEPTH, Direction.ASC)
    with pytest.raises(ValueError, match="sort must be one of worst, name"):
        parse_sort("<script>", None)
    with pytest.raises(ValueError, match="dir must be asc or desc"):
        parse_sort("depth", "up")
