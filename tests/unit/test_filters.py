"""The shared job filter (jobbridge.filters): each field narrows, times are relative or ISO,
and the query form reads back as the same filter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jobbridge.filters import FilterError, JobFilter, filter_query, parse_filter
from jobbridge.model import JobRecord, JobStatus, ListName

NOW = datetime(2026, 12, 4, 22, 0, tzinfo=UTC)


def row(**kw: object) -> JobRecord:
    base: dict[str, object] = {
        "source": "s",
        "system": "celery",
        "id": "a",
        "name": "app.send_email",
        "queue": "mail",
        "status": JobStatus.FAILED,
        "raw_status": "FAILURE",
        "finished_at": NOW - timedelta(minutes=30),
        "enqueued_at": NOW - timedelta(hours=2),
        "last_error": "ConnectionError: smtp down",
        "principal_id": "u1",
        "correlation_id": "c1",
        "worker": "celery@host1",
        "extra": {"root_id": "root-9"},
    }
    base.update(kw)
    return JobRecord(**base)  # type: ignore[arg-type]


def test_an_empty_filter_matches_every_row() -> None:
    assert JobFilter().empty and JobFilter().matches(row(), ListName.FAILED)
    assert JobFilter().describe() == "every job"


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"name": "SEND_email"}, True),
        ({"name": "report"}, False),
        ({"queue": "mail"}, True),
        ({"queue": "mai"}, False),
        ({"error_contains": "connectionerror"}, True),
        ({"error_contains": "Timeout"}, False),
        ({"principal_id": "u1"}, True),
        ({"principal_id": "u"}, False),
        ({"correlation_id": "c1"}, True),
        ({"correlation_id": "root-9"}, True),  # Celery's root_id, its search extra
        ({"correlation_id": "c"}, False),
        ({"worker": "HOST1"}, True),
        ({"worker": "host2"}, False),
        ({"since": "1h"}, True),  # finished 30 min ago
        ({"since": "10m"}, False),
        ({"until": "10m"}, True),
        ({"until": "1h"}, False),
    ],
)
def test_each_field_narrows(fields: dict[str, str], expected: bool) -> None:
    assert parse_filter(fields, NOW).matches(row(), ListName.FAILED) is expected


def test_a_waiting_list_ranges_on_the_enqueue_time() -> None:
    waiting = row(status=JobStatus.ENQUEUED, finished_at=None, last_error=None)
    assert parse_filter({"since": "3h"}, NOW).matches(waiting, ListName.ENQUEUED)
    assert not parse_filter({"since": "1h"}, NOW).matches(waiting, ListName.ENQUEUED)
    assert not parse_filter({"error_contains": "x"}, NOW).matches(waiting, ListName.ENQUEUED)


def test_times_read_iso_and_back() -> None:
    parsed = parse_filter({"since": "2026-12-04T21:00:00Z", "until": "2026-12-04T21:30:00"})
    assert parsed.since == datetime(2026, 12, 4, 21, 0, tzinfo=UTC)
    assert parsed.until == datetime(2026, 12, 4, 21, 30, tzinfo=UTC)
    assert parse_filter(filter_query(parsed)) == parsed
    assert parsed.describe() == "since 2026-12-04 21:00:00Z, until 2026-12-04 21:30:00Z"


@pytest.mark.parametrize(
    "fields", [{"since": "yesterday"}, {"until": "5 weeks"}, {"name": "x" * 201}]
)
def test_bad_values_name_their_field(fields: dict[str, str]) -> None:
    with pytest.raises(FilterError, match=next(iter(fields))):
        parse_filter(fields, NOW)
