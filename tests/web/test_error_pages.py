"""Errors as an operator reads them, on RQ and Celery sources run by real workers: a failed
job's row shows the exception line of its traceback, and its page shows the whole traceback
once, under "Last error" (not again in the payload), with one truthful worker line."""

from __future__ import annotations

import asyncio
import html as html_lib
import re
import time
from typing import Any

import pytest
from rq import Queue

from jobbridge.settings import ServerConfig, Settings, SourceConfig
from tests.celery.celery_support import send, wait_for_state
from tests.rq.rq_support import make_failed

pytestmark = [pytest.mark.redis, pytest.mark.slow]

TRACEBACK = "Traceback (most recent call last)"


def _settings(source: SourceConfig) -> Settings:
    return Settings(server=ServerConfig(cache_ttl_s=0.0), sources=(source,))


def _section(page: str, heading: str) -> str:
    start = page.index(f"<h2>{heading}")
    return page[start : page.index("</section>", start)]


async def _failed_row(client: Any, source: str, job_id: str) -> str:
    """The failed list's row of ``job_id`` on the source page (waiting for an index)."""
    deadline = time.monotonic() + 30
    while True:
        page = await (await client.get(f"/admin/jobs/{source}")).text()
        match = re.search(rf'<tr [^>]*data-job-id="{re.escape(job_id)}".*?</tr>', page, re.S)
        if match or time.monotonic() > deadline:
            assert match, f"no row for {job_id}"
            return match.group(0)
        await asyncio.sleep(0.3)


def _shown(page: str) -> str:
    """The page as read, without the "Stored record" box: that is the system's record byte
    for byte (Celery's result meta holds its traceback), not jobbridge's telling of it."""
    raw = _section(page, "Stored record")
    return html_lib.unescape(page.replace(raw, ""))


def _summary(row: str) -> str:
    found = re.search(r'<details class="error"><summary>(.*?)</summary>', row, re.S)
    assert found, row
    return html_lib.unescape(found.group(1))


async def test_rq_failed_job_reads_by_its_exception(
    make_client: Any, redis_url: str, sync_redis: Any, rq_workers: Any
) -> None:
    (job_id,) = make_failed(sync_redis, rq_workers)
    stored = Queue("default", connection=sync_redis).fetch_job(job_id)
    assert stored is not None and stored.worker_name
    client = await make_client(
        _settings(SourceConfig(name="rqjobs", system="rq", redis_url=redis_url))
    )
    row = await _failed_row(client, "rqjobs", job_id)
    assert _summary(row) == "ValueError: boom 0"

    page = await (await client.get(f"/admin/jobs/rqjobs/{job_id}")).text()
    assert _shown(page).count(TRACEBACK) == 1, "the traceback is shown once"
    last_error = html_lib.unescape(_section(page, "Last error"))
    assert TRACEBACK in last_error and "ValueError: boom 0" in last_error
    assert "exception: shown under Last error" in html_lib.unescape(_section(page, "Payload"))
    # one worker line: the worker that ran it, named in the Worker field only
    assert f"<dt>Worker</dt><dd>{stored.worker_name}</dd>" in page
    assert "last worker" not in page

    api = await (await client.get(f"/admin/api/sources/rqjobs/jobs/{job_id}")).json()
    assert TRACEBACK in api["last_error"] and TRACEBACK not in api["payload"]


async def test_celery_failed_task_reads_by_its_exception(
    make_client: Any, redis_url: str, celery_app: Any, celery_workers: Any
) -> None:
    celery_workers.start(("celery",))
    task_id = send(celery_app, "fail", "no such tenant").id
    wait_for_state(celery_app, task_id, "FAILURE", workers=celery_workers)
    client = await make_client(
        _settings(
            SourceConfig(name="tasks", system="celery", redis_url=redis_url, queues=("celery",))
        )
    )
    row = await _failed_row(client, "tasks", task_id)
    assert _summary(row) == "ValueError: no such tenant"

    page = await (await client.get(f"/admin/jobs/tasks/{task_id}")).text()
    assert _shown(page).count(TRACEBACK) == 1, "the traceback is shown once"
    last_error = html_lib.unescape(_section(page, "Last error"))
    assert TRACEBACK in last_error and "ValueError: no such tenant" in last_error
    assert TRACEBACK not in html_lib.unescape(_section(page, "Payload"))
    assert f"<dt>parent_id</dt><dd>{task_id}</dd>" not in page
