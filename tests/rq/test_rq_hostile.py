"""Hostile and odd RQ data through every read path: pages, JSON API and CLI.

Pickles that would run code when loaded never run; a zlib bomb is refused within bounds; a
hash of garbage is a flagged row, not an error; RQ 1.x's layout (plain ids in ``rq:wip``,
``exc_info`` in the hash, no result streams) reads right. The hashes are written by hand in
RQ's own format (docs/rq.md §2, §7).
"""

from __future__ import annotations

import base64
import json
import pathlib
import pickle
import resource
import time
import uuid
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner

from jobbridge.cli import main
from tests.rq.rq_support import (
    find_row,
    rq_api,
    write_config,
)

pytestmark = pytest.mark.redis

QUEUES = ("default", "legacy")
FUNC = "tests.rq.tasks.add"
#: what a zlib bomb inflates to: ~3 GiB of zeros (1 MiB chunks), from ~3 MB
BOMB_CHUNK = 1 << 20
BOMB_CHUNKS = 3000


class Opens:
    """Unpickling this calls ``open(path, "w")``: a file appears."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.path, "w"))


class Touches:
    """Unpickling this calls ``pathlib.Path.touch(path)``."""

    def __init__(self, path: Path) -> None:
        self.path = pathlib.Path(path)

    def __reduce__(self) -> tuple[Any, ...]:
        return (pathlib.Path.touch, (self.path,))


def rq_time(value: datetime) -> str:
    """RQ's timestamp format (rq/utils.py)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


NOW = datetime.now(UTC)


def job_hash(job_id: str, *, status: str, origin: str = "default", **fields: Any) -> dict:
    """A job hash as RQ 2.x/3.x writes one (every always-written field present)."""
    base: dict[str, Any] = {
        "created_at": rq_time(NOW - timedelta(minutes=5)),
        "data": zlib.compress(pickle.dumps((FUNC, None, (1, 2), {}), protocol=5)),
        "status": status,
        "started_at": "",
        "ended_at": "",
        "last_heartbeat": "",
        "worker_name": "",
        "group_id": "",
        "success_callback_name": "",
        "failure_callback_name": "",
        "stopped_callback_name": "",
        "origin": origin,
        "description": f"{FUNC}(1, 2)",
        "enqueued_at": rq_time(NOW - timedelta(minutes=4)),
        "timeout": "180",
    }
    base.update(fields)
    return base


def put_job(conn: redis.Redis, job_id: str, where: str, fields: dict, **opts: Any) -> None:
    """Write a job hash and list it where RQ would: ``queue``, ``failed``, ``wip``,
    ``finished`` (``plain_wip`` for 1.x members)."""
    queue = fields.get("origin", "default")
    if not isinstance(queue, str):
        queue = "default"
    conn.sadd("rq:queues", f"rq:queue:{queue}")
    conn.hset(f"rq:job:{job_id}", mapping=fields)
    now = time.time()
    if where == "queue":
        conn.rpush(f"rq:queue:{queue}", job_id)
    elif where == "failed":
        conn.zadd(f"rq:failed:{queue}", {job_id: opts.get("score", now + 31_536_000)})
    elif where == "finished":
        conn.zadd(f"rq:finished:{queue}", {job_id: opts.get("score", now + 500)})
    elif where == "wip":
        execution = opts.get("execution", uuid.uuid4().hex)
        member = job_id if opts.get("plain") else f"{job_id}:{execution}"
        conn.zadd(f"rq:wip:{queue}", {member: opts.get("score", now + 90)})
        if not opts.get("plain"):
            conn.hset(
                f"rq:execution:{job_id}:{execution}",
                mapping={
                    "id": execution,
                    "job_id": job_id,
                    "created_at": str(now - 10),
                    "last_heartbeat": str(now),
                    "worker_name": fields.get("worker_name", ""),
                },
            )
            conn.zadd(f"rq:executions:{job_id}", {execution: now + 150})
    else:
        raise ValueError(where)


def put_worker(conn: redis.Redis, name: str, queue: str, current_job: str) -> None:
    conn.hset(
        f"rq:worker:{name}",
        mapping={
            "birth": rq_time(NOW - timedelta(hours=1)),
            "last_heartbeat": rq_time(NOW),
            "queues": queue,
            "pid": "4242",
            "hostname": "box",
            "state": "busy",
            "current_job": current_job,
            "successful_job_count": "3",
            "failed_job_count": "1",
            "total_working_time": "12.5",
            "version": "1.16.2",
            "python_version": "3.11.9",
        },
    )
    conn.sadd("rq:workers", f"rq:worker:{name}")
    conn.sadd(f"rq:workers:{queue}", f"rq:worker:{name}")


def result_entry(conn: redis.Redis, job_id: str, **fields: Any) -> None:
    conn.xadd(f"rq:results:{job_id}", fields, maxlen=10)


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


# ------------------------------------------------------------------ evil pickles


def evil_markers(base: Path) -> dict[str, Path]:
    return {
        name: base / f"pwned-{name}"
        for name in ("args", "kwargs", "instance", "meta", "result", "legacy-result", "func")
    }


def evil_data(markers: dict[str, Path], func: Any = FUNC) -> bytes:
    args = (Opens(markers["args"]),)
    kwargs = {"k": Touches(markers["kwargs"])}
    payload = (func, Opens(markers["instance"]), args, kwargs)
    return zlib.compress(pickle.dumps(payload, protocol=5))


def seed_evil(conn: redis.Redis, base: Path) -> tuple[list[str], dict[str, Path]]:
    """Evil pickles in a queue, the failed registry, wip and finished; the ids and markers."""
    markers = evil_markers(base)
    data = evil_data(markers)
    meta = pickle.dumps({"who": Opens(markers["meta"])}, protocol=5)
    put_job(conn, "evil-queued", "queue", job_hash("evil-queued", status="queued", data=data))
    put_job(
        conn,
        "evil-failed",
        "failed",
        job_hash("evil-failed", status="failed", data=data, meta=meta, ended_at=rq_time(NOW)),
    )
    result_entry(
        conn,
        "evil-failed",
        type="2",
        worker_name="w1",
        exc_string=b64(zlib.compress(b"Traceback: ValueError: evil boom")),
    )
    put_job(
        conn,
        "evil-running",
        "wip",
        job_hash(
            "evil-running",
            status="started",
            data=data,
            meta=meta,
            worker_name="evil-worker",
            started_at=rq_time(NOW - timedelta(seconds=10)),
        ),
    )
    put_worker(conn, "evil-worker", "default", "evil-running")
    put_job(
        conn,
        "evil-finished",
        "finished",
        job_hash(
            "evil-finished",
            status="finished",
            # the function "name" itself is a global to resolve: a reader must not do so
            data=evil_data(markers, func=Touches(markers["func"])),
            meta=meta,
            result=pickle.dumps(Opens(markers["legacy-result"]), protocol=5),
            ended_at=rq_time(NOW),
        ),
    )
    result_entry(
        conn,
        "evil-finished",
        type="1",
        worker_name="w1",
        return_value=b64(pickle.dumps(Opens(markers["result"]), protocol=5)),
    )
    return ["evil-queued", "evil-failed", "evil-running", "evil-finished"], markers


def assert_nothing_ran(markers: dict[str, Path]) -> None:
    made = sorted(name for name, path in markers.items() if path.exists())
    assert made == [], f"unpickling ran code: {made}"


def test_the_evil_payloads_are_live(tmp_path) -> None:
    """Control: loaded with pickle, these payloads do create their files."""
    markers = evil_markers(tmp_path)
    _, instance, args, _ = pickle.loads(zlib.decompress(evil_data(markers)))
    instance.close()
    args[0].close()
    assert markers["args"].exists() and markers["kwargs"].exists()
    assert markers["instance"].exists()


async def test_evil_pickles_never_run_through_pages_and_api(
    sync_redis, redis_url, tmp_path
) -> None:
    ids, markers = seed_evil(sync_redis, tmp_path)
    async with rq_api(redis_url, queues=QUEUES) as api:
        status, html = await api.get(f"/jobs/{api.source}")
        assert status == 200, html
        snapshot = await api.snapshot()
        assert_nothing_ran(markers)
        for job_id in ids:
            assert find_row(snapshot, job_id) is not None, (job_id, snapshot["lists"])
            status, html = await api.get(f"/jobs/{api.source}/{job_id}")
            assert status == 200, (job_id, html)
            status, body = await api.job(job_id)
            assert status == 200, (job_id, body)
            assert_nothing_ran(markers)
        for path in ("/jobs", "/api/counters"):
            status, _ = await api.get(path)
            assert status == 200, path
        status, body = await api.job("evil-queued")
        assert body["name"] == FUNC, body
        _, running = find_row(snapshot, "evil-running")
        assert running["worker"] == "evil-worker", running
    assert_nothing_ran(markers)


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout + result.stderr


def test_evil_and_garbage_never_break_the_cli(sync_redis, redis_url, tmp_path) -> None:
    ids, markers = seed_evil(sync_redis, tmp_path)
    ids += seed_garbage(sync_redis)
    put_job(sync_redis, "bomb", "queue", job_hash("bomb", status="queued", data=zlib_bomb()))
    ids.append("bomb")
    config = write_config(tmp_path / "jb.toml", redis_url, QUEUES)
    for args in (("snapshot",), ("snapshot", "--json")):
        started = time.monotonic()
        code, out = cli(*args, "--config", str(config))
        assert code == 0, out
        assert time.monotonic() - started < 20
        assert "evil-queued" in out and "garbage-queued" in out
        assert_nothing_ran(markers)
    for job_id in ids:
        for extra in ((), ("--json",)):
            code, out = cli("show", "--config", str(config), *extra, job_id)
            assert code == 0, (job_id, out)
            assert_nothing_ran(markers)


# ------------------------------------------------------------------ zlib bomb


def zlib_bomb(chunks: int = BOMB_CHUNKS) -> bytes:
    """zlib of ``chunks`` MiB of zeros (default ~3 MB inflating to ~3 GiB), valid to its
    checksum, built in milliseconds.

    One fully flushed deflate block of a 1 MiB chunk is byte-aligned and independent, so the
    stream is the header, that block repeated, an empty final block and the Adler-32 (of n
    zeros: A = 1, B = n mod 65521).
    """
    compressor = zlib.compressobj(9)
    head = compressor.compress(bytes(BOMB_CHUNK)) + compressor.flush(zlib.Z_FULL_FLUSH)
    header, block = head[:2], head[2:]
    total = BOMB_CHUNK * chunks
    adler = ((total % 65521) << 16) | 1
    return header + block * chunks + b"\x03\x00" + adler.to_bytes(4, "big")


def test_the_bomb_is_a_valid_stream_of_gibibytes() -> None:
    # The construction inflates exactly, checksum included (checked on a small one) ...
    assert zlib.decompress(zlib_bomb(5)) == bytes(5 * BOMB_CHUNK)
    # ... and the real one is that stream with 3000 blocks: ~3 GiB from under 4 MB.
    bomb = zlib_bomb()
    assert len(bomb) < 4_000_000 and BOMB_CHUNK * BOMB_CHUNKS > 2 << 30
    inflater = zlib.decompressobj()
    assert inflater.decompress(bomb, 64 * BOMB_CHUNK) == bytes(64 * BOMB_CHUNK)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def test_zlib_bomb_renders_with_a_problem_in_bounded_time(sync_redis, redis_url) -> None:
    bomb = zlib_bomb()
    put_job(sync_redis, "bomb", "queue", job_hash("bomb", status="queued", data=bomb))
    # The same bomb as an exception text (results stream) and a legacy exc_info.
    put_job(
        sync_redis,
        "bomb-failed",
        "failed",
        job_hash("bomb-failed", status="failed", exc_info=bomb, ended_at=rq_time(NOW)),
    )
    result_entry(sync_redis, "bomb-failed", type="2", worker_name="w", exc_string=b64(bomb))
    rss_before = peak_rss_mib()
    async with rq_api(redis_url, queues=QUEUES) as api:
        timings: dict[str, float] = {}
        for path in (
            f"/jobs/{api.source}",
            f"/api/sources/{api.source}/snapshot",
            f"/jobs/{api.source}/bomb",
            f"/api/sources/{api.source}/jobs/bomb",
            f"/jobs/{api.source}/bomb-failed",
            f"/api/sources/{api.source}/jobs/bomb-failed",
        ):
            started = time.monotonic()
            status, body = await api.get(path)
            timings[path] = time.monotonic() - started
            assert status == 200, (path, body)
        _, job = await api.job("bomb")
        assert job["problem"], job
        assert len(json.dumps(job)) < 1_000_000
        _, failed = await api.job("bomb-failed")
        assert len(failed["last_error"] or "") < 1_000_000
    print(f"\nbomb reads: { {p: round(t, 3) for p, t in timings.items()} }")
    assert max(timings.values()) < 5, timings
    assert peak_rss_mib() - rss_before < 512, "a bomb was inflated in memory"


# ------------------------------------------------------------------ garbage


GARBAGE: dict[str, Any] = {
    "created_at": b"\xff\xfenot a date",
    "data": b"\x00\xffgarbage, not zlib, not pickle",
    "status": b"exploded\xff",
    "origin": b"\xff\xfe\x00",
    "description": b"\xc3\x28 invalid utf-8 \x1b[31m",
    "enqueued_at": b"99999-99-99T99:99:99.999999Z",
    "started_at": b"-1",
    "ended_at": b"1e309",
    "last_heartbeat": b"0000-00-00T00:00:00Z",
    "timeout": b"forever",
    "result_ttl": b"NaN",
    "failure_ttl": b"-inf",
    "ttl": b"[]",
    "meta": b"\x80\x05garbage",
    "retries_left": b"lots",
    "retry_intervals": b"{not json",
    "worker_name": b"\xff\xfe",
    "dependency_ids": b"[[[[",
    "group_id": b"\x00",
    "exc_info": b"not zlib at all",
    "result": b"\x80\x05\x95",
    "webhooks": b"\xff",
    "success_callback_name": b"os.system",
}
GARBAGE_IDS = ("garbage-queued", "garbage-failed", "garbage-running")


def seed_garbage(conn: redis.Redis) -> list[str]:
    """One hash of garbage in every field, listed in the queue, failed and wip (with absurd
    scores); the ids."""
    for job_id in GARBAGE_IDS:
        conn.hset(f"rq:job:{job_id}", mapping=GARBAGE)
    conn.sadd("rq:queues", "rq:queue:default")
    conn.rpush("rq:queue:default", "garbage-queued")
    conn.zadd("rq:failed:default", {"garbage-failed": 1e300})
    conn.zadd("rq:wip:default", {f"garbage-running:{'f' * 32}": -1e300})
    result_entry(conn, "garbage-failed", type="x", exc_string="%%%not base64")
    return list(GARBAGE_IDS)


async def test_garbage_fields_render_as_flagged_rows(sync_redis, redis_url) -> None:
    ids = seed_garbage(sync_redis)
    async with rq_api(redis_url, queues=QUEUES) as api:
        status, html = await api.get(f"/jobs/{api.source}")
        assert status == 200, html
        snapshot = await api.snapshot()
        for job_id in ids:
            found = find_row(snapshot, job_id)
            assert found is not None, (job_id, snapshot["lists"])
            assert found[1]["problem"], found
            status, html = await api.get(f"/jobs/{api.source}/{job_id}")
            assert status == 200, (job_id, html)
            status, body = await api.job(job_id)
            assert status == 200 and body["problem"], (job_id, body)
        for path in ("/jobs", "/api/counters", "/audit"):
            status, body = await api.get(path)
            assert status == 200, (path, body)


# ------------------------------------------------------------------ RQ 1.x layout


async def test_rq_1x_layout_reads_right(sync_redis, redis_url) -> None:
    put_job(
        sync_redis,
        "old-running",
        "wip",
        {
            "created_at": rq_time(NOW - timedelta(minutes=2)),
            "data": zlib.compress(pickle.dumps((FUNC, None, (3, 4), {}), protocol=4)),
            "description": f"{FUNC}(3, 4)",
            "enqueued_at": rq_time(NOW - timedelta(minutes=2)),
            "started_at": rq_time(NOW - timedelta(minutes=1)),
            "status": "started",
            "origin": "legacy",
            "timeout": "180",
            "worker_name": "old-worker",
            "last_heartbeat": rq_time(NOW),
        },
        plain=True,
    )
    put_worker(sync_redis, "old-worker", "legacy", "old-running")
    traceback = "Traceback (most recent call last):\n  ...\nValueError: legacy boom\n"
    put_job(
        sync_redis,
        "old-failed",
        "failed",
        {
            "created_at": rq_time(NOW - timedelta(minutes=3)),
            "data": zlib.compress(pickle.dumps((FUNC, None, (5, 6), {}), protocol=4)),
            "description": f"{FUNC}(5, 6)",
            "enqueued_at": rq_time(NOW - timedelta(minutes=3)),
            "started_at": rq_time(NOW - timedelta(minutes=3)),
            "ended_at": rq_time(NOW - timedelta(minutes=2)),
            "status": "failed",
            "origin": "legacy",
            "timeout": "180",
            "exc_info": zlib.compress(traceback.encode()),
        },
    )
    async with rq_api(redis_url, queues=QUEUES) as api:
        snapshot = await api.snapshot()
        running = find_row(snapshot, "old-running")
        assert running is not None and running[0] == "running", snapshot["lists"]
        assert running[1]["worker"] == "old-worker" and running[1]["queue"] == "legacy"
        assert running[1]["name"] == FUNC and not running[1]["problem"], running
        failed = find_row(snapshot, "old-failed")
        assert failed is not None and failed[0] == "failed", snapshot["lists"]
        assert "legacy boom" in (failed[1]["last_error"] or ""), failed
        assert failed[1]["status"] == "failed" and not failed[1]["problem"], failed
        assert snapshot["counters"]["running"] == 1
        status, body = await api.job("old-failed")
        assert status == 200 and "legacy boom" in body["last_error"], body
        status, body = await api.job("old-running")
        assert status == 200 and body["worker"] == "old-worker", body
        status, html = await api.get(f"/jobs/{api.source}/old-running")
        assert status == 200 and "old-worker" in html, html
        status, html = await api.get(f"/jobs/{api.source}/old-failed")
        assert status == 200 and "legacy boom" in html, html
