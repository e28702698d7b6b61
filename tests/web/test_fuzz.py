"""A short fuzz run: random hostile records, scores, key types and jobbridge entries in a real
Redis; every page, API route, metric and CLI command must answer without a 5xx or a traceback,
and the process's memory must stay bounded."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
from typing import Any
from urllib.parse import quote

import pytest
import redis
from click.testing import CliRunner

from jobbridge.adapters.autumn import history as autumn_history
from jobbridge.cli import main
from jobbridge.web import keys
from tests.autumn.autumn_fixtures import Autumn, Worker, failing_job, history_record
from tests.web.conftest import csrf_token

pytestmark = pytest.mark.redis

P = "autumn:jobs"
CORE = {
    "queue": f"{P}:queue",
    "low": f"{P}:queue:low",
    "delayed": f"{P}:delayed",
    "processing": f"{P}:processing",
    "blocked": f"{P}:blocked",
    "completed": f"{P}:completed",
    "dead": f"{P}:dead",
}
ROUNDS = 8
MUTATIONS = 40


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def hostile_id(rng: random.Random) -> bytes:
    return rng.choice(
        [
            b"..",
            b"counters",
            b"job",
            b"a/b",
            b"\x1b[2J\r\nforged",
            b"\xff\xfe",
            b"%80",
            b"x" * 300,
            b"entry:" + b"0" * 32,
            b" spaced ",
            f"id-{rng.randrange(10**6)}".encode(),
        ]
    )


def hostile_json(rng: random.Random, app: Autumn) -> bytes:
    now = app.now_ms()
    base: dict[str, Any] = json.loads(history_record(app, finished_ms=now - rng.randrange(10**9)))
    field = rng.choice([*base, "payload", "unique_key", "concurrency_limit"])
    value = rng.choice(
        [
            None,
            1.5,
            -1,
            2**70,
            "s" * rng.randrange(1, 20_000),
            [],
            {},
            True,
            "\u202e\x1b[31m",
        ]
    )
    base[field] = value
    text = json.dumps(base)
    twist = rng.randrange(8)
    if twist == 0:
        text = text.replace('"payload":', '"payload":' + "[" * 5000 + "1" + "]" * 5000 + ',"x":', 1)
    elif twist == 1:
        text = text.replace(":", ':1e999,"z":', 1)
    elif twist == 2:
        text = text[: rng.randrange(len(text))]
    elif twist == 3:
        text = text.replace('"id":', '"id":"\\ud800",', 1)
    elif twist == 4:
        text = json.dumps({"id": rng.choice([None, 1, "m"]), "error": "e", "raw_payload": "{"})
    raw = text.encode()
    if rng.randrange(6) == 0:
        raw = raw.replace(b"a", b"\xff", 1)
    return raw


def mutate(rng: random.Random, app: Autumn) -> None:
    c = app.client
    kind = rng.randrange(10)
    job = hostile_id(rng)
    if kind == 0:
        c.set(f"{P}:record:".encode() + job, hostile_json(rng, app))
        c.lpush(rng.choice([CORE["queue"], CORE["low"]]), job)
    elif kind == 1:
        c.lpush(rng.choice([CORE["completed"], CORE["dead"]]), hostile_json(rng, app))
    elif kind == 2:
        raw = hostile_json(rng, app)
        c.lpush(CORE["dead"], raw)
        c.set(f"{P}:dead-record:".encode() + job, raw)
    elif kind == 3:
        score = rng.choice([float("inf"), float("-inf"), -5, 10**18, 1.5])
        key = rng.choice([CORE["delayed"], CORE["processing"], CORE["blocked"]])
        if c.type(key) in (b"zset", b"none"):
            c.zadd(key, {job: score})
            c.set(f"{P}:record:".encode() + job, hostile_json(rng, app))
    elif kind == 4:
        key = rng.choice(list(CORE.values()))
        c.delete(key)
        rng.choice(
            [
                lambda: c.set(key, "str"),
                lambda: c.hset(key, "f", "v"),
                lambda: c.sadd(key, "m"),
                lambda: c.rpush(key, "x"),
                lambda: c.zadd(key, {"x": 1}),
            ]
        )()
    elif kind == 5:
        c.lpush(
            "jobbridge:audit",
            rng.choice(
                [
                    '{"at_ms":1e999,"job_id":"x"}',
                    "[" * 5000 + "]" * 5000,
                    b"\xff",
                    json.dumps({"at_ms": 1, "actor": 5, "source": [], "job_id": {}}),
                    json.dumps(
                        {
                            "at_ms": 1,
                            "actor": "\x1b[2J",
                            "source": "orders",
                            "job_id": "\r\nforged",
                            "action": "x",
                            "outcome": "y",
                        }
                    ),
                ]
            ),
        )
    elif kind == 6:
        c.set(
            f"jobbridge:autumn:{P}:lifecycle:".encode() + job,
            rng.choice(
                [
                    '{"status":"canceled","at_ms":1e999,"job_id":"x"}',
                    '{"status":"nope"}',
                    "[" * 3000,
                    json.dumps({"status": "retried", "at_ms": 1, "record": "{" * 10}),
                ]
            ),
        )
    elif kind == 7:
        c.set(f"{P}:queue:".encode() + job[:40], "not a list")
        c.set(
            f"{P}:record:q",
            app.encode({"id": "q", "name": "x", "queue": job[:40].decode("utf-8", "replace")}),
        )
        c.zadd(CORE["delayed"], {"q": app.now_ms() + 10_000}) if c.type(CORE["delayed"]) in (
            b"zset",
            b"none",
        ) else None
    elif kind == 8:
        # Big values: past the first read of a row, and past the inline decoding size.
        blob = {"blob": [{"n": n, "s": "b" * 30} for n in range(rng.choice([3_000, 12_000]))]}
        record = json.loads(history_record(app, finished_ms=app.now_ms(), payload=blob))
        record["id"] = job.decode("utf-8", "replace")
        raw = json.dumps(record).encode()
        target = rng.choice(["queue", "dead"])
        if target == "queue":
            c.set(f"{P}:record:".encode() + job, raw)
            c.lpush(CORE["queue"], job)
        else:
            c.lpush(CORE["dead"], raw)
            c.set(f"{P}:dead-record:".encode() + job, raw)
    else:
        c.delete(rng.choice(list(CORE.values())))


async def sweep(client, token: str, rng: random.Random) -> list[str]:
    """Every read, and actions on listed and random ids; the paths that were >= 500."""
    bad: list[str] = []
    paths = [
        "/admin/jobs",
        "/admin/jobs/counters",
        "/admin/jobs/orders",
        "/admin/jobs/orders/counters",
        "/admin/jobs/orders?failed_page=2&completed_page=3&per_page=7",
        "/admin/api/sources/orders/snapshot",
        "/admin/api/counters",
        "/admin/audit",
        "/admin/api/audit?source=orders",
        "/metrics",
        "/actuator/jobs",
        "/readyz",
    ]
    snapshot = await client.get("/admin/api/sources/orders/snapshot?per_page=100")
    ids: list[str] = []
    if snapshot.status == 200:
        body = await snapshot.json()
        ids = [j["id"] for page in body["lists"].values() for j in page["items"]]
    ids += [hostile_id(rng).decode("utf-8", "replace") for _ in range(3)]
    for job_id in ids[:40]:
        encoded = job_id.encode("utf-8", "surrogateescape")
        paths.append(f"/admin/jobs/orders/job?id={quote(encoded, safe='')}")
        paths.append(f"/admin/api/sources/orders/jobs/job?id={quote(encoded, safe='')}")
    for path in paths:
        response = await client.get(path)
        if response.status >= 500:
            bad.append(f"GET {path} {response.status}")
    for job_id in rng.sample(ids, min(len(ids), 12)):
        action = rng.choice(["cancel", "retry", "discard"])
        query = quote(job_id.encode("utf-8", "surrogateescape"), safe="")
        response = await client.post(
            f"/admin/api/sources/orders/jobs/job/{action}?id={query}",
            headers={"X-CSRF-Token": token},
        )
        if response.status >= 500 and response.status != 503:
            bad.append(f"POST {action} {job_id!r} {response.status}")
    return bad


def run_cli(redis_url: str, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, [*args, "--redis", redis_url])
    text = result.stdout + result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        text += f"\nEXCEPTION {result.exception!r}"
    return result.exit_code, text


@pytest.mark.slow
async def test_hostile_data_never_breaks_a_page_a_route_or_the_cli(
    make_client, autumn_emulator: Autumn, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    rng = random.Random(int(os.environ.get("JOBBRIDGE_FUZZ_SEED", "6")))
    for n in range(5):
        failing_job(autumn_emulator, payload={"n": n})
    for n in range(10):
        autumn_emulator.enqueue("noop", {"n": n}, queue=rng.choice(["default", "low"]))
    Worker(autumn_emulator, ["default"]).run(until_idle=True, max_seconds=5)
    for n in range(5):
        autumn_emulator.enqueue("noop", {"n": n}, queue=rng.choice(["default", "low"]))
    client = await make_client(queues=("default", "low"))
    service = client.server.app[keys.SERVICE]
    token = await csrf_token(client)
    start = rss_bytes()
    problems: list[str] = []
    for _ in range(ROUNDS):
        for _ in range(MUTATIONS):
            try:
                mutate(rng, autumn_emulator)
            except redis.ResponseError:
                pass  # the fuzzer wrote into a key an earlier mutation gave another type
        problems += await sweep(client, token, rng)
        for args in (("snapshot",), ("snapshot", "--json"), ("audit",), ("doctor",)):
            code, text = await asyncio.to_thread(run_cli, redis_url, *args)
            if "Traceback" in text or "EXCEPTION" in text or code not in (0, 1, 2, 3):
                problems.append(f"cli {args}: {code} {text[-500:]}")
        job = hostile_id(rng).decode("utf-8", "surrogateescape")
        for args in (("show", ".."), ("show", job), ("discard", job), ("retry", job)):
            code, text = await asyncio.to_thread(run_cli, redis_url, *args)
            if "Traceback" in text or "EXCEPTION" in text or code not in (0, 1, 2, 3):
                problems.append(f"cli {args!r}: {code} {text[-500:]}")
    assert problems == []
    # The overview, counters and /metrics turn a source's internal error into a row that
    # says so, with a 200: those count as failures too.
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == []
    assert len(service.cache) <= service.cache.max_entries
    assert autumn_history._ROWS.size <= autumn_history.ROW_CACHE_BYTES
    # Hostile values are capped in size here; what the run keeps must not grow with it.
    assert rss_bytes() - start < 300 * 1024 * 1024
