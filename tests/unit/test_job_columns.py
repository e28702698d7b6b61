"""The pure parts of a list's columns (issue 18): attempts in each system's words, runtime,
wait, durations, and which columns a page shows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jobbridge.model import Action, JobRecord, JobStatus
from jobbridge.web.job_columns import attempts_label, columns_for, duration

T0 = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)


def job(status: JobStatus = JobStatus.COMPLETED, system: str = "rq", **fields: object) -> JobRecord:
    return JobRecord(
        source="s",
        system=system,
        id="j",
        name="n",
        queue="q",
        status=status,
        raw_status=status.value,
        **fields,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({}, ""),
        ({"attempt": 2, "max_attempts": 5}, "2/5"),
        ({"attempt": 3}, "attempt 3"),
        ({"max_attempts": 5}, "max 5"),
        ({"retries_left": 2}, "2 retries left"),
        ({"retries_left": 1}, "1 retry left"),
        ({"retries_left": 0}, "no retries left"),
        ({"retries_left": 3, "retries_max": 3}, "3 retries left of 3"),
        ({"retries_left": 1, "attempt": 2}, "attempt 2, 1 retry left"),
    ],
)
def test_attempts_in_words_never_question_marks(fields: dict[str, int], words: str) -> None:
    assert job(**fields).attempts_text == words


def test_runtime_and_wait() -> None:
    started, finished = T0 + timedelta(seconds=2), T0 + timedelta(seconds=5)
    done = job(enqueued_at=T0, started_at=started, finished_at=finished)
    assert done.runtime(T0 + timedelta(hours=1)) == timedelta(seconds=3)
    assert done.wait == timedelta(seconds=2)
    # a due time counts instead of the enqueue time
    due = job(enqueued_at=T0, scheduled_for=T0 + timedelta(seconds=1), started_at=started)
    assert due.wait == timedelta(seconds=1)
    running = job(JobStatus.RUNNING, started_at=started)
    assert running.runtime(T0 + timedelta(seconds=12)) == timedelta(seconds=10)
    # a waiting job's times are its previous run's: no runtime, no wait
    retrying = job(JobStatus.RETRYING, enqueued_at=T0, started_at=started, finished_at=finished)
    assert retrying.runtime(finished) is None and retrying.wait is None
    # times that go backwards give nothing
    odd = job(enqueued_at=finished, started_at=started, finished_at=T0)
    assert odd.runtime(finished) is None and odd.wait is None


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (0.25, "250 ms"),
        (12.34, "12.3 s"),
        (245, "4 min 05 s"),
        (7380, "2 h 03 min"),
        (273600, "3 d 04 h"),
    ],
)
def test_duration(seconds: float, shown: str) -> None:
    assert duration(timedelta(seconds=seconds)) == shown
    assert duration(None) == "—"


def test_columns_are_the_declared_ones_a_row_fills() -> None:
    waiting = job(JobStatus.ENQUEUED, enqueued_at=T0, actions=(Action.CANCEL,))
    keys = [c.key for c in columns_for("rq", [waiting], T0)]
    assert keys == ["enqueued", "actions"]
    failed = job(
        JobStatus.FAILED,
        enqueued_at=T0,
        started_at=T0,
        finished_at=T0 + timedelta(seconds=1),
        worker="w1",
        last_error="ValueError: x",
        principal_id="alice",
    )
    columns = columns_for("rq", [waiting, failed], T0)
    assert [c.key for c in columns] == [
        "enqueued",
        "started",
        "finished",
        "runtime",
        "wait",
        "worker",
        "principal",
        "error",
        "actions",
    ]
    assert columns_for("rq", [], T0) == ()
    # the attempts column in the system's words
    retried = job(JobStatus.SCHEDULED, retries_left=2)
    (column,) = columns_for("rq", [retried], T0)
    assert (column.title, attempts_label("rq")) == ("Retries", "Retries")
    assert "retries_left" in column.hint
    assert attempts_label("autumn") == "Attempts" and attempts_label("celery") == "Attempt"
    # a system the registry does not know gets every column a row fills
    assert [c.key for c in columns_for("nosuch", [failed], T0)][:2] == ["enqueued", "started"]
