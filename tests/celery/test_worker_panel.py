"""Celery's workers panel against Celery's own ``app.control.inspect()``, with a real prefork
worker holding a running task, prefetched ones and eta ones: reserved, scheduled and active
as inspect counts them (never eta tasks counted as reserved), the running task as the
worker's current task, processed as ``stats``' totals, failures from task events, and the
heartbeat's age on the page. The panel comes from the watch's own periodic inspection (no
broadcast per request); the test waits for one, then compares."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from typing import Any

import pytest

from jobbridge.adapters.celery.workers import INSPECT_EVERY_S, REPLY_WINDOW_S
from jobbridge.model import Worker
from tests.celery.celery_jobbridge import SOURCE, celery_api
from tests.celery.celery_support import CeleryWorker, send, wait_for_state
from tests.rq.rq_support import async_wait_for, wait_for

pytestmark = pytest.mark.redis

#: one inspection round and a loaded machine
ROUND_S = INSPECT_EVERY_S + REPLY_WINDOW_S + 10.0
#: what the worker holds: eta tasks, and sleeping tasks of which one runs (concurrency 1)
ETA_TASKS = 3
SLEEPERS = 3


def inspected(app: Any, node: str) -> dict[str, Any]:
    """Celery's own answers for one node: active, reserved, scheduled and stats."""
    inspector = app.control.inspect(destination=[node], timeout=2.0)
    answers = {
        "active": (inspector.active() or {}).get(node),
        "reserved": (inspector.reserved() or {}).get(node),
        "scheduled": (inspector.scheduled() or {}).get(node),
        "stats": (inspector.stats() or {}).get(node),
    }
    return answers


def settled(app: Any, node: str) -> dict[str, Any] | None:
    """inspect's answers once the worker holds everything sent (one running, the other
    sleepers prefetched, the eta ones scheduled), else None."""
    answers = inspected(app, node)
    if any(answers[m] is None for m in answers):
        return None
    counts = (len(answers["active"]), len(answers["reserved"]), len(answers["scheduled"]))
    return answers if counts == (1, SLEEPERS - 1, ETA_TASKS) else None


def processed(stats: dict[str, Any]) -> int:
    """Celery's count of tasks a worker accepted: ``stats``' ``total`` summed by task name."""
    return sum(stats["total"].values())


def cell(page: str, row_attr: str, count: str) -> str:
    row = re.search(rf"<tr[^>]*{re.escape(row_attr)}[^>]*>(.*?)</tr>", page, re.S)
    assert row is not None, f"no row {row_attr} on the page"
    found = re.search(rf'data-count="{count}"[^>]*>(.*?)</td>', row.group(1), re.S)
    assert found is not None, f"no {count} cell in row {row_attr}"
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", found.group(1))).strip()


async def test_the_panel_is_what_inspect_says(celery_app, celery_workers, redis_url) -> None:
    async with celery_api(redis_url) as api:
        adapter = api.service.adapter(api.source)
        worker: CeleryWorker = await asyncio.to_thread(
            celery_workers.start, ("celery",), pool="prefork", concurrency=1
        )
        node = worker.hostname

        async def panel() -> Worker | None:
            workers = await api.service.workers(SOURCE)
            return next((w for w in workers or () if w.name == node), None)

        # two tasks that end: one fails, one succeeds
        failing = send(celery_app, "fail", "panel boom")
        adding = send(celery_app, "add", 2, 3)
        await asyncio.to_thread(wait_for_state, celery_app, failing.id, "FAILURE", 30)
        await asyncio.to_thread(wait_for_state, celery_app, adding.id, "SUCCESS", 30)
        # then eta tasks it holds, one sleeper running and the others prefetched
        etas = [send(celery_app, "add", n, n, countdown=3600) for n in range(ETA_TASKS)]
        sleepers = [send(celery_app, "sleep", 120) for _ in range(SLEEPERS)]
        answers = await asyncio.to_thread(
            wait_for, lambda: settled(celery_app, node), "the worker to hold every task", 30
        )
        running = answers["active"][0]["id"]
        assert running in {s.id for s in sleepers}
        assert {t["request"]["id"] for t in answers["scheduled"]} == {e.id for e in etas}

        # the watch inspects at its own pace: wait for its next answer from the settled worker
        settled_at = datetime.now(UTC)

        def answered() -> bool:
            details = next((d for d in adapter.watch.details() if d.worker.name == node), None)
            return details is not None and (details.last_answer or settled_at) > settled_at

        await async_wait_for(answered, "an inspection of the settled worker", ROUND_S, every=0.5)
        ours = await panel()
        theirs = await asyncio.to_thread(settled, celery_app, node)
        assert ours is not None and theirs is not None, "the worker changed under the test"
        # reserved, scheduled and active as inspect answers them (eta tasks are not reserved)
        assert (ours.active, ours.reserved, ours.scheduled) == (
            len(theirs["active"]),
            len(theirs["reserved"]),
            len(theirs["scheduled"]),
        )
        assert (ours.active, ours.reserved, ours.scheduled) == (1, SLEEPERS - 1, ETA_TASKS)
        # the running task is the worker's current task
        assert ours.current_job == running == theirs["active"][0]["id"]
        assert ours.current_jobs == tuple(t["id"] for t in theirs["active"])
        # processed: stats' total summed (fail, add and the running sleeper: 3)
        assert ours.processed == processed(theirs["stats"]) == 3
        # failed: the task-failed event this jobbridge heard; the worker started after the
        # events were followed, so the count covers its whole life
        assert ours.failed == 1 and ours.failed_since is None
        assert ours.successful is None  # Celery keeps no count of successes
        assert ours.last_seen is not None and ours.birth is not None
        assert (ours.pool, ours.concurrency, ours.state) == ("prefork", 1, "online")

        # the page: counts, the current task, the heartbeat's age and the per-queue counts
        status, page = await api.get(f"/jobs/{SOURCE}")
        assert status == 200
        row = f'data-worker="{node}"'
        assert re.search(rf'{re.escape(row)} data-busy="busy"', page)
        assert [cell(page, row, c) for c in ("active", "reserved", "scheduled")] == [
            "1",
            str(SLEEPERS - 1),
            str(ETA_TASKS),
        ]
        assert cell(page, row, "processed") == "3" and cell(page, row, "failed") == "1"
        assert re.fullmatch(r"\d+s ago", cell(page, row, "heartbeat"))
        assert running in page
        assert [cell(page, 'data-queue="celery"', c) for c in ("workers", "busy")] == ["1", "1"]

        # the running task revoked and terminated: events end it as the worker's current task
        celery_app.control.revoke(running, terminate=True)

        async def moved_on() -> bool:
            shown = await panel()
            return shown is not None and running not in shown.current_jobs

        await async_wait_for(moved_on, "the revoked task to leave the panel", ROUND_S, every=0.5)
        worker.assert_alive()


def test_the_cli_snapshot_shows_the_same_numbers(celery_app, celery_workers, redis_url) -> None:
    """``jobbridge snapshot`` (one inspection, no events followed): the worker's
    active/reserved/scheduled, processed and heartbeat age, as inspect and stats say."""
    from click.testing import CliRunner

    from jobbridge.cli import main

    worker: CeleryWorker = celery_workers.start(("celery",), pool="prefork", concurrency=1)
    adding = send(celery_app, "add", 1, 2)
    wait_for_state(celery_app, adding.id, "SUCCESS", 30)
    etas = [send(celery_app, "add", n, n, countdown=3600) for n in range(2)]
    wait_for(
        lambda: len(inspected(celery_app, worker.hostname)["scheduled"] or ()) == len(etas),
        "the eta tasks held",
        30,
    )
    stats = inspected(celery_app, worker.hostname)["stats"]
    result = CliRunner().invoke(main, ["snapshot", "--redis", redis_url], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    header = next(line for line in lines if line.startswith("worker "))
    row = next(line for line in lines if line.startswith(worker.hostname))
    columns = re.split(r"\s{2,}", header.strip())
    assert columns[:4] == ["worker", "state", "queues", "active/reserved/scheduled"]
    values = re.split(r"\s{2,}", row.strip())
    shown = dict(zip(columns, values, strict=True))
    assert shown["active/reserved/scheduled"] == "0/0/2"
    assert shown["processed"] == str(processed(stats)) == "1"
    # no task events in a one-shot read: failures are unknown, not 0
    assert shown["failed"] == "-"
    assert re.fullmatch(r"\d+s ago", shown["heartbeat"]), shown
    worker.assert_alive()
