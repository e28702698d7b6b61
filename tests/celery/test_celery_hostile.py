"""Hostile and odd Celery data, and the messages jobbridge itself publishes, against real
``celery worker`` processes.

- Poison check: every message a jobbridge retry publishes is accepted by a real worker, solo
  and prefork, whatever the arguments' shape: each new task ends SUCCESS or FAILURE with a
  meta, the worker stays alive, the arguments arrive exactly as they were.
- Hostile messages pushed by hand (messages that kill a worker, or that it would loop on or
  lose; a pickle that creates a file when loaded; 5 MB; garbage) are flagged rows on the
  pages, API and CLI, never run, and a cancel removes each one: the operator's way to clear a
  poison pill before a worker takes it.
- Hostile result metas, stored and published, are flagged or skipped: never a 500.
"""

from __future__ import annotations

import base64
import gc
import json
import pickle
import uuid
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote

import pytest
import redis
from celery import Celery  # type: ignore[import-untyped]
from click.testing import CliRunner

from examples.celery_app import MAIL_QUEUE
from jobbridge.cli import main
from tests.celery.celery_jobbridge import celery_api, ids, snapshot, wait_row
from tests.celery.celery_support import (
    CeleryWorkerPool,
    meta_key,
    send,
    wait_for_state,
)

pytestmark = pytest.mark.redis


#: what a worker logs when a message breaks it, or when it drops one
CRASH_WORDS = ("Unrecoverable error", "Received unregistered task", "Can't decode message body")


def worker_crashed(pool: CeleryWorkerPool) -> list[str]:
    """Log lines of any worker that met a message it could not take."""
    return [
        line
        for worker in pool.workers
        for line in worker.logs(tail=10**6).splitlines()
        if any(word in line for word in CRASH_WORDS)
    ]


# ------------------------------------------------------------------------------------------
# (a) What jobbridge publishes, a worker accepts


#: failed tasks of every argument shape: (task, args, kwargs, queue, what the new run ends as)
SHAPES: list[tuple[str, list[Any], dict[str, Any], str, str]] = [
    ("fail", [], {}, "celery", "FAILURE"),  # no arguments at all
    ("fail", ['💥 ünïcødé \u2028 line\x00nul "quoted" \\ back'], {}, "celery", "FAILURE"),
    (
        "fail",
        [],
        {
            "message": {
                "nested": {"list": [1, 2.5, None, True, {"deep": ["ü", {}]}]},
                "": "empty key",
            }
        },
        "celery",
        "FAILURE",
    ),
    ("flaky", ["clé-🔑"], {}, "celery", "SUCCESS"),
    ("fail", [[2**62, -(2**62), 1.5e300, 0.1, -0.0]], {}, "celery", "FAILURE"),
    ("add", ["text", 1], {}, "celery", "FAILURE"),  # TypeError: fails again, as it should
    ("send_email", [], {}, MAIL_QUEUE, "FAILURE"),  # missing argument, on the mail queue
]


@pytest.mark.parametrize(("pool", "concurrency"), [("solo", 1), ("prefork", 2)])
async def test_every_retry_message_is_accepted_by_a_real_worker(
    celery_app, celery_workers, redis_url, sync_redis, pool, concurrency
) -> None:
    worker = celery_workers.start(pool=pool, concurrency=concurrency)
    failed = [
        send(celery_app, task, *args, kwargs=kwargs).id for task, args, kwargs, _, _ in SHAPES
    ]
    for task_id in failed:
        wait_for_state(celery_app, task_id, "FAILURE", workers=celery_workers)
    async with celery_api(redis_url) as api:
        new_ids = []
        for task_id in failed:
            await wait_row(api, "failed", task_id)
            status, body = await api.act(task_id, "retry")
            assert status == 200, body
            new_ids.append(body["new_id"])
        for (task, _, _, queue, ends), old, new in zip(SHAPES, failed, new_ids, strict=True):
            old_meta = json.loads(sync_redis.get(meta_key(old)))
            wait_for_state(celery_app, new, ends, 15, workers=celery_workers)
            meta = json.loads(sync_redis.get(meta_key(new)))
            # The arguments arrive as the first run had them, byte for byte.
            assert (meta["args"], meta["kwargs"]) == (old_meta["args"], old_meta["kwargs"]), task
            assert meta["name"] == old_meta["name"] and meta["queue"] == queue
            assert meta["parent_id"] == old
        assert set(new_ids).isdisjoint(failed)
    worker.assert_alive()
    assert worker.is_ready()
    assert worker_crashed(celery_workers) == []
    assert sync_redis.llen("celery") == 0 and sync_redis.llen(MAIL_QUEUE) == 0


# ------------------------------------------------------------------------------------------
# (b) Hostile messages in the queue


class Touches:
    """Unpickling this creates ``path`` (``Path.touch``): proof that a pickle was loaded."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.path,))


def envelope_of(capp: Celery, conn: redis.Redis) -> dict[str, Any]:
    """A real message as Celery publishes it (sent, then taken back off the list)."""
    send(capp, "add", 1, 2)
    raw = cast("bytes | None", conn.rpop("celery"))
    assert raw is not None
    envelope: dict[str, Any] = json.loads(raw)
    return envelope


def with_body(template: dict[str, Any], task_id: str | None, body: bytes, **over: Any) -> bytes:
    message = json.loads(json.dumps(template))
    message["body"] = base64.b64encode(body).decode()
    if task_id is None:
        del message["headers"]["id"]
    else:
        message["headers"]["id"] = task_id
        message["properties"]["correlation_id"] = task_id
    message["properties"]["delivery_tag"] = str(uuid.uuid4())
    message.update(over)
    return json.dumps(message).encode()


def hostile_messages(template: dict[str, Any], marker: Path) -> dict[str, bytes]:
    """Name -> the exact bytes LPUSHed; those with an id use ``hostile-<name>``."""
    evil = pickle.dumps([[Touches(marker)], {}, {}], protocol=4)
    return {
        "two-items": with_body(template, "hostile-two-items", json.dumps([[1, 2], {}]).encode()),
        "bad-json": b'{"body": "eyJ4IjogMX0=", "headers": {"id": "hostile-bad-json", ',
        "pickle": with_body(
            template,
            "hostile-pickle",
            evil,
            **{"content-type": "application/x-python-serialize", "content-encoding": "binary"},
        ),
        "huge": with_body(
            template, "hostile-huge", json.dumps([["x" * 5_000_000], {}, {}]).encode()
        ),
        "no-id": with_body(template, None, json.dumps([[1, 2], {}, {}]).encode()),
        "garbage": b"\x00\xff\xfe\x80garbage\x1b[31m not a message \xc3\x28",
    }


def row_of(body: dict[str, Any], name: str) -> dict[str, Any]:
    """The enqueued row of one hostile message: by its ``hostile-<name>`` id, else (a
    message with no usable id, listed under ``message:<hex>``) by the problem it shows."""
    rows = body["lists"]["enqueued"]["items"]
    by_id = [r for r in rows if r["id"] == f"hostile-{name}"]
    if by_id:
        return by_id[0]  # type: ignore[no-any-return]
    anonymous = {
        "bad-json": "not a JSON message (Expecting",
        "no-id": "no task id",
        "garbage": "not valid UTF-8",
    }[name]
    (row,) = [r for r in rows if r["id"].startswith("message:") and anonymous in r["problem"]]
    return row  # type: ignore[no-any-return]


def path_id(task_id: str) -> str:
    return quote(task_id, safe="")


async def test_hostile_messages_are_flagged_never_run_and_cancel_clears_them(
    celery_app, celery_workers, redis_url, sync_redis, tmp_path
) -> None:
    marker = tmp_path / "pwned"
    hostile = hostile_messages(envelope_of(celery_app, sync_redis), marker)
    for raw in hostile.values():
        sync_redis.lpush("celery", raw)
    normal = send(celery_app, "record", "after the poison").id
    async with celery_api(redis_url) as api:
        body = await snapshot(api, per_page=100)
        assert body["lists"]["enqueued"]["total"] == len(hostile) + 1
        rows = {name: row_of(body, name) for name in hostile}
        assert all(row["problem"] for row in rows.values()), rows
        assert body["lists"]["enqueued"]["flagged"] == len(hostile)
        assert "a worker fails on it" in rows["two-items"]["problem"]
        assert "pickle that was not loaded" in rows["pickle"]["problem"]
        assert "over the cap" in rows["huge"]["problem"]
        assert rows["no-id"]["id"].startswith("message:")
        status, html = await api.get(f"/jobs/{api.source}")
        assert status == 200, html
        for row in rows.values():
            assert f'row-corrupt" data-job-id="{row["id"]}"' in html, row["id"]
            status, page = await api.get(f"/jobs/{api.source}/{path_id(row['id'])}")
            assert status == 200, (row["id"], page)
            status, detail = await api.job(path_id(row["id"]))
            assert status == 200 and detail["problem"], (row["id"], detail)
        assert not marker.exists(), "a page loaded the pickle"

        # Cancel removes each one, exactly it: by its task id, or by its message:<hex> id.
        for name, row in rows.items():
            status, result = await api.act(path_id(row["id"]), "cancel")
            assert status == 200 and result["outcome"] == "canceled", (name, result)
            assert hostile[name] not in sync_redis.lrange("celery", 0, -1), name
        (left,) = sync_redis.lrange("celery", 0, -1)
        assert json.loads(left)["headers"]["id"] == normal
        assert ids(await snapshot(api, per_page=100), "enqueued") == [normal]
        status, html = await api.get("/audit")
        assert status == 200, html

    # A worker started now never meets the poison: it stays up and runs the normal task.
    for pool in ("solo", "prefork"):
        worker = celery_workers.start(pool=pool)
        if pool == "solo":
            wait_for_state(celery_app, normal, "SUCCESS", workers=celery_workers)
        check = send(celery_app, "add", 2, 2).id
        wait_for_state(celery_app, check, "SUCCESS", workers=celery_workers)
        worker.assert_alive()
        worker.stop()
    assert sync_redis.lrange("test:celery:ran", 0, -1) == [normal.encode()]
    assert worker_crashed(celery_workers) == []
    assert not marker.exists()


def test_the_poison_is_live(celery_app, celery_workers, sync_redis, tmp_path) -> None:
    """Control: a worker that takes the two-item message dies, and the pickle, loaded, makes
    its file. (What the cancel above spares a real deployment.)"""
    marker = tmp_path / "pwned"
    hostile = hostile_messages(envelope_of(celery_app, sync_redis), marker)
    body = json.loads(hostile["pickle"])["body"]
    pickle.loads(base64.b64decode(body))  # the file appears
    assert marker.exists()
    sync_redis.lpush("celery", hostile["two-items"])
    worker = celery_workers.start(pool="solo", wait=False)
    code = worker.process.wait(timeout=30)
    assert code != 0 and "Unrecoverable error" in worker.logs(tail=10**6), worker.describe()
    # Restored at its shutdown, it waits for the next worker, to kill it too.
    (restored,) = sync_redis.lrange("celery", 0, -1)
    assert json.loads(restored)["headers"]["id"] == "hostile-two-items"


async def test_cancel_of_a_message_without_an_id_invents_no_celery_result(
    celery_app, redis_url, sync_redis, tmp_path
) -> None:
    """A message with no usable task id is canceled under its ``message:<hex>`` id, which is
    jobbridge's name for it, not a Celery task id: nothing should be stored or published
    under it in Celery's result backend (a REVOKED result for a task that never existed)."""
    hostile = hostile_messages(envelope_of(celery_app, sync_redis), tmp_path / "pwned")
    for name in ("no-id", "garbage", "bad-json"):
        sync_redis.lpush("celery", hostile[name])
    async with celery_api(redis_url) as api:
        rows = [r for r in (await snapshot(api, per_page=100))["lists"]["enqueued"]["items"]]
        assert len(rows) == 3 and all(r["id"].startswith("message:") for r in rows), rows
        for row in rows:
            status, result = await api.act(path_id(row["id"]), "cancel")
            assert status == 200, result
    assert sync_redis.llen("celery") == 0
    invented = sorted(k.decode() for k in sync_redis.scan_iter(match="celery-task-meta-*"))
    assert invented == [], invented


# ------------------------------------------------------------------------------------------
# Hostile result metas


def hostile_metas(marker: Path) -> dict[str, bytes]:
    """Task id -> a meta value no Celery writes (each id names what is wrong with it)."""
    done = "2026-12-03T10:00:00.000000+00:00"
    return {
        "meta-bad-json": b'{"status": "SUCCESS", "result": [1, 2',
        "meta-pickle": pickle.dumps(
            {"status": "SUCCESS", "result": Touches(marker), "date_done": done}, protocol=4
        ),
        "meta-wrong-types": json.dumps(
            {
                "status": 5,
                "result": {"exc_type": 7, "exc_message": {"not": "a list"}},
                "traceback": ["not", "text"],
                "children": "none",
                "date_done": [2026, 12, 3],
                "name": {"a": 1},
                "args": "not a list",
                "kwargs": [1, 2],
                "worker": 42,
                "retries": "many",
                "queue": None,
                "task_id": 12345,
            }
        ).encode(),
        "meta-failure-odd": json.dumps(
            {
                "status": "FAILURE",
                "result": {"exc_type": ["x"], "exc_message": None, "exc_module": 3},
                "traceback": 12345,
                "date_done": "not a date",
                "args": [1],
                "kwargs": "nope",
                "task_id": "meta-failure-odd",
            }
        ).encode(),
        "meta-unknown-state": json.dumps(
            {"status": "EXPLODED", "result": None, "date_done": done, "task_id": "x"}
        ).encode(),
        "meta-not-a-map": b"[1, 2, 3]",
        "meta-nan": b'{"status": "SUCCESS", "result": NaN, "date_done": "' + done.encode() + b'"}',
        "meta-garbage": b"\x80\x05\xff\xfe garbage \x00\xc3\x28",
        "meta-huge": json.dumps(
            {"status": "SUCCESS", "result": "x" * 5_000_000, "date_done": done}
        ).encode(),
    }


@pytest.mark.slow
async def test_hostile_result_metas_are_flagged_or_skipped_never_a_500(
    celery_app, redis_url, sync_redis, tmp_path
) -> None:
    marker = tmp_path / "pwned"
    metas = hostile_metas(marker)
    good = {
        "status": "SUCCESS",
        "result": 4,
        "traceback": None,
        "children": [],
        "date_done": "2026-12-03T10:00:01.000000+00:00",
        "task_id": "meta-good",
    }
    async with celery_api(redis_url) as api:
        for task_id, raw in {**metas, "meta-good": json.dumps(good).encode()}.items():
            sync_redis.set(meta_key(task_id), raw, ex=3600)
            sync_redis.publish(meta_key(task_id), raw)
        # The subscriber took the metas in order: once the good one is listed, all were seen.
        await wait_row(api, "completed", "meta-good")
        body = await snapshot(api, per_page=100)
        listed = {item["id"]: item for page in body["lists"].values() for item in page["items"]}
        shown = sorted(set(metas) & set(listed))
        flagged = sorted(i for i in shown if listed[i]["problem"])
        print(f"\nhostile metas: listed {shown}; flagged {flagged}")
        assert flagged == shown, {i: listed[i] for i in shown if i not in flagged}
        for path in (f"/jobs/{api.source}", "/jobs", "/api/counters", "/audit"):
            status, page = await api.get(path)
            assert status == 200, (path, page)
        for task_id in metas:
            status, page = await api.get(f"/jobs/{api.source}/{task_id}")
            assert status == 200, (task_id, page)
            status, detail = await api.job(task_id)
            assert status == 200 and detail["problem"], (task_id, detail)
            assert len(json.dumps(detail)) < 1_000_000, task_id
        # No action trusts them: a retry or discard of each is refused or done, never a 500.
        for task_id in metas:
            for action in ("retry", "discard", "revoke"):
                status, result = await api.act(task_id, action)
                assert status in (200, 404, 409), (task_id, action, result)
        assert sync_redis.llen("celery") == 0, "a retry sent a message built from a hostile meta"
    assert not marker.exists(), "a meta's pickle was loaded"


async def test_job_page_of_a_task_with_a_result_over_a_mebibyte_says_success(
    celery_app, celery_workers, redis_url, sync_redis
) -> None:
    """Not hostile, only big: a real task returning 1.2 MB stores a SUCCESS meta over the
    1 MiB the job page reads. The completed list shows it completed (the index reads the
    status at the meta's start); the job page must agree rather than call it an undecodable
    meta in an unknown state."""
    celery_workers.start(pool="solo")
    big = send(celery_app, "add", "x" * 1_200_000, "!").id
    wait_for_state(celery_app, big, "SUCCESS", workers=celery_workers)
    assert sync_redis.strlen(meta_key(big)) > 1_048_576
    async with celery_api(redis_url) as api:
        row = await wait_row(api, "completed", big)
        assert row["status"] == "completed", row
        status, page = await api.get(f"/jobs/{api.source}/{big}")
        assert status == 200, page
        status, detail = await api.job(big)
    assert status == 200, detail
    assert (detail["status"], detail["raw_status"]) == ("completed", "SUCCESS"), detail["problem"]


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout + result.stderr


@pytest.mark.slow
def test_hostile_messages_and_metas_never_break_the_cli(
    celery_app, redis_url, sync_redis, tmp_path
) -> None:
    marker = tmp_path / "pwned"
    hostile = hostile_messages(envelope_of(celery_app, sync_redis), marker)
    for raw in hostile.values():
        sync_redis.lpush("celery", raw)
    for task_id, raw in hostile_metas(marker).items():
        sync_redis.set(meta_key(task_id), raw, ex=3600)
    for args in (("snapshot",), ("snapshot", "--json")):
        code, out = cli(*args, "--redis", redis_url)
        assert code == 0, out
        assert "hostile-two-items" in out and "hostile-pickle" in out, out
        assert not marker.exists()
    result = CliRunner().invoke(main, ["snapshot", "--json", "--redis", redis_url])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["snapshots"][0]["lists"]["enqueued"]["items"]
    assert len(rows) == len(hostile) and all(r["problem"] for r in rows), rows
    shown = [r["id"] for r in rows] + list(hostile_metas(marker))
    for task_id in shown:
        for extra in ((), ("--json",)):
            code, out = cli("show", "--redis", redis_url, *extra, task_id)
            assert code == 0, (task_id, out)
            assert not marker.exists(), task_id
    # The CLI clears a poison pill as the page does.
    anonymous = next(r["id"] for r in rows if r["id"].startswith("message:"))
    code, out = cli("cancel", "--redis", redis_url, "hostile-two-items", anonymous)
    assert code == 0, out
    assert sync_redis.llen("celery") == len(hostile) - 2
    assert not marker.exists()
    # Whatever the commands left unclosed is reported here, not in the next test.
    gc.collect()
