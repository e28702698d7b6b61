"""The query clamps and the model's invariants."""

from __future__ import annotations

from datetime import datetime

import pytest

from jobbridge.model import JobRecord, JobStatus, ListName, SnapshotQuery


def test_query_clamps_pages_and_sizes() -> None:
    query = SnapshotQuery.build({ListName.FAILED: -3, ListName.ENQUEUED: 4}, 10_000)
    assert query.per_page == 100
    assert query.page(ListName.FAILED) == 1
    assert query.offset(ListName.ENQUEUED) == 300
    assert SnapshotQuery.build(per_page=0).per_page == 1
    assert SnapshotQuery.build().per_page == 25


def test_history_page_size_applies_to_histories_only() -> None:
    query = SnapshotQuery.build({ListName.COMPLETED: 2}, 10, history_per_page=5000)
    assert query.size(ListName.COMPLETED) == 1000 and query.size(ListName.FAILED) == 1000
    assert query.size(ListName.ENQUEUED) == 10
    assert query.offset(ListName.COMPLETED) == 1000
    assert SnapshotQuery.build(history_per_page=0).history_per_page == 1


def test_timestamps_must_be_aware() -> None:
    with pytest.raises(ValueError, match="aware"):
        JobRecord(
            source="s",
            system="autumn",
            id="i",
            name="n",
            queue="q",
            status=JobStatus.ENQUEUED,
            raw_status="queue",
            enqueued_at=datetime(2026, 1, 1),
        )
