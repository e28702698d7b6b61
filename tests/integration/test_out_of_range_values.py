"""Class 4 of issue 15: a value out of range is a flagged row, never a 500 or a 503.

Every number a read turns into a time or a count - in Autumn's records and sorted sets, RQ's
job hashes, registries and worker hashes, Celery's messages, metas, ``unacked_index`` and
jobbridge's own index - is set to each hostile value in turn (one job per field), and every
record key a read opens is given the wrong type. The snapshot API, the source page, each
job's page and ``jobbridge snapshot`` must all answer, with the row flagged and its problem
shown.
"""

from __future__ import annotations

import asyncio
import json
import pickle
import time
import zlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import redis
from aiohttp.test_utils import TestClient, TestServer
from click.testing import CliRunner

from jobbridge.adapters.celery.control import build_task_message
from jobbridge.adapters.celery.index_summary import dump_summary
from jobbridge.cli import main
from jobbridge.dev.autumn_emulator import Autumn
from jobbridge.settings import ServerConfig, Settings, SourceConfig
from jobbridge.web.app import create_app
from tests.celery.celery_support import realistic_meta
from tests.celery.celery_unacked_seed import held_value
from tests.integration.processes import scaled

pytestmark = pytest.mark.redis

SOURCES = {"autumn": "orders", "rq": "work", "celery": "cel"}
NOW = time.time()
INDEX = "jobbridge:celery::index:"

#: hostile numbers as Redis and JSON hold them ("s" / "ms": the year 10000 in that unit)
VALUES = ("1e300", "inf", "-inf", "nan", "year-10000", "-1e300", "1" + "0" * 30)


def number(value: str, unit: str = "s") -> str:
    if value == "year-10000":
        return "253402300800" if unit == "s" else "253402300800000"
    return value


def json_number(value: str, unit: str = "s") -> str:
    """The value as a JSON literal (Python's json reads NaN and Infinity; cjson writes them)."""
    return {"inf": "Infinity", "-inf": "-Infinity", "nan": "NaN"}.get(value, number(value, unit))


def score(value: str, unit: str = "s") -> float:
    return float(number(value, unit))


@dataclass(frozen=True)
class Target:
    """A job (or worker) holding one hostile value: where to look for its flag."""

    source: str
    job_id: str
    #: "row": a row on some list and its job page; "page": its job page only (Celery
    #: metas and index entries, listed once jobbridge's index has them); "worker";
    #: "message": a waiting message, a row by its task id or (unreadable) its digest
    where: str = "row"


# ------------------------------------------------------------------------------- seeding


def rq_ts(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def rq_job(conn: redis.Redis, job_id: str, status: str, **fields: str) -> None:
    data = zlib.compress(pickle.dumps(("tests.rq.tasks.add", None, (1, 2), {}), protocol=4))
    record: dict[str, Any] = {
        "data": data,
        "created_at": rq_ts(NOW - 50),
        "enqueued_at": rq_ts(NOW - 40),
        "started_at": rq_ts(NOW - 30),
        "origin": "default",
        "description": "tests.rq.tasks.add(1, 2)",
        "status": status,
        "timeout": "180",
    }
    record.update(fields)
    conn.hset(f"rq:job:{job_id}", mapping=record)


RQ_PLACES = {  # status -> registry (None: the queue list)
    "queued": None,
    "started": "rq:wip:default",
    "scheduled": "rq:scheduled:default",
    "finished": "rq:finished:default",
    "failed": "rq:failed:default",
    "deferred": "rq:deferred:default",
    "canceled": "rq:canceled:default",
}
RQ_TIMES = ("created_at", "enqueued_at", "started_at", "ended_at", "last_heartbeat")
#: the integers a read converts (result_ttl, ttl, failure_ttl are never read)
RQ_INTS = ("timeout", "retries_left", "number_of_retries")
RQ_WORKER_FIELDS = ("birth", "last_heartbeat", "successful_job_count", "failed_job_count", "pid")


def place_rq(conn: redis.Redis, job_id: str, status: str, at: float = NOW + 100) -> None:
    registry = RQ_PLACES[status]
    if registry is None:
        conn.rpush("rq:queue:default", job_id)
    else:
        conn.zadd(registry, {job_id: at})


def seed_rq(conn: redis.Redis, value: str) -> list[Target]:
    conn.sadd("rq:queues", "rq:queue:default")
    targets = []
    for field in (*RQ_TIMES, *RQ_INTS):
        if value == "year-10000" and field in RQ_INTS:
            continue  # a valid integer, not a time
        job_id = f"rq-{field}"
        rq_job(conn, job_id, "failed", **{field: number(value)})
        place_rq(conn, job_id, "failed")
        targets.append(Target("work", job_id))
    if value != "nan":  # Redis refuses a NaN score
        for status in ("scheduled", "started"):
            job_id = f"rq-score-{status}"
            rq_job(conn, job_id, status)
            place_rq(conn, job_id, status, score(value))
            targets.append(Target("work", job_id))
    for field in RQ_WORKER_FIELDS:
        if value == "year-10000" and not field.endswith(("birth", "heartbeat")):
            continue  # a valid count
        name = f"w-{field}"
        conn.sadd("rq:workers", f"rq:worker:{name}")
        worker = {
            "birth": rq_ts(NOW - 100),
            "last_heartbeat": rq_ts(NOW),
            "queues": "default",
            "state": "idle",
            "successful_job_count": "3",
            "failed_job_count": "1",
            "total_working_time": "1.5",
            "pid": "123",
            "hostname": "h",
        }
        worker[field] = number(value)
        conn.hset(f"rq:worker:{name}", mapping=worker)
        targets.append(Target("work", name, "worker"))
    return targets


AUTUMN_MS = ("enqueued_at_ms", "started_at_ms", "finished_at_ms", "claimed_at_ms")
AUTUMN_COUNTS = ("attempt", "max_attempts", "initial_backoff_ms")


def seed_autumn(conn: redis.Redis, value: str) -> list[Target]:
    app = Autumn(redis.Redis(connection_pool=conn.connection_pool))
    targets = []
    for field in (*AUTUMN_MS, *AUTUMN_COUNTS):
        if value == "year-10000" and field in AUTUMN_COUNTS:
            continue  # a valid u64: a count, not a time
        job_id = app.enqueue("noop", {}, job_id=f"au-{field}")
        key = app.record_key(job_id)
        record = json.loads(conn.get(key) or b"{}")
        record[field] = "@"
        unit = "ms" if field.endswith("_ms") else "s"
        conn.set(key, json.dumps(record).replace('"@"', json_number(value, unit)))
        targets.append(Target("orders", job_id))
    if value != "nan":
        for zset in ("delayed", "processing"):
            job_id = app.enqueue("noop", {}, job_id=f"au-{zset}")
            conn.lrem(app.queue_key("default"), 0, job_id)
            conn.zadd(f"autumn:jobs:{zset}", {job_id: score(value, "ms")})
            targets.append(Target("orders", job_id))
    return targets


def seed_celery(conn: redis.Redis, value: str) -> list[Target]:
    targets = []
    eta = datetime.now(UTC) + timedelta(hours=1)
    if value != "nan":
        for n, when in enumerate((eta, None)):  # held for an eta (scheduled), reserved
            task_id = f"held-{n}"
            conn.hset("unacked", f"tag-{n}", held_value(task_id, when))
            conn.zadd("unacked_index", {f"tag-{n}": score(value)})
            targets.append(Target("cel", task_id))
    if not value.startswith("-") and value != "nan":
        # jobbridge's own index, which anyone can write too (a score below its windows is
        # trimmed away, as old entries are)
        conn.hset(INDEX + "rows", "indexed", dump_summary({"state": "SUCCESS", "name": "t"}))
        conn.zadd(INDEX + "completed", {"indexed": score(value, "ms")})
        targets.append(Target("cel", "indexed", "page"))
    # the header times, and retries (a count: the year 10000 is a valid one)
    for header in ("eta", "expires") if value == "year-10000" else ("eta", "expires", "retries"):
        task_id = f"msg-{header}"
        message = json.loads(
            build_task_message(
                task="examples.celery_app.add",
                task_id=task_id,
                args=[1, 2],
                kwargs={},
                queue="celery",
                priority=None,
                parent_id=None,
                root_id=task_id,
                origin="seed@test",
            )
        )
        message["headers"][header] = "@"
        text = json.dumps(message).replace('"@"', json_number(value))
        conn.lpush("celery", text)
        targets.append(Target("cel", task_id, "message"))
    for field in ("date_done",) if value == "year-10000" else ("date_done", "retries"):
        task_id = f"meta-{field}"
        meta = json.loads(realistic_meta(task_id, "FAILURE", datetime.now(UTC)))
        meta[field] = "@"
        conn.set(f"celery-task-meta-{task_id}", json.dumps(meta).replace('"@"', json_number(value)))
        targets.append(Target("cel", task_id, "page"))
    return targets


SEEDS: dict[str, Callable[[redis.Redis, str], list[Target]]] = {
    "autumn": seed_autumn,
    "rq": seed_rq,
    "celery": seed_celery,
}


# ------------------------------------------------------------------------------- reading


def settings(redis_url: str) -> Settings:
    return Settings(
        server=ServerConfig(cache_ttl_s=0.0),
        sources=(
            SourceConfig(name="orders", system="autumn", redis_url=redis_url, queues=("default",)),
            SourceConfig(name="work", system="rq", redis_url=redis_url, queues=("default",)),
            SourceConfig(name="cel", system="celery", redis_url=redis_url),
        ),
    )


def config_file(tmp_path: Path, redis_url: str) -> Path:
    path = tmp_path / "jobbridge.toml"
    path.write_text(
        f'[[sources]]\nname = "orders"\nsystem = "autumn"\nredis_url = "{redis_url}"\n'
        'queues = ["default"]\n'
        f'[[sources]]\nname = "work"\nsystem = "rq"\nredis_url = "{redis_url}"\n'
        'queues = ["default"]\n'
        f'[[sources]]\nname = "cel"\nsystem = "celery"\nredis_url = "{redis_url}"\n'
    )
    return path


@pytest.fixture
async def web(redis_url: str) -> AsyncIterator[TestClient]:
    client = TestClient(TestServer(create_app(settings(redis_url))))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()


def systems(names: dict[str, Any]) -> list[Any]:
    """Parameters: Celery's cases wait seconds for its held messages to be read (``slow``)."""
    return [pytest.param(n, marks=pytest.mark.slow) if n == "celery" else n for n in sorted(names)]


def job_path(source: str, job_id: str) -> str:
    return f"/admin/jobs/{source}/job?{urlencode({'id': job_id})}"


async def listed(web: TestClient, targets: list[Target]) -> None:
    """Wait until the rows read in the background (Celery's held messages) are listed."""
    wanted = {(t.source, t.job_id) for t in targets if t.where == "row"}
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        seen = set()
        for source in {s for s, _ in wanted}:
            body = await (await web.get(f"/admin/api/sources/{source}/snapshot")).json()
            seen |= {(source, i["id"]) for p in body["lists"].values() for i in p["items"]}
        if wanted <= seen:
            return
        await asyncio.sleep(0.2)


async def assert_flagged_everywhere(
    web: TestClient, targets: list[Target], cli_config: Path
) -> None:
    await listed(web, targets)
    for source in sorted({t.source for t in targets}):
        mine = [t for t in targets if t.source == source]
        response = await web.get(f"/admin/api/sources/{source}/snapshot")
        assert response.status == 200, await response.text()
        body = await response.json()
        rows = {item["id"]: item for page in body["lists"].values() for item in page["items"]}
        workers = {w["name"]: w for w in body.get("workers") or ()}
        html_response = await web.get(f"/admin/jobs/{source}")
        assert html_response.status == 200
        html = await html_response.text()
        for target in mine:
            if target.where == "worker":
                assert workers[target.job_id]["problem"], (target, workers[target.job_id])
                continue
            if target.where == "message" and target.job_id not in rows:
                # a message JSON cannot read (NaN, Infinity) is known by its digest
                unread = [i for i in rows if i.startswith("message:") and rows[i]["problem"]]
                assert unread, (target, sorted(rows))
                target = Target(source, unread[0])
            if target.where in ("row", "message"):
                assert target.job_id in rows, (target, sorted(rows))
                assert rows[target.job_id]["problem"], (target, rows[target.job_id])
                assert f'row-corrupt" data-job-id="{escape(target.job_id)}"' in html, target
            page = await web.get(job_path(source, target.job_id))
            assert page.status == 200, (target, page.status)
            assert 'class="problem"' in await page.text(), target
            api = await web.get(f"/admin/api/sources/{source}/jobs/{target.job_id}")
            assert api.status == 200 and (await api.json())["problem"], target
    for source in sorted({t.source for t in targets}):
        args = ["snapshot", "--config", str(cli_config), "--source", source]
        for extra in ([], ["--json"]):
            # the CLI runs its own event loop: off this one
            result = await asyncio.to_thread(CliRunner().invoke, main, args + extra)
            assert result.exit_code == 0, (source, extra, result.output, result.exception)


@pytest.mark.parametrize("value", VALUES)
@pytest.mark.parametrize("system", systems(SEEDS))
async def test_a_value_out_of_range_is_a_flagged_row(
    web: TestClient,
    sync_redis: redis.Redis,
    redis_url: str,
    tmp_path: Path,
    system: str,
    value: str,
) -> None:
    targets = SEEDS[system](sync_redis, value)
    await assert_flagged_everywhere(web, targets, config_file(tmp_path, redis_url))


# ------------------------------------------------------------------------ wrong-typed keys


def wrong_type(conn: redis.Redis, key: str, kind: str = "list") -> None:
    conn.delete(key)
    if kind == "list":
        conn.rpush(key, "x")
    elif kind == "set":
        conn.sadd(key, "x")
    else:
        conn.hset(key, "x", "y")


def seed_wrong_autumn(conn: redis.Redis) -> list[Target]:
    app = Autumn(redis.Redis(connection_pool=conn.connection_pool))
    record = app.enqueue("noop", {}, job_id="au-set-record")
    wrong_type(conn, app.record_key(record), "set")
    lifecycle = app.enqueue("noop", {}, job_id="au-list-lifecycle")
    wrong_type(conn, f"jobbridge:autumn:autumn:jobs:lifecycle:{lifecycle}")
    return [Target("orders", record), Target("orders", lifecycle, "page")]


def seed_wrong_rq(conn: redis.Redis) -> list[Target]:
    conn.sadd("rq:queues", "rq:queue:default")
    targets = []
    for job_id, status in (("rq-list-hash", "failed"), ("rq-list-hash-q", "queued")):
        place_rq(conn, job_id, status)
        wrong_type(conn, f"rq:job:{job_id}")
        targets.append(Target("work", job_id))
    for job_id, status in (("rq-list-lifecycle", "failed"), ("rq-list-lifecycle-q", "queued")):
        rq_job(conn, job_id, status)
        place_rq(conn, job_id, status)
        wrong_type(conn, f"jobbridge:rq:rq:lifecycle:{job_id}")
        targets.append(Target("work", job_id, "page"))  # its lifecycle shows on its page
    return targets


def seed_wrong_celery(conn: redis.Redis) -> list[Target]:
    wrong_type(conn, "celery-task-meta-m")
    conn.set("celery-task-meta-lc", realistic_meta("lc", "FAILURE", datetime.now(UTC)))
    wrong_type(conn, "jobbridge:celery::lifecycle:lc")
    return [Target("cel", "m", "page"), Target("cel", "lc", "page")]


WRONG = {"autumn": seed_wrong_autumn, "rq": seed_wrong_rq, "celery": seed_wrong_celery}


@pytest.mark.parametrize("system", systems(WRONG))
async def test_a_key_of_the_wrong_type_is_a_flagged_row(
    web: TestClient, sync_redis: redis.Redis, redis_url: str, tmp_path: Path, system: str
) -> None:
    targets = WRONG[system](sync_redis)
    await assert_flagged_everywhere(web, targets, config_file(tmp_path, redis_url))
    if system == "autumn":  # a record no script can use offers no action
        body = await (await web.get("/admin/api/sources/orders/snapshot")).json()
        (row,) = [i for i in body["lists"]["enqueued"]["items"] if i["id"] == "au-set-record"]
        assert row["actions"] == [] and "another type" in row["problem"]


@pytest.mark.parametrize("key", ["unacked", "unacked_index", "celery"])
async def test_a_wrong_typed_celery_key_is_named_in_the_counters(
    web: TestClient, sync_redis: redis.Redis, key: str
) -> None:
    sync_redis.hset("unacked", "tag", held_value("held", None))
    sync_redis.zadd("unacked_index", {"tag": NOW})
    wrong_type(sync_redis, key, "set" if key == "celery" else "list")
    # Some of these are found by the background sort of unacked: under load it may come a
    # moment after the first read. Every read answers 200 meanwhile.
    deadline = time.monotonic() + scaled(15)
    while True:
        response = await web.get("/admin/api/sources/cel/snapshot")
        assert response.status == 200
        problems = (await response.json())["counters"]["problems"]
        if any(repr(key) in p or f"{key} is not" in p for p in problems):
            break
        assert time.monotonic() < deadline, problems
        await asyncio.sleep(0.2)
    page = await web.get(job_path("cel", "held"))
    assert page.status in (200, 404)  # never "Redis unavailable"


# -------------------------------------------------------------- values read as their systems do


async def test_a_meta_naming_another_task_shows_the_problem_on_its_page(
    web: TestClient, sync_redis: redis.Redis
) -> None:
    sync_redis.set("celery-task-meta-mine", realistic_meta("theirs", "FAILURE", datetime.now(UTC)))
    page = await web.get(job_path("cel", "mine"))
    assert page.status == 200
    assert "its task_id names another task" in await page.text()


async def test_a_string_priority_is_read_as_kombu_reads_it(
    web: TestClient, sync_redis: redis.Redis
) -> None:
    for task_id, priority in (("p-text", "9"), ("p-float", 9.0), ("p-word", "high")):
        sync_redis.hset(
            "unacked", task_id, held_value(task_id, None, properties={"priority": priority})
        )
        sync_redis.zadd("unacked_index", {task_id: NOW})
    await listed(web, [Target("cel", t) for t in ("p-text", "p-float", "p-word")])
    body = await (await web.get("/admin/api/sources/cel/snapshot")).json()
    rows = {i["id"]: i for page in body["lists"].values() for i in page["items"]}
    assert rows["p-text"]["problem"] is None and rows["p-float"]["problem"] is None
    assert "priority" in rows["p-word"]["problem"]


async def test_a_bare_reduce_pickle_in_rq_data_is_flagged_not_named(
    web: TestClient, sync_redis: redis.Redis
) -> None:
    # what pickle.dumps writes for an object whose __reduce__ returns (os.system, ("id",)):
    # no RQ tuple around it, so "posix" is no function name
    reduce = b"\x80\x04\x95\x1e\x00\x00\x00\x00\x00\x00\x00\x8c\x05posix\x94\x8c\x06system"
    reduce += b"\x94\x93\x94\x8c\x02id\x94\x85\x94R\x94."
    sync_redis.sadd("rq:queues", "rq:queue:default")
    rq_job(sync_redis, "reduce", "queued", data=zlib.compress(reduce))  # type: ignore[arg-type]
    place_rq(sync_redis, "reduce", "queued")
    body = await (await web.get("/admin/api/sources/work/snapshot")).json()
    (row,) = [i for i in body["lists"]["enqueued"]["items"] if i["id"] == "reduce"]
    assert row["name"] != "posix" and "not RQ's" in (row["problem"] or ""), row
