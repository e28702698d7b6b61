"""The Autumn emulator against what Autumn's Redis runtime does: keys, records, transitions."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from jobbridge.dev.autumn_emulator import (
    DEFAULT_PREFIX,
    Autumn,
    Worker,
    canonical_json,
    decode_record,
    fnv1a64_hex,
    queue_key,
    seed,
    unique_key_for,
)
from tests.integration.processes import scaled

pytestmark = pytest.mark.redis

REPO = Path(__file__).resolve().parents[2]
P = DEFAULT_PREFIX
T0 = 1_700_000_000_000

#: RedisJobRecord's field order (docs/autumn.md §2.1), written out here rather than taken from
#: the emulator so that the tests check the emulator against the documented layout.
SERDE_FIELD_ORDER = [
    "id",
    "name",
    "queue",
    "payload",
    "attempt",
    "max_attempts",
    "initial_backoff_ms",
    "enqueued_at_ms",
    "started_at_ms",
    "finished_at_ms",
    "claimed_by",
    "claimed_at_ms",
    "last_error",
]


class Clock:
    def __init__(self, start: int = T0) -> None:
        self.now = start

    def __call__(self) -> int:
        return self.now

    def advance(self, ms: int) -> None:
        self.now += ms


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(redis_url)
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def autumn_emulator(client: redis.Redis, clock: Clock) -> Autumn:
    return Autumn(client, clock=clock)


def worker(app: Autumn, queues: list[str] | None = None, **kw: Any) -> Worker:
    return Worker(app, queues, worker_id=kw.pop("worker_id", "4242:w1"), **kw)


def strict_ints(raw: str | bytes) -> Any:
    def no_float(text: str) -> float:
        raise AssertionError(f"float {text!r} in {raw!r}")

    return json.loads(raw, parse_float=no_float)


def run_cli(*args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jobbridge.dev.autumn_emulator", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=scaled(timeout),
        check=False,
    )


# -- derived values ---------------------------------------------------------------------------


def test_canonical_json_is_serde_json() -> None:
    value = {"b": 1, "a": {"d": [1, 2.5, None, True], "c": "é\n/"}}
    assert canonical_json(value) == '{"a":{"c":"é\\n/","d":[1,2.5,null,true]},"b":1}'
    floats = {
        1e20: "1e20",
        1.0: "1.0",
        0.1: "0.1",
        1e-7: "1e-7",
        1e15: "1000000000000000.0",
        1e16: "1e16",
        0.00001: "0.00001",
        1.2345e-6: "1.2345e-6",
        -2.5e30: "-2.5e30",
        123456789.125: "123456789.125",
        -0.0: "-0.0",
    }
    for number, text in floats.items():
        assert canonical_json(number) == text, number


def test_fnv_and_unique_keys() -> None:
    assert fnv1a64_hex(b"") == "cbf29ce484222325"
    assert fnv1a64_hex(b"a") == "af63dc4c8601ec8c"
    assert fnv1a64_hex(b"foobar") == "85944171f73967e8"
    payload = {"b": 2, "a": 1}
    assert unique_key_for(payload, None) == "args:" + fnv1a64_hex(b'{"a":1,"b":2}')
    assert unique_key_for(payload, []) == unique_key_for({"a": 1, "b": 2}, None)
    assert unique_key_for({"u": 1, "t": "x"}, ["u", "t", "u", "z"]) == 't="x"\x1fu=1\x1fz=null'


def test_queue_keys() -> None:
    assert queue_key(P, "default") == f"{P}:queue"
    assert queue_key(P, "") == f"{P}:queue"
    assert queue_key(P, "  ") == f"{P}:queue"
    assert queue_key(P, " critical ") == f"{P}:queue:critical"


# -- enqueue ----------------------------------------------------------------------------------


def test_enqueue_immediate_writes_serde_record(
    autumn_emulator: Autumn, client: redis.Redis
) -> None:
    job_id = autumn_emulator.enqueue("noop", {"b": [1.5, "x/y"], "a": 1}, job_id="job-1")
    assert job_id == "job-1"
    assert autumn_emulator.record_raw("job-1") == (
        '{"id":"job-1","name":"noop","queue":"default","payload":{"a":1,"b":[1.5,"x/y"]},'
        '"attempt":1,"max_attempts":5,"initial_backoff_ms":250,"enqueued_at_ms":1700000000000,'
        '"started_at_ms":null,"finished_at_ms":null,"claimed_by":null,"claimed_at_ms":null,'
        '"last_error":null}'
    )
    assert autumn_emulator.queue_ids() == ["job-1"]
    assert client.exists(f"{P}:queue:default") == 0

    other = autumn_emulator.enqueue(
        "noop",
        {"acct": "a-1"},
        queue=" critical ",
        unique="pending",
        concurrency_limit=2,
        concurrency_scope_field="acct",
        max_attempts=3,
        initial_backoff_ms=10,
    )
    assert other is not None
    rec = autumn_emulator.record(other)
    assert rec is not None
    assert list(rec)[-4:] == ["unique_key", "unique_window", "concurrency_key", "concurrency_limit"]
    assert rec["queue"] == "critical"
    assert rec["concurrency_key"] == '"a-1"'
    assert (rec["max_attempts"], rec["initial_backoff_ms"]) == (3, 10)
    assert autumn_emulator.queue_ids("critical") == [other]


def test_enqueue_delayed(autumn_emulator: Autumn, client: redis.Redis) -> None:
    job_id = autumn_emulator.enqueue("noop", None, delay_ms=5000)
    assert job_id is not None
    assert autumn_emulator.delayed_entries() == [(job_id, T0 + 5000)]
    assert autumn_emulator.queue_ids() == []
    assert autumn_emulator.record(job_id)["enqueued_at_ms"] == T0  # type: ignore[index]
    # A due time that is not strictly in the future is immediate.
    now_id = autumn_emulator.enqueue("noop", None, delay_ms=0)
    assert autumn_emulator.queue_ids() == [now_id]
    # Delayed non-ttl unique lock: due - now + 86_400_000.
    uid = autumn_emulator.enqueue("noop", {"k": 1}, delay_ms=3_600_000, unique="running")
    lock = f"{P}:unique:noop:" + unique_key_for({"k": 1}, None)
    assert client.get(lock) == uid.encode()  # type: ignore[union-attr]
    assert 86_400_000 + 3_600_000 - 5000 < client.pttl(lock) <= 86_400_000 + 3_600_000


def test_unique_windows_coalesce(autumn_emulator: Autumn, client: redis.Redis) -> None:
    w = worker(autumn_emulator)
    lock = f"{P}:unique:noop:" + unique_key_for({"k": 1}, None)
    # running: held while pending and running, released on success.
    first = autumn_emulator.enqueue("noop", {"k": 1}, unique="running")
    assert first is not None
    assert autumn_emulator.enqueue("noop", {"k": 1}, unique="running") is None
    assert autumn_emulator.queue_ids() == [first]
    assert client.get(lock) == first.encode()
    assert client.pttl(lock) > 86_000_000
    rec = w.claim()
    assert rec is not None
    assert autumn_emulator.enqueue("noop", {"k": 1}, unique="running") is None
    w.execute(rec)
    assert client.exists(lock) == 0
    # pending: released at claim, so a duplicate may be enqueued while it runs.
    pend = autumn_emulator.enqueue("noop", {"k": 1}, unique="pending")
    rec = w.claim()
    assert rec is not None and rec["id"] == pend
    assert client.exists(lock) == 0
    assert autumn_emulator.enqueue("noop", {"k": 1}, unique="pending") is not None
    client.delete(lock, autumn_emulator.queue_key("default"))
    # ttl: the lock outlives the job.
    ttl_id = autumn_emulator.enqueue("noop", {"k": 1}, unique="ttl", unique_ttl_ms=60_000)
    assert 0 < client.pttl(lock) <= 60_000
    rec = w.claim()
    assert rec is not None and rec["id"] == ttl_id
    w.execute(rec)
    assert client.get(lock) == ttl_id.encode()  # type: ignore[union-attr]
    assert autumn_emulator.enqueue("noop", {"k": 1}, unique="ttl", unique_ttl_ms=60_000) is None
    # unique_by: only the named fields count.
    by = autumn_emulator.enqueue("noop", {"acct": "a", "n": 1}, unique_by=["acct"])
    assert by is not None
    assert autumn_emulator.enqueue("noop", {"acct": "a", "n": 2}, unique_by=["acct"]) is None
    assert client.get(f'{P}:unique:noop:acct="a"') == by.encode()


def test_pending_retry_dropped_when_lock_taken(
    autumn_emulator: Autumn, client: redis.Redis
) -> None:
    w = worker(autumn_emulator)
    first = autumn_emulator.enqueue("always_fail", {"k": 1}, unique="pending")
    rec = w.claim()
    assert rec is not None
    second = autumn_emulator.enqueue("always_fail", {"k": 1}, unique="pending")
    assert second is not None
    assert w.settle(rec, "failure", "boom") == 2
    assert autumn_emulator.record(first) is None  # type: ignore[arg-type]
    assert autumn_emulator.delayed_entries() == []
    assert autumn_emulator.processing_entries() == []
    assert client.get(f"{P}:unique:always_fail:" + unique_key_for({"k": 1}, None)) == (
        second.encode()
    )


# -- claim ------------------------------------------------------------------------------------


def test_claim_fifo_priority_and_scan_limit(
    autumn_emulator: Autumn, client: redis.Redis, clock: Clock
) -> None:
    ids = [autumn_emulator.enqueue("noop", {"n": n}) for n in range(3)]
    low = autumn_emulator.enqueue("noop", None, queue="low")
    crit = autumn_emulator.enqueue("noop", None, queue="critical")
    w = worker(autumn_emulator, ["critical", "default", "low"])
    order = []
    while (rec := w.claim()) is not None:
        order.append(rec["id"])
    assert order == [crit, *ids, low]

    # Up to 8 RPOPs per queue; ids without a record are dropped silently.
    client.delete(autumn_emulator.processing_key)
    client.lpush(autumn_emulator.queue_key("critical"), *[f"ghost-{n}" for n in range(9)])
    real = autumn_emulator.enqueue("noop", None)
    rec = w.claim()
    assert rec is not None and rec["id"] == real
    assert autumn_emulator.queue_ids("critical") == ["ghost-8"]
    rec = w.claim()
    assert rec is None
    assert autumn_emulator.queue_ids("critical") == []


def test_claim_sets_claim_fields_and_keeps_integers(autumn_emulator: Autumn, clock: Clock) -> None:
    job_id = autumn_emulator.enqueue("noop", {"n": 1, "big": 1_700_000_000_000, "s": "a/b"})
    w = worker(autumn_emulator)
    rec = w.claim()
    assert rec is not None
    raw = autumn_emulator.record_raw(job_id)  # type: ignore[arg-type]
    assert raw is not None and "\\/" in raw  # cjson re-encoded it
    stored = strict_ints(raw)
    assert stored["claimed_by"] == "4242:w1"
    assert stored["claimed_at_ms"] == stored["started_at_ms"] == T0
    assert "finished_at_ms" not in stored
    assert stored["last_error"] is None
    for field in ("attempt", "max_attempts", "initial_backoff_ms", "enqueued_at_ms"):
        assert type(stored[field]) is int, field
    assert stored["payload"]["big"] == 1_700_000_000_000
    assert autumn_emulator.processing_entries() == [(job_id, T0 + 30_000)]


def test_claim_reencodes_like_cjson(autumn_emulator: Autumn) -> None:
    """The claim rewrite is cjson's, quirks included (docs/autumn.md §5.5)."""
    job_id = autumn_emulator.enqueue("noop", {"huge": 123456789012345, "empty": [], "url": "a/b"})
    assert worker(autumn_emulator).claim() is not None
    raw = autumn_emulator.record_raw(job_id)  # type: ignore[arg-type]
    assert raw is not None
    payload = json.loads(raw)["payload"]
    assert isinstance(payload["huge"], float) and "e+14" in raw
    assert payload["empty"] == {}
    assert '"a\\/b"' in raw and payload["url"] == "a/b"


def test_integers_survive_with_the_real_clock(client: redis.Redis) -> None:
    app = Autumn(client, initial_backoff_ms=1000)
    w = worker(app)
    job_id = app.enqueue("always_fail", {"message": "x"})
    assert w.run_once()
    raw = app.record_raw(job_id)  # type: ignore[arg-type]
    assert raw is not None and "e+" not in raw and "." not in raw.replace(job_id, "")
    rec = strict_ints(raw)
    assert rec["attempt"] == 2
    for field in ("enqueued_at_ms", "started_at_ms", "finished_at_ms"):
        assert type(rec[field]) is int and rec[field] > 1_600_000_000_000
    client.zadd(app.delayed_key, {job_id: 0})
    w.promote_delayed()
    claimed = w.claim()
    assert claimed is not None
    stored = strict_ints(app.record_raw(job_id))  # type: ignore[arg-type]
    assert type(stored["claimed_at_ms"]) is int and stored["claimed_at_ms"] > 1_600_000_000_000


# -- settle -----------------------------------------------------------------------------------


def test_success_goes_to_completed_and_trims(autumn_emulator: Autumn, client: redis.Redis) -> None:
    client.lpush(
        autumn_emulator.completed_key, *[json.dumps({"id": f"old-{n}"}) for n in range(1000)]
    )
    job_id = autumn_emulator.enqueue("noop", {"x": 1})
    w = worker(autumn_emulator, ran_key="ran")
    assert w.run_once()
    assert client.llen(autumn_emulator.completed_key) == 1000
    head = autumn_emulator.completed_raw()[0]
    entry = strict_ints(head)
    assert entry["id"] == job_id
    assert list(entry) == SERDE_FIELD_ORDER
    assert entry["finished_at_ms"] == entry["started_at_ms"] == T0
    assert entry["claimed_by"] is None and entry["last_error"] is None
    assert json.loads(autumn_emulator.completed_raw()[-1])["id"] == "old-1"
    assert autumn_emulator.record(job_id) is None  # type: ignore[arg-type]
    assert autumn_emulator.processing_entries() == []
    assert client.lrange("ran", 0, -1) == [job_id.encode()]  # type: ignore[union-attr]


def test_retry_with_exponential_backoff_then_dead(autumn_emulator: Autumn, clock: Clock) -> None:
    job_id = autumn_emulator.enqueue("always_fail", {"message": "nope"}, max_attempts=3)
    assert job_id is not None
    w = worker(autumn_emulator)
    assert w.run_once()
    assert autumn_emulator.delayed_entries() == [(job_id, T0 + 250)]
    rec = autumn_emulator.record(job_id)
    assert rec is not None
    assert (rec["attempt"], rec["last_error"], rec["finished_at_ms"]) == (2, "nope", T0)
    assert rec["started_at_ms"] == T0 and rec["claimed_by"] is None and rec["claimed_at_ms"] is None

    clock.advance(250)
    assert w.run_once()  # promote, claim attempt 2, fail
    assert autumn_emulator.delayed_entries() == [(job_id, clock.now + 500)]
    assert autumn_emulator.record(job_id)["attempt"] == 3  # type: ignore[index]

    clock.advance(500)
    assert w.run_once()
    assert autumn_emulator.delayed_entries() == []
    assert autumn_emulator.record(job_id) is None
    dead = autumn_emulator.dead_raw()
    assert len(dead) == 1
    entry = strict_ints(dead[0])
    assert (entry["attempt"], entry["max_attempts"], entry["last_error"]) == (3, 3, "nope")
    assert entry["finished_at_ms"] == clock.now
    assert autumn_emulator.dead_record_raw(job_id) == dead[0]


def test_fail_times_handler_recovers(autumn_emulator: Autumn, clock: Clock) -> None:
    job_id = autumn_emulator.enqueue("fail_times", {"fail_times": 1}, initial_backoff_ms=10)
    w = worker(autumn_emulator)
    assert w.run_once()
    assert autumn_emulator.record(job_id)["last_error"] == "failing on purpose (attempt 1)"  # type: ignore[index]
    clock.advance(10)
    assert w.run_once()
    [entry] = autumn_emulator.completed_entries()
    assert (entry["id"], entry["attempt"], entry["last_error"]) == (job_id, 2, None)


def test_dead_trim_deletes_dead_records(autumn_emulator: Autumn, client: redis.Redis) -> None:
    pipe = client.pipeline(transaction=False)
    for n in range(1000):
        entry = json.dumps({"id": f"old-{n}"})
        pipe.lpush(autumn_emulator.dead_key, entry)
        pipe.set(autumn_emulator.dead_record_key(f"old-{n}"), entry)
    pipe.execute()
    job_id = autumn_emulator.enqueue("always_fail", {}, max_attempts=1)
    assert worker(autumn_emulator).run_once()
    assert client.llen(autumn_emulator.dead_key) == 1000
    assert client.exists(autumn_emulator.dead_record_key("old-0")) == 0
    assert client.exists(autumn_emulator.dead_record_key("old-1")) == 1
    head = autumn_emulator.dead_raw()[0]
    assert json.loads(head)["id"] == job_id
    assert autumn_emulator.dead_record_raw(job_id) == head  # byte-identical
    assert json.loads(head)["last_error"] == "boom"


def test_panic_unknown_name_and_attempt_zero(autumn_emulator: Autumn, client: redis.Redis) -> None:
    w = worker(autumn_emulator, ran_key="ran")
    panic_id = autumn_emulator.enqueue("panic", {"message": "kaboom"}, max_attempts=5)
    unknown_id = autumn_emulator.enqueue("no_such_job", {})
    zero_id = autumn_emulator.enqueue("noop", {})
    rec = autumn_emulator.record(zero_id)  # type: ignore[arg-type]
    client.set(autumn_emulator.record_key(zero_id), autumn_emulator.encode({**rec, "attempt": 0}))  # type: ignore[arg-type]
    for _ in range(3):
        assert w.run_once()
    dead = {e["id"]: e for e in autumn_emulator.dead_entries()}
    assert dead[panic_id]["last_error"] == "job handler panicked: kaboom"
    assert dead[panic_id]["attempt"] == 1
    assert dead[panic_id]["finished_at_ms"] == T0
    assert dead[unknown_id]["last_error"] == "unknown job type"
    assert dead[zero_id]["last_error"] == "invalid job payload: attempt must be >= 1"
    for job in (unknown_id, zero_id):
        assert dead[job]["finished_at_ms"] is None
        assert dead[job]["claimed_by"] is None and dead[job]["started_at_ms"] == T0
        assert autumn_emulator.dead_record_raw(job) is not None  # type: ignore[arg-type]
    assert client.lrange("ran", 0, -1) == [panic_id.encode()]  # type: ignore[union-attr]


def test_zero_max_attempts_is_resolved_and_persisted(autumn_emulator: Autumn) -> None:
    job_id = autumn_emulator.enqueue("always_fail", {}, max_attempts=0)
    assert autumn_emulator.record(job_id)["max_attempts"] == 0  # type: ignore[arg-type,index]
    assert worker(autumn_emulator).run_once()
    assert autumn_emulator.record(job_id)["max_attempts"] == 5  # type: ignore[arg-type,index]


def test_settle_identity_check(autumn_emulator: Autumn, client: redis.Redis) -> None:
    job_id = autumn_emulator.enqueue("noop", {})
    w = worker(autumn_emulator)
    rec = w.claim()
    assert rec is not None
    stored = json.loads(autumn_emulator.record_raw(job_id))  # type: ignore[arg-type]
    stored["claimed_at_ms"] += 1
    client.set(autumn_emulator.record_key(job_id), json.dumps(stored))  # type: ignore[arg-type]
    assert w.settle(rec, "success") == 0
    assert autumn_emulator.completed_raw() == []
    assert [m for m, _ in autumn_emulator.processing_entries()] == [job_id]
    stored["claimed_at_ms"] -= 1
    stored["claimed_by"] = "someone-else"
    client.set(autumn_emulator.record_key(job_id), json.dumps(stored))  # type: ignore[arg-type]
    assert w.settle(rec, "failure", "x") == 0
    assert autumn_emulator.delayed_entries() == []


# -- stale recovery ---------------------------------------------------------------------------


def test_stale_recovery_requeues(
    autumn_emulator: Autumn, client: redis.Redis, clock: Clock
) -> None:
    job_id = autumn_emulator.enqueue(
        "noop", {"acct": "a"}, unique="running", concurrency_limit=1, concurrency_scope_field="acct"
    )
    assert job_id is not None
    rec = worker(autumn_emulator, worker_id="1:dead-worker").claim()
    assert rec is not None
    counter = f'{P}:concurrency:noop:"a"'
    assert client.get(counter) == b"1"
    rescuer = worker(autumn_emulator, worker_id="2:rescuer")
    clock.advance(29_999)
    assert rescuer.recover_stale() == 0
    clock.advance(1)
    assert rescuer.recover_stale() == 1
    stored = strict_ints(autumn_emulator.record_raw(job_id))
    assert stored["attempt"] == 2
    assert stored["last_error"] == f"visibility timeout expired for claim by 1:dead-worker at {T0}"
    assert stored["finished_at_ms"] == clock.now
    assert stored["claimed_by"] is None and stored["claimed_at_ms"] is None
    assert autumn_emulator.queue_ids() == [job_id]
    assert autumn_emulator.processing_entries() == []
    assert client.exists(counter) == 0
    lock = f"{P}:unique:noop:" + unique_key_for({"acct": "a"}, None)
    assert client.get(lock) == job_id.encode()


def test_stale_recovery_dead_when_no_attempts_left(
    autumn_emulator: Autumn, client: redis.Redis, clock: Clock
) -> None:
    job_id = autumn_emulator.enqueue("noop", {"k": 2}, max_attempts=1, unique="running")
    assert job_id is not None
    assert worker(autumn_emulator, worker_id="1:gone").claim() is not None
    clock.advance(30_000)
    assert worker(autumn_emulator, worker_id="2:rescuer").recover_stale() == 1
    [entry] = autumn_emulator.dead_entries()
    assert entry["id"] == job_id and entry["attempt"] == 1
    assert entry["last_error"] == f"visibility timeout expired for claim by 1:gone at {T0}"
    assert autumn_emulator.dead_record_raw(job_id) == autumn_emulator.dead_raw()[0]
    assert autumn_emulator.record(job_id) is None
    assert client.exists(f"{P}:unique:noop:" + unique_key_for({"k": 2}, None)) == 0


def test_stale_recovery_edge_cases(
    autumn_emulator: Autumn, client: redis.Redis, clock: Clock
) -> None:
    short = Autumn(client, visibility_timeout_ms=1000, clock=clock)
    # The recovering worker's own visibility decides, not the processing score.
    job_id = autumn_emulator.enqueue("noop", {})
    assert worker(short, worker_id="1:short").claim() is not None
    clock.advance(1000)
    assert worker(autumn_emulator, worker_id="2:long").recover_stale() == 0
    assert [m for m, _ in autumn_emulator.processing_entries()] == [job_id]
    # A missing record is only ZREMed; its concurrency slot stays taken.
    client.zrem(autumn_emulator.processing_key, job_id)
    limited = autumn_emulator.enqueue("noop", {}, concurrency_limit=1)
    assert worker(short, worker_id="1:short").claim() is not None
    client.delete(autumn_emulator.record_key(limited))  # type: ignore[arg-type]
    clock.advance(1000)
    assert worker(short, worker_id="3:r").recover_stale() == 0
    assert autumn_emulator.processing_entries() == []
    assert client.get(f"{P}:concurrency:noop:") == b"1"


# -- promotion --------------------------------------------------------------------------------


def test_delayed_promotion_is_atomic_and_rewrites(
    autumn_emulator: Autumn, client: redis.Redis, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = worker(autumn_emulator)
    job_id = autumn_emulator.enqueue(
        "always_fail", {"message": "first"}, queue="low", unique="running"
    )
    assert job_id is not None
    assert worker(autumn_emulator, ["low"]).run_once()  # attempt 1 fails -> delayed at +250
    later = autumn_emulator.enqueue("noop", {}, delay_ms=10_000)
    client.zadd(autumn_emulator.delayed_key, {"orphan": T0})  # no record: goes to the default queue
    clock.advance(250)

    sent: list[str] = []
    original = client.execute_command

    def spy(*args: Any, **kwargs: Any) -> Any:
        sent.append(str(args[0]).upper())
        return original(*args, **kwargs)

    monkeypatch.setattr(client, "execute_command", spy)
    assert w.promote_delayed() == 2
    monkeypatch.undo()
    # Two reads, then every write in one script that re-checks them: no SET a claim could
    # interleave with, unlike Autumn's own MGET/SET after its script.
    assert sent[:2] == ["ZRANGEBYSCORE", "MGET"]
    assert set(sent[2:]) <= {"EVALSHA", "EVAL", "SCRIPT LOAD"}
    assert sent.count("EVALSHA") + sent.count("EVAL") in (1, 2)

    assert autumn_emulator.delayed_entries() == [(later, T0 + 10_000)]
    assert autumn_emulator.queue_ids("low") == [job_id]
    assert autumn_emulator.queue_ids() == ["orphan"]
    raw = autumn_emulator.record_raw(job_id)
    rec = strict_ints(raw)
    assert list(rec)[:13] == SERDE_FIELD_ORDER
    assert list(rec)[13:] == ["unique_key", "unique_window"]
    assert rec["enqueued_at_ms"] == clock.now
    assert [rec[f] for f in ("started_at_ms", "finished_at_ms", "claimed_by", "claimed_at_ms")] == [
        None
    ] * 4
    assert (rec["attempt"], rec["last_error"]) == (2, "first")
    # The next claim keeps last_error.
    claimed = worker(autumn_emulator, ["low"]).claim()
    assert claimed is not None and claimed["last_error"] == "first"


def test_delayed_promotion_writes_serde_bytes(autumn_emulator: Autumn, clock: Clock) -> None:
    payload = {"tags": [], "url": "a/b", "big": 12345678901234567, "f": 1e20, "s": "é"}
    job_id = autumn_emulator.enqueue("noop", payload, delay_ms=10)
    assert job_id is not None
    clock.advance(10)
    assert worker(autumn_emulator).promote_delayed() == 1
    raw = autumn_emulator.record_raw(job_id)
    assert raw is not None
    # What serde writes, byte for byte (a Value's keys sorted): no cjson "{}" for [], "\\/"
    # or 1.2345678901235e+16.
    assert '"payload":{"big":12345678901234567,"f":1e20,"s":"é","tags":[],"url":"a/b"},' in raw


def test_blocked_parking_and_promotion(
    autumn_emulator: Autumn, client: redis.Redis, clock: Clock
) -> None:
    def job(acct: str) -> str:
        job_id = autumn_emulator.enqueue(
            "sync", {"acct": acct}, concurrency_limit=1, concurrency_scope_field="acct"
        )
        assert job_id is not None
        return job_id

    a1, a2, b1 = job("acct-1"), job("acct-1"), job("acct-2")
    w = worker(autumn_emulator, handlers={"sync": lambda r: None})
    counter1 = f'{P}:concurrency:sync:"acct-1"'
    counter2 = f'{P}:concurrency:sync:"acct-2"'
    first = w.claim()
    assert first is not None and first["id"] == a1
    assert client.get(counter1) == b"1"
    second = w.claim()  # a2 is parked, b1 claimed in the same scan
    assert second is not None and second["id"] == b1
    assert autumn_emulator.blocked_entries() == [(a2, T0 + 100)]
    assert client.get(counter2) == b"1"
    assert autumn_emulator.record(a2)["claimed_by"] is None  # type: ignore[index]

    w.execute(first)
    assert client.exists(counter1) == 0
    clock.advance(99)
    assert w.promote_blocked() == 0
    clock.advance(1)
    assert w.promote_blocked() == 1
    assert autumn_emulator.blocked_entries() == []
    assert autumn_emulator.queue_ids() == [a2]
    third = w.claim()
    assert third is not None and third["id"] == a2
    assert client.get(counter1) == b"1"
    # Limit 2 counts up and back down; the counter is deleted at <= 1.
    w.execute(third)
    w.execute(second)
    assert client.exists(counter1) == 0 and client.exists(counter2) == 0
    for _ in range(2):
        autumn_emulator.enqueue("sync", {}, concurrency_limit=2)
    assert w.claim() is not None and w.claim() is not None
    assert client.get(f"{P}:concurrency:sync:") == b"2"


# -- malformed records ------------------------------------------------------------------------


def test_malformed_record_at_claim(autumn_emulator: Autumn, client: redis.Redis) -> None:
    client.set(autumn_emulator.record_key("bad-json"), "{not json")
    client.lpush(autumn_emulator.queue_key("default"), "bad-json")
    bad_type = autumn_emulator.enqueue("noop", {})
    rec = autumn_emulator.record(bad_type)  # type: ignore[arg-type]
    client.set(autumn_emulator.record_key(bad_type), json.dumps({**rec, "attempt": -1}))  # type: ignore[arg-type]
    good = autumn_emulator.enqueue("noop", {})
    w = worker(autumn_emulator)
    claimed = w.claim()
    assert claimed is not None and claimed["id"] == good
    dead = autumn_emulator.dead_raw()
    assert len(dead) == 2
    entries = [json.loads(d) for d in reversed(dead)]
    for entry in entries:
        assert list(entry) == ["id", "error", "raw_payload"]
    assert entries[0]["id"] == "bad-json"
    assert entries[0]["raw_payload"] == "{not json"
    assert entries[1]["id"] == bad_type
    assert "expected u32" in entries[1]["error"]
    assert json.loads(entries[1]["raw_payload"])["claimed_by"] == "4242:w1"
    # Orphaned: the record stays, no dead-record key, not in processing.
    assert client.get(autumn_emulator.record_key("bad-json")) == b"{not json"
    assert autumn_emulator.record(bad_type)["claimed_by"] == "4242:w1"  # type: ignore[arg-type,index]
    assert (
        client.exists(
            autumn_emulator.dead_record_key("bad-json"), autumn_emulator.dead_record_key(bad_type)
        )
        == 0
    )
    assert [m for m, _ in autumn_emulator.processing_entries()] == [good]


def test_decode_record_refuses_what_serde_refuses() -> None:
    good = json.dumps(
        {
            "id": "j",
            "name": "noop",
            "payload": {},
            "attempt": 1,
            "max_attempts": 1,
            "initial_backoff_ms": 0,
        }
    )
    assert decode_record(good) == (json.loads(good), None)
    nan = good.replace('"payload": {}', '"payload": NaN')
    twice = good[:-1] + ', "attempt": 2, "other": 1, "other": 2}'
    assert decode_record(nan)[0] is None
    assert decode_record(twice) == (None, "duplicate field `attempt`")
    assert (
        decode_record(good.replace("noop", "no\udcffop").encode("utf-8", "surrogatepass"))[0]
        is None
    )
    assert decode_record(good.encode().replace(b"noop", b"no\xffop"))[0] is None


# -- the worker loop and the command line -----------------------------------------------------


def test_run_until_idle_in_process(client: redis.Redis) -> None:
    app = Autumn(client, initial_backoff_ms=20)
    ids = [app.enqueue("noop", {"n": n}) for n in range(5)]
    retry = app.enqueue("fail_times", {"fail_times": 1})
    w = worker(app, ran_key="ran")
    started = time.monotonic()
    assert w.run(until_idle=True, max_seconds=10) == 7
    assert time.monotonic() - started < 5
    ran = [r.decode() for r in client.lrange("ran", 0, -1)]
    assert sorted(ran) == sorted([*ids, retry, retry])  # type: ignore[type-var]


@pytest.mark.slow
def test_cli_worker_drains_until_idle(client: redis.Redis, redis_url: str) -> None:
    prefix = "myapp:jobs"
    app = Autumn(client, prefix, initial_backoff_ms=20)
    noop = [
        app.enqueue("noop", {"n": n}, queue="critical" if n % 2 else "default") for n in range(30)
    ]
    flaky = app.enqueue("fail_times", {"fail_times": 2})
    doomed = app.enqueue("always_fail", {"message": "nope"}, max_attempts=2)
    proc = run_cli(
        "worker",
        "--redis",
        redis_url,
        "--prefix",
        prefix,
        "--queues",
        "critical,default",
        "--initial-backoff-ms",
        "20",
        "--until-idle",
        "--max-seconds",
        "15",
        "--ran-key",
        "ran",
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1])["processed"] == 35
    ran = [r.decode() for r in client.lrange("ran", 0, -1)]
    for job_id in noop:
        assert ran.count(job_id) == 1  # type: ignore[arg-type]
    assert ran.count(flaky) == 3 and ran.count(doomed) == 2  # type: ignore[arg-type]
    assert len(app.completed_raw()) == 31
    assert [e["id"] for e in app.dead_entries()] == [doomed]
    assert app.processing_entries() == [] and app.delayed_entries() == []
    assert app.queue_ids("critical") == [] and app.queue_ids() == []


@pytest.mark.slow
def test_cli_worker_stops_on_sigterm(client: redis.Redis, redis_url: str) -> None:
    app = Autumn(client)
    job_id = app.enqueue("noop", {})
    proc = subprocess.Popen(
        [sys.executable, "-m", "jobbridge.dev.autumn_emulator", "worker", "--redis", redis_url],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + scaled(10)
        while not app.completed_raw() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert json.loads(app.completed_raw()[0])["id"] == job_id
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=scaled(5))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert json.loads(out.strip().splitlines()[-1])["processed"] == 1


@pytest.mark.slow
def test_seed_fills_every_list(client: redis.Redis, redis_url: str) -> None:
    proc = run_cli("seed", "--redis", redis_url)
    assert proc.returncode == 0, proc.stderr
    app = Autumn(client)
    started = time.monotonic()
    counts = seed(client)  # idempotent-ish: a re-seed resets and rewrites the same shape
    assert time.monotonic() - started < 3
    assert counts == {k: v for k, v in json.loads(proc.stdout).items() if k in counts}
    for name, count in counts.items():
        assert count > 0, name
    dead = app.dead_entries()
    assert any(e.get("last_error") == "<script>alert(1)</script>" for e in dead)
    assert any("<img src=x onerror=alert(1)>" in json.dumps(e.get("payload")) for e in dead)
    assert any(list(e) == ["id", "error", "raw_payload"] for e in dead)
    for raw in app.dead_raw():
        entry = json.loads(raw)
        if "name" in entry:
            assert app.dead_record_raw(entry["id"]) == raw
    retrying = [app.record(m) for m, _ in app.delayed_entries()]
    assert any(r and r["attempt"] > 1 and r["last_error"] for r in retrying)
    assert any(r and r["attempt"] == 1 for r in retrying)
    locks = list(client.scan_iter(match=f"{P}:unique:*"))
    assert len(locks) == 1
    owner = client.get(locks[0]).decode()  # type: ignore[union-attr]
    assert owner in app.queue_ids()
    queued = [app.record(i) for q in ("critical", "default", "low") for i in app.queue_ids(q)]
    assert all(r is not None and "principal_id" in r["payload"] for r in queued)
    assert all("correlation_id" in r["payload"] for r in queued if r)  # type: ignore[operator]
    [(running, _)] = app.processing_entries()
    assert app.record(running)["claimed_by"]  # type: ignore[index]
