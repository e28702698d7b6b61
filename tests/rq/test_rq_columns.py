"""Issue 18: RQ's rows in RQ's terms, with real ``rq worker`` processes.

- a job waiting on a dependency (RQ's deferred registry) counts as blocked, and its row and
  page say what it waits for; once that job has run it is enqueued and no longer blocked;
- a job with ``Retry(max=3)`` shows its retries (never "?/?");
- rows show the call with its arguments, the runtime, the wait and the worker that ran it;
- columns no row of a list fills are left out (no Principal on an RQ page whose jobs carry
  none, no Finished At or Last Error on a waiting list).
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from click.testing import CliRunner
from markupsafe import escape
from rq import Queue, Retry

from jobbridge.cli import main
from jobbridge.model import JobStatus, ListName
from tests.rq import tasks as rq_tasks
from tests.rq.rq_support import SOURCE, enqueue, find_row, rq_api, write_config
from tests.web.html_tables import list_table

pytestmark = pytest.mark.redis


async def test_job_waiting_on_a_dependency_is_blocked_and_says_what_it_waits_for(
    sync_redis, rq_workers, redis_url
) -> None:
    # The parent waits on a queue no worker listens to yet, so its dependent stays deferred.
    parent = enqueue(sync_redis, rq_tasks.add, 1, queue="slow")
    child = enqueue(sync_redis, rq_tasks.add, 2, depends_on=parent)
    assert child.get_status().value == "deferred"
    # and one scheduled job, which is not blocked
    later = Queue("default", connection=sync_redis).enqueue_in(timedelta(hours=1), rq_tasks.add, 3)

    async with rq_api(redis_url, queues=("default", "slow")) as api:
        body = await api.snapshot()
        counters = body["counters"]
        assert (counters["blocked"], counters["scheduled"]) == (1, 1), counters
        # the scheduled list shows both: the due one, then the blocked one
        assert body["lists"]["scheduled"]["total"] == 2
        where, row = find_row(body, child.id) or ("", {})
        assert where == "scheduled"
        assert (row["status"], row["raw_status"]) == ("blocked", "deferred")
        assert row["waits_for"] == [parent.id] and row["scheduled_for"] is None
        assert row["actions"] == ["cancel"]
        due = find_row(body, later.id)
        assert due is not None and due[1]["status"] == "scheduled" and due[1]["waits_for"] == []

        status, detail = await api.job(child.id)
        assert status == 200 and detail["status"] == "blocked"
        assert detail["waits_for"] == [parent.id]

        html = await _page(api, f"/jobs/{SOURCE}")
        table = list_table(html, ListName.SCHEDULED)
        cell = table.cell(child.id, "Job")
        assert f"waits for {parent.id}" in cell and "deferred" in cell
        assert 'data-counter="blocked">1<' in html

        page = await _page(api, f"/jobs/{SOURCE}/{child.id}")
        assert "Waits for" in page
        assert re.search(rf'<a href="/admin/jobs/{SOURCE}/{parent.id}"><code>', page)

        # Once the parent has run, RQ enqueues the child: no longer blocked.
        rq_workers.run_burst(["slow"])
        body = await api.snapshot()
        assert body["counters"]["blocked"] == 0
        where, row = find_row(body, child.id) or ("", {})
        assert (where, row.get("status"), row.get("waits_for")) == ("enqueued", "enqueued", [])


async def test_job_with_retry_max_3_shows_its_retries(sync_redis, rq_workers, redis_url) -> None:
    # interval 600 s: after its first failure RQ parks it in the scheduled registry
    job = enqueue(sync_redis, rq_tasks.fail, "again", retry=Retry(max=3, interval=600))
    async with rq_api(redis_url) as api:
        status, detail = await api.job(job.id)
        assert status == 200
        # no worker has taken it: retries_left is still the policy's maximum
        assert (detail["retries_left"], detail["retries_max"]) == (3, 3)
        html = await _page(api, f"/jobs/{SOURCE}")
        table = list_table(html, ListName.ENQUEUED)
        assert table.cell(job.id, "Retries") == "3 retries left of 3"
        assert "?/?" not in html

        rq_workers.run_burst(["default"])
        assert sync_redis.hget(f"rq:job:{job.id}", "retries_left") == b"2"
        body = await api.snapshot()
        where, row = find_row(body, job.id) or ("", {})
        assert (where, row["status"]) == ("scheduled", JobStatus.RETRYING.value)
        # it has run: RQ keeps no maximum, so only what is left is known
        assert (row["retries_left"], row["retries_max"]) == (2, None)
        html = await _page(api, f"/jobs/{SOURCE}")
        table = list_table(html, ListName.SCHEDULED)
        assert table.cell(job.id, "Retries") == "2 retries left"
        page = await _page(api, f"/jobs/{SOURCE}/{job.id}")
        assert "<dt>Retries</dt><dd>2 retries left</dd>" in page
        assert "?/?" not in html + page


async def test_rows_show_the_call_runtime_wait_and_worker(
    sync_redis, rq_workers, redis_url
) -> None:
    done = enqueue(sync_redis, rq_tasks.sleep_then, 0.3, "x" * 300)
    failed = enqueue(sync_redis, rq_tasks.fail, "kaput")
    worker = rq_workers.run_burst(["default"])
    waiting_job = enqueue(sync_redis, rq_tasks.add, 2, b=3)

    async with rq_api(redis_url) as api:
        body = await api.snapshot()
        _, row = find_row(body, done.id) or ("", {})
        assert row["payload_preview"].startswith("tests.rq.tasks.sleep_then(0.3, 'xxx")
        assert row["worker"] == worker.name

        html = await _page(api, f"/jobs/{SOURCE}")
        completed = list_table(html, ListName.COMPLETED)
        for title in ("Runtime", "Wait", "Worker", "Finished At"):
            assert title in completed.headers, completed.headers
        assert "Principal" not in completed.headers and "Correlation" not in completed.headers
        # its call, cut to one line, whole in the title
        job_cell = completed.cell(done.id, "Job")
        assert "tests.rq.tasks.sleep_then(0.3, 'xxx" in job_cell and "…" in job_cell
        assert f'title="{escape(row["payload_preview"])}"' in completed.raw_row(done.id)
        runtime = completed.cell(done.id, "Runtime")
        assert re.fullmatch(r"\d+(\.\d)? s|\d+ ms", runtime), runtime
        seconds = float(runtime.split()[0]) * (1 if runtime.endswith(" s") else 0.001)
        assert seconds >= 0.3
        assert completed.cell(done.id, "Worker") == worker.name
        assert completed.cell(done.id, "Wait") != "—"

        failed_table = list_table(html, ListName.FAILED)
        assert "ValueError: kaput" in failed_table.cell(failed.id, "Last Error")
        assert "tests.rq.tasks.fail('kaput')" in failed_table.cell(failed.id, "Job")

        # a waiting list has nothing finished, nothing failed, nothing run
        enqueued = list_table(html, ListName.ENQUEUED)
        assert "tests.rq.tasks.add(2, b=3)" in enqueued.cell(waiting_job.id, "Job")
        for title in ("Finished At", "Last Error", "Runtime", "Wait", "Worker", "Principal"):
            assert title not in enqueued.headers, enqueued.headers
        assert ">Principal</th>" not in html

        page = await _page(api, f"/jobs/{SOURCE}/{done.id}")
        assert "<dt>Runtime</dt>" in page and "<dt>Call</dt>" in page


async def test_principal_column_appears_when_a_row_has_one(sync_redis, redis_url) -> None:
    tagged = enqueue(sync_redis, rq_tasks.add, 1, principal_id="alice", correlation_id="req-7")
    plain = enqueue(sync_redis, rq_tasks.add, 2)
    async with rq_api(redis_url) as api:
        html = await _page(api, f"/jobs/{SOURCE}")
        table = list_table(html, ListName.ENQUEUED)
        assert table.cell(tagged.id, "Principal") == "alice"
        assert table.cell(tagged.id, "Correlation") == "req-7"
        assert table.cell(plain.id, "Principal") == "—"


async def _page(api, path: str) -> str:
    status, html = await api.get(path)
    assert status == 200, html
    return html


def test_cli_uses_the_same_words(sync_redis, rq_workers, redis_url, tmp_path) -> None:
    parent = enqueue(sync_redis, rq_tasks.add, 1, queue="slow")
    child = enqueue(sync_redis, rq_tasks.add, 2, depends_on=parent)
    retried = enqueue(sync_redis, rq_tasks.fail, "again", retry=Retry(max=3, interval=600))
    done = enqueue(sync_redis, rq_tasks.add, 4, b=5)
    rq_workers.run_burst(["default"])
    config = write_config(tmp_path / "jobbridge.toml", redis_url, ("default", "slow"))

    def cli(*args: str) -> str:
        result = CliRunner().invoke(main, [*args, "--config", str(config)])
        assert result.exit_code == 0, result.output
        return result.output

    shown = cli("show", child.id)
    assert "status: blocked (deferred)" in shown
    assert f"waits for: {parent.id}" in shown
    assert "call: tests.rq.tasks.add(2)" in shown
    assert "None" not in shown and "?/?" not in shown

    shown = cli("show", retried.id)
    assert "status: retrying (scheduled)" in shown
    assert "retries: 2 retries left" in shown

    shown = cli("show", done.id)
    assert "call: tests.rq.tasks.add(4, b=5)" in shown
    assert "runtime: " in shown and "wait: " in shown

    listed = cli("snapshot")
    assert "blocked 1" in listed and "blocked (deferred)" in listed
    assert f"[waits for {parent.id}]" in listed
    assert "2 retries left" in listed and "?/?" not in listed
