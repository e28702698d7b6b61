"""Class 7 (issue 15): what a Celery user saw that was not true, checked with real workers.

- a task jobbridge canceled or revoked is listed in Canceled under its name and queue: the
  REVOKED result jobbridge writes has Celery's ``result_extended`` fields, and Celery's
  client still reads it (state REVOKED, ``get()`` raises ``TaskRevokedError``);
- a revoked eta task, which Celery keeps held until its eta, is shown revoked and pending,
  with no action, on the source page and the job page;
- Celery's discard says, on its button, confirmation and reply, that only jobbridge's index
  forgets the task while Celery's FAILURE result stays.
"""

from __future__ import annotations

import json
import re

import pytest

from examples.celery_app import MAIL_QUEUE, task_name
from tests.celery.celery_jobbridge import celery_api, wait_row
from tests.celery.celery_support import meta_key, ran_ids, send, state_of, wait_for_state
from tests.rq.rq_support import RqApi, wait_for

pytestmark = pytest.mark.redis

EXTENDED = ("name", "args", "kwargs", "worker", "retries", "queue")


def row_html(html: str, task_id: str) -> str:
    """The table row of the page that links to ``task_id``."""
    rows = [r for r in html.split("<tr") if task_id in r]
    assert len(rows) == 1, f"{len(rows)} rows name {task_id}"
    return rows[0]


async def page(api: RqApi, path: str) -> str:
    status, html = await api.get(path)
    assert status == 200, html
    assert isinstance(html, str)
    return html


def assert_revoked_for_celery(capp, task_id: str) -> None:
    assert state_of(capp, task_id) == "REVOKED"
    with pytest.raises(Exception) as raised:
        capp.AsyncResult(task_id).get(timeout=5)
    assert type(raised.value).__name__ == "TaskRevokedError"


async def test_class7_canceled_and_revoked_tasks_keep_name_queue_and_read_revoked(
    celery_app, celery_workers, redis_url, sync_redis
) -> None:
    # No worker consumes "mail": that message waits, to be canceled.
    worker = celery_workers.start(pool="solo", queues=("celery",))
    waiting = send(celery_app, "record", "cancel me", queue=MAIL_QUEUE)
    held = send(celery_app, "record", "revoke me", countdown=120)
    async with celery_api(redis_url) as api:
        await wait_row(api, "enqueued", waiting.id)
        await wait_row(api, "scheduled", held.id)

        status, body = await api.act(waiting.id, "cancel")
        assert status == 200, body
        status, body = await api.act(held.id, "revoke")
        assert status == 200 and body["outcome"] == "revoke_requested", body
        wait_for(
            lambda: f"Tasks flagged as revoked: {held.id}" in worker.logs(),
            "the worker to hear the revoke",
            10,
        )

        for task_id, queue, tag in (
            (waiting.id, MAIL_QUEUE, "cancel me"),
            (held.id, "celery", "revoke me"),
        ):
            meta = json.loads(sync_redis.get(meta_key(task_id)))
            # The worker saw a ready state and left jobbridge's result as written.
            assert set(EXTENDED) <= set(meta), meta
            assert meta["status"] == "REVOKED" and meta["task_id"] == task_id
            assert meta["name"] == task_name("record")
            assert meta["args"] == [tag] and meta["kwargs"] == {}
            assert meta["queue"] == queue and meta["retries"] == 0
            assert meta["result"]["exc_type"] == "TaskRevokedError"
            assert_revoked_for_celery(celery_app, task_id)
            row = await wait_row(api, "canceled", task_id)
            assert row["name"] == task_name("record"), row
            assert row["queue"] == queue, row
            assert row["raw_status"] == "REVOKED"
        canceled_page = await page(api, "/jobs/celery")
        for task_id in (waiting.id, held.id):
            assert "(unreadable)" not in row_html(
                canceled_page.split('id="list-canceled"')[-1], task_id
            )
    assert waiting.id not in ran_ids(sync_redis) and held.id not in ran_ids(sync_redis)


async def test_class7_revoked_eta_task_shows_revoked_pending_with_no_action(
    celery_app, celery_workers, redis_url, sync_redis
) -> None:
    celery_workers.start(pool="solo", queues=("celery",))
    held = send(celery_app, "record", "held", countdown=120)
    other = send(celery_app, "record", "other", countdown=120)
    async with celery_api(redis_url) as api:
        await wait_row(api, "scheduled", held.id)
        await wait_row(api, "scheduled", other.id)
        status, body = await api.act(held.id, "revoke")
        assert status == 200, body
        wait_for_state(celery_app, held.id, "REVOKED", workers=celery_workers)

        # Celery keeps the revoked task held (unacked) until its eta: still listed there.
        row = await wait_row(api, "scheduled", held.id)
        assert row["raw_status"] == "revoked, held until its eta", row
        assert row["actions"] == [], row
        assert "discards it then" in row["extra"]["revoked"]
        untouched = await wait_row(api, "scheduled", other.id)
        assert "revoke" in untouched["actions"] and "revoked" not in untouched["extra"]

        html = row_html(await page(api, "/jobs/celery"), held.id)
        assert "revoked, pending" in html and "discards it then" in html
        assert "data-action=" not in html
        assert 'data-action="revoke"' in row_html(await page(api, "/jobs/celery"), other.id)
        detail = await page(api, f"/jobs/celery/{held.id}")
        assert "revoked, pending" in detail and "data-action=" not in detail

        # Revoking again is refused, saying why, and sends nothing.
        status, body = await api.act(held.id, "revoke")
        assert status == 409 and "already revoked" in body["message"], body
    assert held.id not in ran_ids(sync_redis)


async def test_class7_celery_discard_says_only_jobbridge_forgets_it(
    celery_app, redis_url, sync_redis
) -> None:
    task_id = "discard-me-0001"
    meta = json.dumps(
        {
            "status": "FAILURE",
            "result": {"exc_type": "ValueError", "exc_message": ["boom"], "exc_module": "builtins"},
            "traceback": "Traceback ...\nValueError: boom\n",
            "children": [],
            "date_done": "2026-12-03T10:00:00.000000+00:00",
            "name": task_name("fail"),
            "args": ["x"],
            "kwargs": {},
            "worker": "w@host",
            "retries": 0,
            "queue": "celery",
            "task_id": task_id,
        }
    )
    async with celery_api(redis_url) as api:
        sync_redis.set(meta_key(task_id), meta, ex=3600)
        sync_redis.publish(meta_key(task_id), meta)
        await wait_row(api, "failed", task_id)
        for path in ("/jobs/celery", f"/jobs/celery/{task_id}"):
            html = await page(api, path)
            if path == "/jobs/celery":
                html = row_html(html, task_id)
            assert re.search(r'data-action="discard">Hide from jobbridge…</summary>', html), html
            assert "Only jobbridge's own index forgets it" in html
            assert "still holds its <em>FAILURE</em> result" in html
            assert 'data-action="discard-confirm">Hide from jobbridge\'s list</button>' in html
        status, body = await api.act(task_id, "discard")
        assert status == 200, body
        assert "Only jobbridge's index forgets it" in body["message"]
        assert "still holds its FAILURE result" in body["message"]
        status, spec = await api.get("/api/openapi.json")
        discard = spec["paths"]["/admin/api/sources/{source}/jobs/{id}/discard"]["post"]
        assert "only hides the task from jobbridge's index" in discard["summary"]
    assert state_of(celery_app, task_id) == "FAILURE"


async def test_class7_revoked_results_on_another_backend_keep_name_and_queue(
    redis_server, redis_url, sync_redis
) -> None:
    """The result backend on another database: Python writes the REVOKED result after the
    script, with the same fields (cancel), and by the worker's rule (revoke: only over no
    result, PENDING, RECEIVED, RETRY or REJECTED)."""
    import kombu.pools
    import redis as redis_py

    from examples.celery_app import make_app
    from jobbridge.adapters.celery import actions as celery_actions
    from jobbridge.adapters.celery.adapter import CeleryAdapter

    results_url = redis_server.url(0)
    results = redis_py.Redis.from_url(results_url)
    results.flushdb()
    capp = make_app(redis_url, results_url)
    try:
        waiting = send(capp, "record", "elsewhere", queue=MAIL_QUEUE)
        async with celery_api(redis_url, results_url=results_url) as api:
            await wait_row(api, "enqueued", waiting.id)
            status, body = await api.act(waiting.id, "cancel")
            assert status == 200, body
            assert not sync_redis.exists(meta_key(waiting.id))
            meta = json.loads(results.get(meta_key(waiting.id)))
            assert (meta["status"], meta["name"], meta["queue"], meta["args"]) == (
                "REVOKED",
                task_name("record"),
                MAIL_QUEUE,
                ["elsewhere"],
            )
            assert_revoked_for_celery(capp, waiting.id)
            row = await wait_row(api, "canceled", waiting.id)
            assert (row["name"], row["queue"]) == (task_name("record"), MAIL_QUEUE)

            adapter = api.service.adapters["celery"]
            assert isinstance(adapter, CeleryAdapter)
            revoked = celery_actions.revoked_meta_of("t", queue="celery")
            results.set(meta_key("done"), b'{"status": "SUCCESS", "result": 1}')
            results.set(meta_key("again"), b'{"status": "RETRY", "result": null}')
            for task_id in ("done", "again", "none"):
                await celery_actions._store_revoked_elsewhere(
                    adapter, adapter.keys.task_meta(task_id), revoked
                )
            assert results.get(meta_key("done")) == b'{"status": "SUCCESS", "result": 1}'
            assert results.get(meta_key("again")) == revoked
            assert results.get(meta_key("none")) == revoked
            assert 0 < results.ttl(meta_key("none")) <= celery_actions.RESULT_EXPIRES_S
    finally:
        backend = capp._backend
        if backend is not None:
            backend.result_consumer.stop()
            backend.client.connection_pool.disconnect()
        if capp._pool is not None:
            capp._pool.force_close_all()
        capp.close()
        kombu.pools.reset()
        results.flushdb()
        results.close()


async def test_class7_revoke_script_writes_only_over_a_state_a_worker_would(
    redis_url, sync_redis
) -> None:
    """The revoke script re-checks the stored state (it may have moved since Python read
    it): its REVOKED result goes only over none, PENDING, RECEIVED, RETRY or REJECTED."""
    from jobbridge.adapters.celery import actions as celery_actions
    from jobbridge.adapters.celery import control
    from jobbridge.adapters.celery.adapter import CeleryAdapter
    from jobbridge.adapters.outcomes import run_script
    from jobbridge.model import Action

    listener = sync_redis.pubsub()
    async with celery_api(redis_url) as api:
        adapter = api.service.adapters["celery"]
        assert isinstance(adapter, CeleryAdapter)
        channel = control.pidbox_channel(adapter.keys.global_keyprefix, adapter.db)
        listener.subscribe(channel)
        revoked = celery_actions.revoked_meta_of("t", queue="celery")
        cases = {
            "SUCCESS": False,
            "FAILURE": False,
            "STARTED": False,
            "REVOKED": False,
            "RETRY": True,
            "PENDING": True,
            None: True,
        }
        for state, written in cases.items():
            task_id = f"t-{state}"
            stored = json.dumps({"status": state, "result": None}).encode()
            if state is not None:
                sync_redis.set(meta_key(task_id), stored)
            result = await run_script(
                adapter.scripts["revoke"],
                action=Action.REVOKE,
                job_id=task_id,
                actor="ops",
                keys=[adapter.keys.task_meta(task_id)],
                args=["", channel, b"{}", "revoke", revoked, 60],
                operator=adapter.operator,
                words=celery_actions.WORDS,
            )
            assert result is not None and result.ok, result
            expected = revoked if written else stored
            assert sync_redis.get(meta_key(task_id)) == expected, state
    listener.close()
