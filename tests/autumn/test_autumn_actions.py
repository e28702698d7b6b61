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


async def test_cancel_enqueued_job_never_runs(autumn_emulator, adapter) -> None:
    keep = autumn_emulator.enqueue("noop", {})
    gone = autumn_emulator.enqueue("noop", {})
    result = await adapter.cancel(gone, "alice")
    assert (result.outcome, result.action, result.job_id) == (Outcome.DONE, Action.CANCEL, gone)
    assert result.message == f"Canceled job {gone}."
    assert autumn_emulator.record(gone) is None
    assert autumn_emulator.queue_ids() == [keep]

    drain(autumn_emulator, ran_key=RAN)
    assert ran(autumn_emulator.client, RAN) == [keep]
    detail = await adapter.job(gone)
    assert detail is not None and detail.job.status is JobStatus.CANCELED
    assert detail.lifecycle[0].actor == "alice"
    assert detail.job.name == "noop"
    assert await audit_outcomes(adapter) == [("cancel", gone, "done")]
    entry = (await adapter.operator.audit(1))[0]
    assert entry.source == "orders" and entry.actor == "alice"


@pytest.mark.slow
async def test_cancel_scheduled_job_never_runs(autumn_emulator, adapter) -> None:
    due = autumn_emulator.enqueue("noop", {}, delay_ms=50)
    assert (await adapter.cancel(due, "ops")).outcome is Outcome.DONE
    assert autumn_emulator.delayed_entries() == []
    Worker(autumn_emulator, ran_key=RAN).run(max_seconds=0.5)
    assert ran(autumn_emulator.client, RAN) == []


async def test_cancel_retrying_job(autumn_emulator, adapter) -> None:
    flaky = autumn_emulator.enqueue("fail_times", {"fail_times": 5}, initial_backoff_ms=60_000)
    worker = Worker(autumn_emulator)
    worker.execute(worker.claim())
    assert (await adapter.job(flaky)).job.status is JobStatus.RETRYING
    assert (await adapter.cancel(flaky, "ops")).outcome is Outcome.DONE
    assert autumn_emulator.delayed_entries() == [] and autumn_emulator.record(flaky) is None


async def test_cancel_blocked_job(autumn_emulator, adapter) -> None:
    slow = Autumn(autumn_emulator.client, visibility_timeout_ms=3_600_000)
    for n in range(2):
        autumn_emulator.enqueue(
            "noop", {"acct": "a", "n": n}, concurrency_limit=1, concurrency_scope_field="acct"
        )
    worker = Worker(slow)
    worker.claim()
    worker.claim()  # the sibling is parked in blocked
    ((parked, _),) = autumn_emulator.blocked_entries()
    assert (await adapter.job(parked)).job.status is JobStatus.BLOCKED
    assert (await adapter.cancel(parked, "ops")).outcome is Outcome.DONE
    assert autumn_emulator.blocked_entries() == []


async def test_cancel_running_job_is_refused(autumn_emulator, adapter) -> None:
    job = autumn_emulator.enqueue("noop", {})
    worker = Worker(autumn_emulator)
    record = worker.claim()
    result = await adapter.cancel(job, "ops")
    assert result.outcome is Outcome.WRONG_STATE
    assert "already running" in result.message
    assert autumn_emulator.record(job) is not None
    # The worker still settles its claim normally.
    worker.execute(record)
    assert autumn_emulator.completed_entries()[0]["id"] == job
    assert await audit_outcomes(adapter) == [("cancel", job, "wrong_state")]


async def test_cancel_unknown_job_is_not_found(adapter) -> None:
    result = await adapter.cancel("missing", "ops")
    assert result.outcome is Outcome.NOT_FOUND
    assert await audit_outcomes(adapter) == [("cancel", "missing", "not_found")]


async def test_cancel_twice_says_already_canceled(autumn_emulator, adapter) -> None:
    job = autumn_emulator.enqueue("noop", {})
    await adapter.cancel(job, "alice")
    again = await adapter.cancel(job, "bob")
    assert again.outcome is Outcome.WRONG_STATE
    assert "already canceled by alice" in again.message


async def test_cancel_releases_a_unique_lock_it_owns(autumn_emulator, adapter) -> None:
    first = autumn_emulator.enqueue("noop", {"k": 1}, unique="pending")
    assert autumn_emulator.enqueue("noop", {"k": 1}, unique="pending") is None  # coalesced
    assert (await adapter.cancel(first, "ops")).outcome is Outcome.DONE
    second = autumn_emulator.enqueue("noop", {"k": 1}, unique="pending")
    assert second is not None
    lock = autumn_emulator.unique_lock_key("noop", autumn_emulator.record(second)["unique_key"])
    assert autumn_emulator.client.get(lock).decode() == second


async def test_cancel_leaves_a_lock_owned_by_another_job(autumn_emulator, adapter) -> None:
    job = autumn_emulator.enqueue("noop", {"k": 2}, unique="running")
    lock = autumn_emulator.unique_lock_key("noop", autumn_emulator.record(job)["unique_key"])
    autumn_emulator.client.set(lock, "someone-else")
    assert (await adapter.cancel(job, "ops")).outcome is Outcome.DONE
    assert autumn_emulator.client.get(lock) == b"someone-else"


async def test_cancel_of_completed_job_is_wrong_state_or_not_found(
    autumn_emulator, adapter
) -> None:
    job = autumn_emulator.enqueue("noop", {})
    drain(autumn_emulator)
    assert (await adapter.cancel(job, "ops")).outcome is Outcome.NOT_FOUND


# ------------------------------------------------------------------ retry


async def test_retry_enqueues_a_new_job_that_runs_and_completes(autumn_emulator, adapter) -> None:
    old = failing_job(autumn_emulator, "flaky", payload={"principal_id": "u-1", "urls": ["a/b"]})
    dead = json.loads(autumn_emulator.dead_record_raw(old))
    result = await adapter.retry(old, "alice")
    assert result.outcome is Outcome.DONE and result.new_id and result.new_id != old
    assert result.message == f"Retried job {old} as {result.new_id}."
    assert autumn_emulator.dead_raw() == [] and autumn_emulator.dead_record_raw(old) is None

    record = autumn_emulator.record(result.new_id)
    assert record["id"] == result.new_id and record["attempt"] == 1
    assert isinstance(record["enqueued_at_ms"], int)
    for gone in ("started_at_ms", "finished_at_ms", "claimed_by", "claimed_at_ms", "last_error"):
        assert gone not in record
    assert record["payload"] == dead["payload"]
    assert list(record) == [k for k in dead if k in record]  # field order kept
    assert autumn_emulator.queue_ids() == [result.new_id]

    # Autumn's worker runs the new job (the handler succeeds this time) and completes it.
    drain(autumn_emulator, handlers={"flaky": lambda record: None}, ran_key=RAN)
    assert ran(autumn_emulator.client, RAN) == [result.new_id]
    assert autumn_emulator.completed_entries()[0]["id"] == result.new_id

    old_detail = await adapter.job(old)
    assert old_detail.job.status is JobStatus.RETRIED
    assert old_detail.job.new_id == result.new_id
    assert old_detail.lifecycle[0].new_id == result.new_id
    assert await audit_outcomes(adapter) == [("retry", old, "done")]
    assert (await adapter.operator.audit(1))[0].new_id == result.new_id


async def test_retry_does_not_reencode_the_payload(autumn_emulator, adapter) -> None:
    # A record as serde writes it, holding what cjson would mangle ("/", [], big numbers).
    encoded = history_record(
        autumn_emulator,
        finished_ms=autumn_emulator.now_ms(),
        id="exact",
        name="noop",
        attempt=5,
        payload={"path": "a/b", "empty": [], "big": 123456789012345678},
        last_error="x",
    )
    push_dead(autumn_emulator, encoded)
    result = await adapter.retry("exact", "ops")
    raw = autumn_emulator.record_raw(result.new_id)
    assert '"path":"a/b"' in raw and '"empty":[]' in raw and "123456789012345678" in raw
    drain(autumn_emulator, ran_key=RAN)
    assert ran(autumn_emulator.client, RAN) == [result.new_id]


async def test_retry_twice_says_already_retried(autumn_emulator, adapter) -> None:
    old = failing_job(autumn_emulator)
    first = await adapter.retry(old, "alice")
    second = await adapter.retry(old, "bob")
    assert second.outcome is Outcome.WRONG_STATE
    assert f"already retried as {first.new_id} by alice" in second.message


async def test_retry_unknown_is_not_found(adapter) -> None:
    result = await adapter.retry("nope", "ops")
    assert result.outcome is Outcome.NOT_FOUND


async def test_retry_conflicts_with_a_held_unique_lock(autumn_emulator, adapter) -> None:
    old = failing_job(autumn_emulator, payload={"tenant": "acme"}, unique="pending")
    dead_before = autumn_emulator.dead_raw()
    holder = autumn_emulator.enqueue("always_fail", {"tenant": "acme"}, unique="pending")
    assert holder is not None
    result = await adapter.retry(old, "ops")
    assert result.outcome is Outcome.CONFLICT
    assert holder in result.message
    assert autumn_emulator.dead_raw() == dead_before  # nothing changed
    assert autumn_emulator.dead_record_raw(old) is not None
    assert autumn_emulator.queue_ids() == [holder]


async def test_retry_retakes_the_unique_lock_for_the_new_job(autumn_emulator, adapter) -> None:
    old = failing_job(autumn_emulator, payload={"tenant": "t"}, unique="running")
    result = await adapter.retry(old, "ops")
    lock = autumn_emulator.unique_lock_key(
        "always_fail", autumn_emulator.record(result.new_id)["unique_key"]
    )
    assert autumn_emulator.client.get(lock).decode() == result.new_id
    assert 0 < autumn_emulator.client.pttl(lock) <= 86_400_000
    # An equivalent enqueue is now coalesced, as Autumn would do.
    assert autumn_emulator.enqueue("always_fail", {"tenant": "t"}, unique="running") is None


async def test_retry_of_ttl_unique_job_takes_no_lock(autumn_emulator, adapter) -> None:
    old = failing_job(autumn_emulator, payload={"x": 1}, unique="ttl", unique_ttl_ms=1)
    result = await adapter.retry(old, "ops")
    assert result.outcome is Outcome.DONE
    lock = autumn_emulator.unique_lock_key(
        "always_fail", autumn_emulator.record(result.new_id)["unique_key"]
    )
    assert autumn_emulator.client.get(lock) is None


async def test_retry_of_corrupt_record_changes_nothing(autumn_emulator, adapter) -> None:
    bad = history_record(
        autumn_emulator, finished_ms=autumn_emulator.now_ms(), id="bad", attempt=1.5
    )
    push_dead(autumn_emulator, bad)
    result = await adapter.retry("bad", "ops")
    assert result.outcome is Outcome.CORRUPT
    assert autumn_emulator.dead_raw() == [bad] and autumn_emulator.dead_record_raw("bad") == bad
    assert await audit_outcomes(adapter) == [("retry", "bad", "corrupt")]


async def test_retry_of_malformed_dead_entry_is_corrupt(autumn_emulator, adapter) -> None:
    entry = json.dumps({"id": "m1", "error": "invalid", "raw_payload": "{"})
    autumn_emulator.client.lpush(autumn_emulator.dead_key, entry)
    assert (await adapter.retry("m1", "ops")).outcome is Outcome.CORRUPT
    assert autumn_emulator.dead_raw() == [entry]


async def test_retry_when_dead_list_lost_the_entry_is_wrong_state(autumn_emulator, adapter) -> None:
    old = failing_job(autumn_emulator)
    autumn_emulator.client.delete(
        autumn_emulator.dead_key
    )  # dead-record left behind, list entry gone
    result = await adapter.retry(old, "ops")
    assert result.outcome is Outcome.WRONG_STATE
    assert autumn_emulator.client.keys(autumn_emulator.record_prefix + "*") == []


async def test_retry_keeps_queue_and_limits(autumn_emulator, adapter) -> None:
    old = failing_job(
        autumn_emulator,
        queue="low",
        payload={"acct": "z"},
        concurrency_limit=2,
        concurrency_scope_field="acct",
    )
    result = await adapter.retry(old, "ops")
    record = autumn_emulator.record(result.new_id)
    assert record["queue"] == "low" and record["concurrency_limit"] == 2
    assert autumn_emulator.queue_ids("low") == [result.new_id]


# ------------------------------------------------------------------ discard


async def test_discard_removes_failed_job_and_keeps_lifecycle(autumn_emulator, adapter) -> None:
    keep = failing_job(autumn_emulator)
    gone = failing_job(autumn_emulator)
    result = await adapter.discard(gone, "alice")
    assert result.outcome is Outcome.DONE and result.message == f"Discarded job {gone}."
    assert [json.loads(e)["id"] for e in autumn_emulator.dead_raw()] == [keep]
    assert autumn_emulator.dead_record_raw(gone) is None
    detail = await adapter.job(gone)
    assert detail.job.status is JobStatus.DISCARDED
    again = await adapter.discard(gone, "bob")
    assert again.outcome is Outcome.WRONG_STATE and "already discarded" in again.message


async def test_discard_malformed_entry(autumn_emulator, adapter) -> None:
    entry = json.dumps({"id": "m2", "error": "invalid", "raw_payload": "{"})
    autumn_emulator.client.lpush(autumn_emulator.dead_key, entry)
    assert (await adapter.discard("m2", "ops")).outcome is Outcome.DONE
    assert autumn_emulator.dead_raw() == []


async def test_discard_unknown_is_not_found_and_running_is_not_discardable(
    autumn_emulator, adapter
) -> None:
    assert (await adapter.discard("nope", "ops")).outcome is Outcome.NOT_FOUND
    job = autumn_emulator.enqueue("noop", {})
    Worker(autumn_emulator).claim()
    assert (await adapter.discard(job, "ops")).outcome is Outcome.NOT_FOUND
    assert autumn_emulator.processing_entries()[0][0] == job


async def test_discard_with_dead_record_but_no_list_entry_is_wrong_state(
    autumn_emulator, adapter
) -> None:
    old = failing_job(autumn_emulator)
    autumn_emulator.client.delete(autumn_emulator.dead_key)
    result = await adapter.discard(old, "ops")
    assert result.outcome is Outcome.WRONG_STATE
    assert autumn_emulator.dead_record_raw(old) is not None


async def test_lifecycle_keeps_no_copy_of_huge_records(autumn_emulator, adapter) -> None:
    job = autumn_emulator.enqueue("noop", {"blob": "x" * 50_000})
    assert (await adapter.cancel(job, "ops")).outcome is Outcome.DONE
    detail = await adapter.job(job)
    assert detail.job.status is JobStatus.CANCELED
    assert detail.job.problem is not None and "no copy" in detail.job.problem
    assert autumn_emulator.client.strlen(f"jobbridge:autumn:autumn:jobs:lifecycle:{job}") < 1000
    assert autumn_emulator.client.ttl(f"jobbridge:autumn:autumn:jobs:lifecycle:{job}") > 6 * 86_400
    recent = await adapter.lifecycle(10)
    assert [(e.job_id, e.status) for e in recent] == [(job, JobStatus.CANCELED)]
    assert (
        max(
            len(v)
            for v in autumn_emulator.client.lrange("jobbridge:autumn:autumn:jobs:lifecycle", 0, -1)
        )
        < 1000
    )


# ------------------------------------------------------------------ audit


async def test_audit_is_bounded_and_newest_first(autumn_emulator, adapter) -> None:
    for n in range(5):
        await adapter.cancel(f"missing-{n}", "ops")
    entries = await adapter.operator.audit(3)
    assert [e.job_id for e in entries] == ["missing-4", "missing-3", "missing-2"]
    assert all(e.outcome == "not_found" and e.action == "cancel" for e in entries)


async def test_jobbridge_keys_stay_out_of_autumns_namespace(autumn_emulator, adapter) -> None:
    job = autumn_emulator.enqueue("noop", {})
    await adapter.cancel(job, "ops")
    keys = sorted(k.decode() for k in autumn_emulator.client.keys("*"))
    assert all(k.startswith("jobbridge:") for k in keys)
    assert "jobbridge:audit" in keys
