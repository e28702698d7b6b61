"""Every registered system in the comparison (jobbridge.compare): its source row and queue rows
say what the source's own counters say, its workers are counted where it registers some, and
its rates come from its chart series. Over the HTTP API of a real app, as test_contract.py."""

from __future__ import annotations

from typing import Any

import pytest

from tests.contract.conftest import SOURCE, Api
from tests.contract.harness import State, SystemHarness
from tests.contract.test_contract import eventually, listed

pytestmark = pytest.mark.redis


async def test_compare_rows_match_the_sources_counters(harness: SystemHarness, api: Api) -> None:
    made = harness.seed({state: 2 for state in harness.states})
    await listed(api, made)

    async def check() -> None:
        status, body = await api.get("/api/compare")
        assert status == 200, body
        snapshot = await api.snapshot()
        counters = snapshot["counters"]
        rows = [r for r in body["rows"] if r["source"] == SOURCE]
        row, queues = rows[0], rows[1:]
        assert row["kind"] == "source" and row["error"] is None
        assert row["depth"] == counters["enqueued"] == harness.counts()[State.ENQUEUED]
        assert row["running_overdue"] == counters["running_overdue"]
        # queue rows come sorted (worst first), the counters in the system's order
        assert sorted((q["queue"], q["depth"]) for q in queues) == sorted(
            (q["name"], q["enqueued"]) for q in counters["queues"]
        )
        assert sum(q["depth"] for q in queues) == row["depth"]
        workers: list[dict[str, Any]] | None = snapshot["workers"]
        if workers is None:
            assert row["workers_busy"] is row["workers_idle"] is row["workers_away"] is None
        else:
            assert row["workers_busy"] + row["workers_idle"] + row["workers_away"] == len(workers)
        for each in rows:
            assert each["last_5m"]["minutes"] == 5 and each["last_60m"]["minutes"] == 60

    await eventually(check)

    status, page = await api.get("/jobs")
    assert status == 200
    assert f'data-kind="source" data-source="{SOURCE}"' in page
