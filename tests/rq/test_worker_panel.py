"""RQ's workers panel against RQ's own Worker API, with real ``rq worker`` processes: the current
job while one runs, successful / failed counts and working time as the worker hash has them,
birth and last heartbeat; and the source page's per-queue counts of consumers and busy ones."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from rq import Worker as RqWorkerApi

from jobbridge.model import Worker
from tests.rq import tasks as rq_tasks
from tests.rq.rq_support import (
    SOURCE,
    WorkerPool,
    async_wait_for,
    enqueue,
    rq_api,
    status_of,
    sync_redis,
    wait_for,
)

pytestmark = pytest.mark.redis


def rq_worker(conn: Any, name: str) -> RqWorkerApi:
    """RQ's own view of a worker (its hash, read by RQ)."""
    found = RqWorkerApi.find_by_key(f"rq:worker:{name}", connection=conn)
    assert found is not None, f"RQ does not list worker {name}"
    return found


def aware(value: Any) -> Any:
    """RQ's naive UTC datetimes as the aware ones jobbridge's model holds."""
    from datetime import UTC

    return None if value is None else value.replace(tzinfo=UTC)


def cell(page: str, row_attr: str, count: str) -> str:
    """The text of the ``data-count`` cell of the row whose data attribute is ``row_attr``."""
    row = re.search(rf"<tr[^>]*{re.escape(row_attr)}[^>]*>(.*?)</tr>", page, re.S)
    assert row is not None, f"no row {row_attr} on the page"
    found = re.search(rf'data-count="{count}"[^>]*>(.*?)</td>', row.group(1), re.S)
    assert found is not None, f"no {count} cell in row {row_attr}"
    return re.sub(r"<[^>]+>", "", found.group(1)).strip()


async def test_the_panel_is_what_rq_says(redis_url: str, rq_workers: WorkerPool) -> None:
    conn = sync_redis(redis_url)
    # "both" consumes default and high; "high" only high: a job on default runs on "both"
    both = rq_workers.start(("default", "high"), name=f"both-{id(conn)}")
    high = rq_workers.start(("high",), name=f"high-{id(conn)}")
    both.wait_registered(conn)
    high.wait_registered(conn)
    done = enqueue(conn, rq_tasks.add, 2, 3)
    boom = enqueue(conn, rq_tasks.fail, "panel boom")
    wait_for(lambda: status_of(conn, done.id) == "finished", "the add job to finish", 30)
    wait_for(lambda: status_of(conn, boom.id) == "failed", "the fail job to fail", 30)
    running = enqueue(conn, rq_tasks.sleep, 60)
    wait_for(lambda: status_of(conn, running.id) == "started", "the sleep job to start", 30)

    async with rq_api(redis_url, queues=("default", "high")) as api:

        async def panel() -> dict[str, Worker]:
            workers = await api.service.workers(SOURCE)
            assert workers is not None
            return {w.name: w for w in workers}

        def counted() -> bool:
            theirs = rq_worker(conn, both.name)
            return theirs.successful_job_count == 1 and theirs.failed_job_count == 1

        await asyncio.to_thread(wait_for, counted, "RQ to count both jobs", 30)
        shown = await panel()
        ours = shown[both.name]
        theirs = rq_worker(conn, both.name)
        # the current job, as RQ's Worker API finds it, while it runs
        assert theirs.get_current_job_id() == running.id
        assert (ours.current_job, ours.current_jobs) == (running.id, (running.id,))
        assert ours.state == theirs.get_state() == "busy"
        # the counts and the working time of the worker hash, as RQ reads them
        assert (ours.successful, ours.failed) == (1, 1)
        assert (ours.successful, ours.failed) == (
            theirs.successful_job_count,
            theirs.failed_job_count,
        )
        assert ours.working_time_s == pytest.approx(theirs.total_working_time, abs=1e-6)
        assert ours.working_time_s is not None and ours.working_time_s > 0
        assert ours.birth == aware(theirs.birth_date)
        assert ours.last_heartbeat == aware(theirs.last_heartbeat) == ours.last_seen
        raw = conn.hget(f"rq:worker:{both.name}", "total_working_time")
        assert raw is not None and ours.working_time_s == float(raw)
        # the other worker: idle, nothing done
        idle = shown[high.name]
        assert (idle.state, idle.current_job, idle.current_jobs) == ("idle", None, ())
        assert (idle.successful, idle.failed) == (0, 0)
        assert idle.birth == aware(rq_worker(conn, high.name).birth_date)

        # the page: one row per worker, busy or idle, and per queue its consumers
        status, page = await api.get(f"/jobs/{SOURCE}")
        assert status == 200
        assert "2 registered · 1 busy" in page
        assert re.search(rf'data-worker="{both.name}" data-busy="busy"', page)
        assert re.search(rf'data-worker="{high.name}" data-busy="idle"', page)
        assert cell(page, f'data-worker="{both.name}"', "successful") == "1"
        assert cell(page, f'data-worker="{both.name}"', "failed") == "1"
        assert cell(page, f'data-worker="{both.name}"', "heartbeat").endswith(" ago")
        assert cell(page, f'data-worker="{both.name}"', "working_time") == (
            f"{ours.working_time_s:.2f}s"
        )
        assert running.id in page
        # default: one consumer, busy; high: two consumers, one of them busy
        assert [cell(page, 'data-queue="default"', c) for c in ("workers", "busy", "idle")] == [
            "1",
            "1",
            "0",
        ]
        assert [cell(page, 'data-queue="high"', c) for c in ("workers", "busy", "idle")] == [
            "2",
            "1",
            "1",
        ]

        # once the job is stopped by RQ's own command, the worker is idle and has no job
        from rq.command import send_stop_job_command

        send_stop_job_command(conn, running.id)

        async def idle_again() -> bool:
            now = (await panel())[both.name]
            return now.current_job is None and now.state == "idle"

        await async_wait_for(idle_again, "the worker idle again", 30, every=0.2)
        assert rq_worker(conn, both.name).get_current_job_id() is None
    both.assert_alive()
    high.assert_alive()
