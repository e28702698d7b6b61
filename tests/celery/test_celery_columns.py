"""Issue 18: Celery's rows in Celery's terms, with a real ``celery worker``: the call with its
arguments, the runtime of a running task, the worker that ran it, and its attempt (``retries`` + 1);
Celery's own state word beside jobbridge's status; no Principal column for tasks that carry
none."""

from __future__ import annotations

import asyncio
import re
import time

import pytest

from jobbridge.model import ListName
from tests.celery.celery_jobbridge import SOURCE, celery_api, wait_row
from tests.celery.celery_support import send, wait_for_state
from tests.web.html_tables import list_table

pytestmark = pytest.mark.redis


async def test_finished_rows_show_call_runtime_worker_and_attempt(
    celery_app, celery_workers, redis_url
) -> None:
    async with celery_api(redis_url) as api:
        celery_workers.start(pool="solo")
        done = send(celery_app, "add", 2, 3)
        retried = send(celery_app, "retrying", 2, countdown=0.2)
        wait_for_state(celery_app, done.id, "SUCCESS", workers=celery_workers)
        wait_for_state(celery_app, retried.id, "SUCCESS", workers=celery_workers)
        row = await wait_row(api, "completed", done.id)
        again = await wait_row(api, "completed", retried.id)
        assert "(2, 3)" in row["payload_preview"] and row["worker"]
        # Celery's retries (2) as the attempt it finished on
        assert again["attempt"] == 3

        status, html = await api.get(f"/jobs/{SOURCE}?per_page=100")
        assert status == 200, html
        table = list_table(html, ListName.COMPLETED)
        assert "(2, 3)" in table.cell(done.id, "Job")
        assert "SUCCESS" in table.cell(done.id, "Job")  # Celery's word beside "completed"
        assert table.cell(retried.id, "Attempt") == "attempt 3"
        assert table.cell(done.id, "Worker") == row["worker"]
        assert ">Principal</th>" not in html and "?/?" not in html

        # a running task: its runtime so far (Celery's index keeps no start time of a
        # finished task, so finished rows have none)
        slow = send(celery_app, "sleep", 5)
        wait_for_state(celery_app, slow.id, "STARTED", workers=celery_workers)
        # until jobbridge has its STARTED time (the held message may show first)
        row = await wait_row(api, "running", slow.id)
        deadline = time.monotonic() + 15
        while row["started_at"] is None and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            row = await wait_row(api, "running", slow.id)
        assert row["started_at"], row
        status, html = await api.get(f"/jobs/{SOURCE}?per_page=100")
        running = list_table(html, ListName.RUNNING)
        runtime = running.cell(slow.id, "Runtime")
        assert re.fullmatch(r"(\d+ ms|\d+\.\d s) so far", runtime), runtime
        assert "sleep(5)" in running.cell(slow.id, "Job")
