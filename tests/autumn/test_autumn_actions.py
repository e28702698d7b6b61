"""Every outcome of every Autumn action, and Autumn's worker carrying on after each."""

from __future__ import annotations

import json

import pytest
import redis
import redis.asyncio

from jobbridge.adapters.autumn.adapter import AutumnAdapter
from jobbridge.model import Action, JobStatus, Outcome
from tests.autumn.autumn_fixtures import (
    Autumn,
    Worker,
    drain,
    failing_job,
    history_record,
    push_dead,
    ran,
)

pytestmark = pytest.mark.redis

RAN = "test:ran"


@pytest.fixture
def adapter(redis_client: redis.asyncio.Redis) -> AutumnAdapter:
    return AutumnAdapter(redis_client, source="orders", queues=["default", "low"])


async def audit_outcomes(adapter: AutumnAdapter) -> list[tuple[str, str, str]]:
    return [(e.action, e.job_id, e.outcome) for e in await adapter.operator.audit(100)]


# ------------------------------------------------------------------ cancel


async def test_cancel_enqueued_job_never_runs(app, adapter) -> None:
    keep = app.enqueue("noop", {})
    gone = app.enqueue("noop", {})
    result = await adapter.cancel(gone, "alice")
    assert (result.outcome, result.action, result.job_id) == (Outcome.DONE, Action.CANCEL, gone)
    assert result.message == f"Canceled job {gone}."
    assert app.record(gone) is None
    assert app.queue_ids() == [keep]

    drain(app, ran_key=RAN)
    assert ran(app.client, RAN) == [keep]
    detail = await adapter.job(gone)
    assert detail is not None and detail.job.status is JobStatus.CANCELED
    assert detail.lifecycle[0].actor == "alice"
    assert detail.job.name == "noop"
    assert await audit_outcomes(adapter) == [("cancel", gone, "done")]
    entry = (await adapter.operator.audit(1))[0]
    assert entry.source == "orders" and entry.actor == "alice"


async def test_cancel_scheduled_job_never_runs(app, adapter) -> None:
    due = app.enqueue("noop", {}, delay_ms=50)
    assert (await adapter.cancel(due, "ops")).outcome is Outcome.DONE
    assert app.delayed_entries() == []
    Worker(app, ran_key=RAN).run(max_seconds=0.5)
    assert ran(app.client, RAN) == []


async def test_cancel_retrying_job(app, adapter) -> None:
    flaky = app.enqueue("fail_times", {"fail_times": 5}, initial_backoff_ms=60_000)
    worker = Worker(app)
    worker.execute(worker.claim())
    assert (await adapter.job(flaky)).job.status is JobStatus.RETRYING
    assert (await adapter.cancel(flaky, "ops")).outcome is Outcome.DONE
    assert app.delayed_entries() == [] and app.record(flaky) is None


async def test_cancel_blocked_job(app, adapter) -> None:
    slow = Autumn(app.client, visibility_timeout_ms=3_600_000)
    for n in range(2):
        app.enqueue(
            "noop", {"acct": "a", "n": n}, concurrency_limit=1, concurrency_scope_field="acct"
        )
    worker = Worker(slow)
    worker.claim()
    worker.claim()  # the sibling is parked in blocked
    ((parked, _),) = app.blocked_entries()
    assert (await adapter.job(parked)).job.status is JobStatus.BLOCKED
    assert (await adapter.cancel(parked, "ops")).outcome is Outcome.DONE
    assert app.blocked_entries() == []


async def test_cancel_running_job_is_refused(app, adapter) -> None:
    job = app.enqueue("noop", {})
    worker = Worker(app)
    record = worker.claim()
    result = await adapter.cancel(job, "ops")
    assert result.outcome is Outcome.WRONG_STATE
    assert "already running" in result.message
    assert app.record(job) is not None
    # The worker still settles its claim normally.
    worker.execute(record)
    assert app.completed_entries()[0]["id"] == job
    assert await audit_outcomes(adapter) == [("cancel", job, "wrong_state")]


async def test_cancel_unknown_job_is_not_found(adapter) -> None:
    result = await adapter.cancel("missing", "ops")
    assert result.outcome is Outcome.NOT_FOUND
    assert await audit_outcomes(adapter) == [("cancel", "missing", "not_found")]


async def test_cancel_twice_says_already_canceled(app, adapter) -> None:
    job = app.enqueue("noop", {})
    await adapter.cancel(job, "alice")
    again = await adapter.cancel(job, "bob")
    assert again.outcome is Outcome.WRONG_STATE
    assert "already canceled by alice" in again.message


async def test_cancel_releases_a_unique_lock_it_owns(app, adapter) -> None:
    first = app.enqueue("noop", {"k": 1}, unique="pending")
    assert app.enqueue("noop", {"k": 1}, unique="pending") is None  # coalesced
    assert (await adapter.cancel(first, "ops")).outcome is Outcome.DONE
    second = app.enqueue("noop", {"k": 1}, unique="pending")
    assert second is not None
    lock = app.unique_lock_key("noop", app.record(second)["unique_key"])
    assert app.client.get(lock).decode() == second


async def test_cancel_leaves_a_lock_owned_by_another_job(app, adapter) -> None:
    job = app.enqueue("noop", {"k": 2}, unique="running")
    lock = app.unique_lock_key("noop", app.record(job)["unique_key"])
    app.client.set(lock, "someone-else")
    assert (await adapter.cancel(job, "ops")).outcome is Outcome.DONE
    assert app.client.get(lock) == b"someone-else"


async def test_cancel_of_completed_job_is_wrong_state_or_not_found(app, adapter) -> None:
    job = app.enqueue("noop", {})
    drain(app)
    assert (await adapter.cancel(job, "ops")).outcome is Outcome.NOT_FOUND


# ------------------------------------------------------------------ retry


async def test_retry_enqueues_a_new_job_that_runs_and_completes(app, adapter) -> None:
    old = failing_job(app, "flaky", payload={"principal_id": "u-1", "urls": ["a/b"]})
    dead = json.loads(app.dead_record_raw(old))
    result = await adapter.retry(old, "alice")
    assert result.outcome is Outcome.DONE and result.new_id and result.new_id != old
    assert result.message == f"Retried job {old} as {result.new_id}."
    assert app.dead_raw() == [] and app.dead_record_raw(old) is None

    record = app.record(result.new_id)
    assert record["id"] == result.new_id and record["attempt"] == 1
    assert isinstance(record["enqueued_at_ms"], int)
    for gone in ("started_at_ms", "finished_at_ms", "claimed_by", "claimed_at_ms", "last_error"):
        assert gone not in record
    assert record["payload"] == dead["payload"]
    assert list(record) == [k for k in dead if k in record]  # field order kept
    assert app.queue_ids() == [result.new_id]

    # Autumn's worker runs the new job (the handler succeeds this time) and completes it.
    drain(app, handlers={"flaky": lambda record: None}, ran_key=RAN)
    assert ran(app.client, RAN) == [result.new_id]
    assert app.completed_entries()[0]["id"] == result.new_id

    old_detail = await adapter.job(old)
    assert old_detail.job.status is JobStatus.RETRIED
    assert old_detail.job.new_id == result.new_id
    assert old_detail.lifecycle[0].new_id == result.new_id
    assert await audit_outcomes(adapter) == [("retry", old, "done")]
    assert (await adapter.operator.audit(1))[0].new_id == result.new_id


async def test_retry_does_not_reencode_the_payload(app, adapter) -> None:
    # A record as serde writes it, holding what cjson would mangle ("/", [], big numbers).
    encoded = history_record(
        app,
        finished_ms=app.now_ms(),
        id="exact",
        name="noop",
        attempt=5,
        payload={"path": "a/b", "empty": [], "big": 123456789012345678},
        last_error="x",
    )
    push_dead(app, encoded)
    result = await adapter.retry("exact", "ops")
    raw = app.record_raw(result.new_id)
    assert '"path":"a/b"' in raw and '"empty":[]' in raw and "123456789012345678" in raw
    drain(app, ran_key=RAN)
    assert ran(app.client, RAN) == [result.new_id]


async def test_retry_twice_says_already_retried(app, adapter) -> None:
    old = failing_job(app)
    first = await adapter.retry(old, "alice")
    second = await adapter.retry(old, "bob")
    assert second.outcome is Outcome.WRONG_STATE
    assert f"already retried as {first.new_id} by alice" in second.message


async def test_retry_unknown_is_not_found(adapter) -> None:
    result = await adapter.retry("nope", "ops")
    assert result.outcome is Outcome.NOT_FOUND


async def test_retry_conflicts_with_a_held_unique_lock(app, adapter) -> None:
    old = failing_job(app, payload={"tenant": "acme"}, unique="pending")
    dead_before = app.dead_raw()
    holder = app.enqueue("always_fail", {"tenant": "acme"}, unique="pending")
    assert holder is not None
    result = await adapter.retry(old, "ops")
    assert result.outcome is Outcome.CONFLICT
    assert holder in result.message
    assert app.dead_raw() == dead_before  # nothing changed
    assert app.dead_record_raw(old) is not None
    assert app.queue_ids() == [holder]


async def test_retry_retakes_the_unique_lock_for_the_new_job(app, adapter) -> None:
    old = failing_job(app, payload={"tenant": "t"}, unique="running")
    result = await adapter.retry(old, "ops")
    lock = app.unique_lock_key("always_fail", app.record(result.new_id)["unique_key"])
    assert app.client.get(lock).decode() == result.new_id
    assert 0 < app.client.pttl(lock) <= 86_400_000
    # An equivalent enqueue is now coalesced, as Autumn would do.
    assert app.enqueue("always_fail", {"tenant": "t"}, unique="running") is None


async def test_retry_of_ttl_unique_job_takes_no_lock(app, adapter) -> None:
    old = failing_job(app, payload={"x": 1}, unique="ttl", unique_ttl_ms=1)
    result = await adapter.retry(old, "ops")
    assert result.outcome is Outcome.DONE
    lock = app.unique_lock_key("always_fail", app.record(result.new_id)["unique_key"])
    assert app.client.get(lock) is None


async def test_retry_of_corrupt_record_changes_nothing(app, adapter) -> None:
    bad = history_record(app, finished_ms=app.now_ms(), id="bad", attempt=1.5)
    push_dead(app, bad)
    result = await adapter.retry("bad", "ops")
    assert result.outcome is Outcome.CORRUPT
    assert app.dead_raw() == [bad] and app.dead_record_raw("bad") == bad
    assert await audit_outcomes(adapter) == [("retry", "bad", "corrupt")]


async def test_retry_of_malformed_dead_entry_is_corrupt(app, adapter) -> None:
    entry = json.dumps({"id": "m1", "error": "invalid", "raw_payload": "{"})
    app.client.lpush(app.dead_key, entry)
    assert (await adapter.retry("m1", "ops")).outcome is Outcome.CORRUPT
    assert app.dead_raw() == [entry]


async def test_retry_when_dead_list_lost_the_entry_is_wrong_state(app, adapter) -> None:
    old = failing_job(app)
    app.client.delete(app.dead_key)  # dead-record left behind, list entry gone
    result = await adapter.retry(old, "ops")
    assert result.outcome is Outcome.WRONG_STATE
    assert app.client.keys(app.record_prefix + "*") == []


async def test_retry_keeps_queue_and_limits(app, adapter) -> None:
    old = failing_job(
        app, queue="low", payload={"acct": "z"}, concurrency_limit=2, concurrency_scope_field="acct"
    )
    result = await adapter.retry(old, "ops")
    record = app.record(result.new_id)
    assert record["queue"] == "low" and record["concurrency_limit"] == 2
    assert app.queue_ids("low") == [result.new_id]


# ------------------------------------------------------------------ discard


async def test_discard_removes_failed_job_and_keeps_lifecycle(app, adapter) -> None:
    keep = failing_job(app)
    gone = failing_job(app)
    result = await adapter.discard(gone, "alice")
    assert result.outcome is Outcome.DONE and result.message == f"Discarded job {gone}."
    assert [json.loads(e)["id"] for e in app.dead_raw()] == [keep]
    assert app.dead_record_raw(gone) is None
    detail = await adapter.job(gone)
    assert detail.job.status is JobStatus.DISCARDED
    again = await adapter.discard(gone, "bob")
    assert again.outcome is Outcome.WRONG_STATE and "already discarded" in again.message


async def test_discard_malformed_entry(app, adapter) -> None:
    entry = json.dumps({"id": "m2", "error": "invalid", "raw_payload": "{"})
    app.client.lpush(app.dead_key, entry)
    assert (await adapter.discard("m2", "ops")).outcome is Outcome.DONE
    assert app.dead_raw() == []


async def test_discard_unknown_is_not_found_and_running_is_not_discardable(app, adapter) -> None:
    assert (await adapter.discard("nope", "ops")).outcome is Outcome.NOT_FOUND
    job = app.enqueue("noop", {})
    Worker(app).claim()
    assert (await adapter.discard(job, "ops")).outcome is Outcome.NOT_FOUND
    assert app.processing_entries()[0][0] == job


async def test_discard_with_dead_record_but_no_list_entry_is_wrong_state(app, adapter) -> None:
    old = failing_job(app)
    app.client.delete(app.dead_key)
    result = await adapter.discard(old, "ops")
    assert result.outcome is Outcome.WRONG_STATE
    assert app.dead_record_raw(old) is not None


async def test_lifecycle_keeps_no_copy_of_huge_records(app, adapter) -> None:
    job = app.enqueue("noop", {"blob": "x" * 50_000})
    assert (await adapter.cancel(job, "ops")).outcome is Outcome.DONE
    detail = await adapter.job(job)
    assert detail.job.status is JobStatus.CANCELED
    assert detail.job.problem is not None and "no copy" in detail.job.problem
    assert app.client.strlen(f"jobbridge:autumn:autumn:jobs:lifecycle:{job}") < 1000
    assert app.client.ttl(f"jobbridge:autumn:autumn:jobs:lifecycle:{job}") > 6 * 86_400
    recent = await adapter.lifecycle(10)
    assert [(e.job_id, e.status) for e in recent] == [(job, JobStatus.CANCELED)]
    assert (
        max(len(v) for v in app.client.lrange("jobbridge:autumn:autumn:jobs:lifecycle", 0, -1))
        < 1000
    )


# ------------------------------------------------------------------ audit


async def test_audit_is_bounded_and_newest_first(app, adapter) -> None:
    for n in range(5):
        await adapter.cancel(f"missing-{n}", "ops")
    entries = await adapter.operator.audit(3)
    assert [e.job_id for e in entries] == ["missing-4", "missing-3", "missing-2"]
    assert all(e.outcome == "not_found" and e.action == "cancel" for e in entries)


async def test_jobbridge_keys_stay_out_of_autumns_namespace(app, adapter) -> None:
    job = app.enqueue("noop", {})
    await adapter.cancel(job, "ops")
    keys = sorted(k.decode() for k in app.client.keys("*"))
    assert all(k.startswith("jobbridge:") for k in keys)
    assert "jobbridge:audit" in keys
