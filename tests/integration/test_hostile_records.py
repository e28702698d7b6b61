"""Hostile data in Autumn's keys (issue 6): every case here was a 500, a wrong job acted on, or
a source taken down before; each now becomes a flagged row, a named problem or a refusal."""

from __future__ import annotations

import json

import pytest

from jobbridge.adapters.autumn.adapter import AutumnAdapter
from jobbridge.adapters.autumn.keys import entry_id
from jobbridge.model import Action, JobStatus, ListName, Outcome, SnapshotQuery
from jobbridge.offload import digest_now
from jobbridge.sources import connect
from tests.autumn.autumn_fixtures import (
    Worker,
    failing_job,
    history_record,
    push_dead,
    queued_decoy,
)

pytestmark = pytest.mark.redis

DEEP = "[" * 10_000 + "]" * 10_000


@pytest.fixture
async def adapter(redis_url: str):
    client = connect(redis_url)
    adapter = AutumnAdapter(client, source="orders", queues=["default", "low"])
    yield adapter
    await client.aclose()


def q(**pages: int) -> SnapshotQuery:
    return SnapshotQuery.build({ListName(k): v for k, v in pages.items()}, 25)


def rows(snapshot, which: ListName) -> dict[str, object]:
    return {job.id: job for job in snapshot.lists[which].items}


# --------------------------------------------------------------- 1. identity


async def test_a_queued_decoy_naming_another_id_cancels_only_itself(
    autumn_emulator, adapter
) -> None:
    victim = queued_decoy(autumn_emulator)
    shown = rows(await adapter.snapshot(q()), ListName.ENQUEUED)
    row = shown["decoy"]
    assert row.name == "harmless"
    assert row.problem is not None and f"another job id ({victim})" in row.problem
    assert shown[victim].problem is None

    result = await adapter.cancel("decoy", "ops")
    assert result.outcome is Outcome.DONE and result.job_id == "decoy"
    assert autumn_emulator.queue_ids() == [victim]
    assert autumn_emulator.record(victim) is not None


async def test_a_dead_decoy_naming_a_failed_job_is_known_by_its_bytes(
    autumn_emulator, adapter
) -> None:
    victim = failing_job(autumn_emulator, payload={"order": 1})
    decoy_record = json.loads(autumn_emulator.dead_record_raw(victim))
    decoy_record["name"] = "decoy"
    decoy = json.dumps(decoy_record)
    autumn_emulator.client.lpush(autumn_emulator.dead_key, decoy)

    failed = rows(await adapter.snapshot(q()), ListName.FAILED)
    decoy_id = entry_id(digest_now(decoy.encode()))
    assert set(failed) == {victim, decoy_id}
    assert failed[victim].problem is None
    assert failed[victim].actions == (Action.RETRY, Action.DISCARD)
    row = failed[decoy_id]
    assert row.name == "decoy" and row.actions == (Action.DISCARD,)
    assert row.problem is not None and "whose failed record is another entry" in row.problem

    # Acting on what the operator saw: the decoy goes, the victim stays.
    result = await adapter.discard(decoy_id, "ops")
    assert result.outcome is Outcome.DONE, result.message
    assert autumn_emulator.dead_raw() == [autumn_emulator.dead_record_raw(victim)]
    retry = await adapter.retry(decoy_id, "ops")
    assert retry.outcome in (Outcome.NOT_FOUND, Outcome.WRONG_STATE)
    assert autumn_emulator.dead_record_raw(victim) is not None


async def test_dead_entries_without_a_usable_id_can_be_opened_and_discarded(
    autumn_emulator, adapter
) -> None:
    nameless = json.dumps({"error": "invalid job payload", "raw_payload": "{"})
    numbered = json.dumps({"id": 12345, "error": "invalid job payload", "raw_payload": "{"})
    for entry in (nameless, numbered):
        autumn_emulator.client.lpush(autumn_emulator.dead_key, entry)

    failed = rows(await adapter.snapshot(q()), ListName.FAILED)
    ids = {entry_id(digest_now(e.encode())) for e in (nameless, numbered)}
    assert set(failed) == ids
    for job_id in ids:
        assert failed[job_id].actions == (Action.DISCARD,)
        detail = await adapter.job(job_id)
        assert detail is not None and detail.job.id == job_id
        assert (await adapter.retry(job_id, "ops")).outcome is Outcome.CORRUPT
        assert (await adapter.discard(job_id, "ops")).outcome is Outcome.DONE
    assert autumn_emulator.dead_raw() == []
    assert (await adapter.snapshot(q())).counters.failed_7d == 0


async def test_two_entries_naming_one_id_are_each_their_own(autumn_emulator, adapter) -> None:
    first = json.dumps({"id": "same", "error": "one", "raw_payload": "{"})
    second = json.dumps({"id": "same", "error": "two", "raw_payload": "{"})
    autumn_emulator.client.lpush(autumn_emulator.dead_key, first, second)
    failed = rows(await adapter.snapshot(q()), ListName.FAILED)
    assert "same" not in failed and len(failed) == 2
    refused = await adapter.discard("same", "ops")
    assert refused.outcome is Outcome.CONFLICT and "2 failed entries" in refused.message
    assert len(autumn_emulator.dead_raw()) == 2
    second_id = entry_id(digest_now(second.encode()))
    assert (await adapter.discard(second_id, "ops")).outcome is Outcome.DONE
    assert autumn_emulator.dead_raw() == [first]
    # One left: its id acts on it again, as for any malformed entry Autumn writes.
    assert (await adapter.discard("same", "ops")).outcome is Outcome.DONE
    assert autumn_emulator.dead_raw() == []


async def test_ids_that_are_not_utf8_round_trip(autumn_emulator, adapter) -> None:
    job = autumn_emulator.enqueue("noop", {})
    record = json.loads(autumn_emulator.record_raw(job))
    odd = b"job-\x80\xff"
    record["id"] = odd.decode("latin-1")
    autumn_emulator.client.set(b"autumn:jobs:record:" + odd, json.dumps(record))
    autumn_emulator.client.lpush(autumn_emulator.queue_key("default"), odd)

    listed = [j.id for j in (await adapter.snapshot(q())).lists[ListName.ENQUEUED].items]
    strange = next(i for i in listed if i != job)
    assert strange.encode("utf-8", "surrogateescape") == odd
    detail = await adapter.job(strange)
    assert detail is not None and detail.job.status is JobStatus.ENQUEUED
    assert (await adapter.cancel(strange, "ops")).outcome is Outcome.DONE
    assert autumn_emulator.client.lrange(autumn_emulator.queue_key("default"), 0, -1) == [
        job.encode()
    ]
    entry = (await adapter.operator.audit(1))[0]
    assert entry.job_id == strange and entry.outcome == "done"


# --------------------------------------------------------------- 3, 5, 12. JSON


async def test_json_nested_ten_thousand_deep_is_a_flagged_row(autumn_emulator, adapter) -> None:
    body = history_record(
        autumn_emulator, finished_ms=autumn_emulator.now_ms(), id="deep", payload={}
    )
    body = body.replace('"payload":{}', f'"payload":{DEEP}')
    autumn_emulator.client.lpush(autumn_emulator.dead_key, body)
    autumn_emulator.client.set(autumn_emulator.dead_record_key("deep"), body)
    autumn_emulator.client.lpush(
        autumn_emulator.dead_key, json.dumps({"id": "m", "error": "e", "raw_payload": "{"})
    )
    autumn_emulator.client.set(
        autumn_emulator.record_key("deep-live"), '{"id":"deep-live","payload":' + DEEP + "}"
    )
    autumn_emulator.client.lpush(autumn_emulator.queue_key("default"), "deep-live")

    shot = await adapter.snapshot(q())
    failed = rows(shot, ListName.FAILED)
    assert "nested deeper than 127 levels" in (failed["deep"].problem or "")
    assert failed["deep"].actions == (Action.DISCARD,)
    assert "nested deeper" in (rows(shot, ListName.ENQUEUED)["deep-live"].problem or "")
    assert (await adapter.counters()).failed_7d == 2
    detail = await adapter.job("deep")
    assert detail is not None and "nested deeper" in (detail.job.problem or "")
    assert (await adapter.retry("deep", "ops")).outcome is Outcome.CORRUPT
    assert (await adapter.discard("m", "ops")).outcome is Outcome.DONE
    assert (await adapter.discard("deep", "ops")).outcome is Outcome.DONE


async def test_a_number_out_of_range_is_shown_but_never_retried(autumn_emulator, adapter) -> None:
    job_id = failing_job(autumn_emulator, payload={"amount": 1})
    raw = autumn_emulator.dead_record_raw(job_id)
    huge = raw.replace('"amount":1', '"amount":1e999')
    autumn_emulator.client.delete(autumn_emulator.dead_key)
    push_dead(autumn_emulator, huge)

    row = rows(await adapter.snapshot(q()), ListName.FAILED)[job_id]
    assert row.actions == (Action.DISCARD,)
    assert row.problem is not None and "number 1e999 is out of range" in row.problem
    assert "Infinity" in row.payload_preview
    result = await adapter.retry(job_id, "ops")
    assert result.outcome is Outcome.CORRUPT
    assert autumn_emulator.dead_raw() == [huge]


async def test_hostile_jobbridge_entries_are_skipped(autumn_emulator, adapter) -> None:
    job_id = autumn_emulator.enqueue("noop", {})
    assert (await adapter.cancel(job_id, "ops")).outcome is Outcome.DONE
    lifecycle_key = f"jobbridge:autumn:autumn:jobs:lifecycle:{job_id}"
    entry = json.loads(autumn_emulator.client.get(lifecycle_key))
    entry["at_ms"] = 1e999
    autumn_emulator.client.set(lifecycle_key, json.dumps(entry).replace("Infinity", "1e999"))
    autumn_emulator.client.lpush("jobbridge:audit", '{"at_ms":' + DEEP + "}", '{"at_ms":1e999}')

    detail = await adapter.job(job_id)
    assert detail is not None and detail.job.status is JobStatus.CANCELED
    entries = await adapter.operator.audit(10)
    assert [e.job_id for e in entries] == [job_id]


# --------------------------------------------------------------- 4. scores


async def test_infinite_scores_are_flagged_rows(autumn_emulator, adapter) -> None:
    due = autumn_emulator.enqueue("noop", {}, delay_ms=60_000)
    autumn_emulator.client.zadd(autumn_emulator.delayed_key, {due: float("inf")})
    running = autumn_emulator.enqueue("noop", {})
    Worker(autumn_emulator).claim()
    autumn_emulator.client.zadd(autumn_emulator.processing_key, {running: float("-inf")})

    shot = await adapter.snapshot(q())
    scheduled = rows(shot, ListName.SCHEDULED)[due]
    assert scheduled.scheduled_for is None and "not a time" in (scheduled.problem or "")
    assert "not a time" in (rows(shot, ListName.RUNNING)[running].problem or "")
    assert shot.counters.running_overdue == 1
    for job_id in (due, running):
        detail = await adapter.job(job_id)
        assert detail is not None and "not a time" in (detail.job.problem or "")
    assert (await adapter.cancel(due, "ops")).outcome is Outcome.DONE


# --------------------------------------------------------------- 6, 7. keys


async def test_records_naming_fake_queues_do_not_crowd_out_real_ones(
    autumn_emulator, adapter
) -> None:
    adapter = AutumnAdapter(adapter.client, source="orders")
    now = autumn_emulator.now_ms()
    for n in range(200):
        autumn_emulator.client.lpush(
            autumn_emulator.completed_key,
            history_record(autumn_emulator, finished_ms=now - n, queue=f"fake{n}"),
        )
    autumn_emulator.client.set("autumn:jobs:queue:trap", "a string")
    autumn_emulator.client.set(
        autumn_emulator.record_key("t"),
        autumn_emulator.encode({"id": "t", "name": "x", "queue": "trap"}),
    )
    autumn_emulator.client.zadd(autumn_emulator.delayed_key, {"t": now + 60_000})
    await adapter.snapshot(SnapshotQuery.build(per_page=100))
    for _ in range(5):
        await adapter.discover_queues()
    for n in range(50):
        autumn_emulator.enqueue("noop", {"n": n}, queue="real")
    await adapter.discover_queues()

    assert "trap" not in adapter.queues and not any(q.startswith("fake") for q in adapter.queues)
    assert "real" in adapter.queues
    counters = await adapter.counters()
    assert counters.enqueued == 50 and counters.problems == ()


async def test_a_wrong_typed_core_key_is_named_and_the_rest_is_read(
    autumn_emulator, adapter
) -> None:
    waiting = autumn_emulator.enqueue("noop", {}, queue="low")
    failing_job(autumn_emulator)
    autumn_emulator.client.delete(autumn_emulator.queue_key("default"))
    autumn_emulator.client.hset(autumn_emulator.queue_key("default"), "x", "y")
    autumn_emulator.client.delete(autumn_emulator.completed_key)
    autumn_emulator.client.set(autumn_emulator.completed_key, "not a list")
    autumn_emulator.client.set(autumn_emulator.delayed_key, "not a zset")
    autumn_emulator.client.rpush(autumn_emulator.processing_key, "not a zset")

    shot = await adapter.snapshot(q())
    problems = " | ".join(shot.counters.problems)
    for key, kind in (
        ("autumn:jobs:queue", "a hash, not a list"),
        ("autumn:jobs:completed", "a string, not a list"),
        ("autumn:jobs:delayed", "a string, not a sorted set"),
        ("autumn:jobs:processing", "a list, not a sorted set"),
    ):
        assert f"key {key} is {kind}" in problems
    assert [j.id for j in shot.lists[ListName.ENQUEUED].items] == [waiting]
    assert shot.counters.failed_7d == 1 and shot.counters.enqueued == 1
    assert (await adapter.job(waiting)) is not None


# --------------------------------------------------------------- 8. size


async def test_lookups_of_unknown_ids_read_no_history(
    autumn_emulator, adapter, redis_client
) -> None:
    now = autumn_emulator.now_ms()
    for n in range(200):
        push_dead(
            autumn_emulator,
            history_record(autumn_emulator, finished_ms=now - n, last_error="x" * 5000),
        )
    await adapter.counters()
    history = adapter.histories.lists[ListName.FAILED]
    read = history.transferred
    for n in range(20):
        assert await adapter.job(f"unknown-{n}") is None
    assert history.transferred == read


@pytest.mark.slow
async def test_a_huge_payload_is_decoded_away_from_the_loop(autumn_emulator, adapter) -> None:
    payload = {"items": [{"n": n, "text": "y" * 20} for n in range(60_000)]}
    job_id = failing_job(autumn_emulator, payload=payload)
    assert len(autumn_emulator.dead_record_raw(job_id)) > 2_000_000

    detail = await adapter.job(job_id)
    assert detail is not None and detail.payload_kind == "json (truncated)"
    assert len(detail.payload) <= 65_537
    row = rows(await adapter.snapshot(q()), ListName.FAILED)[job_id]
    assert row.actions == (Action.RETRY, Action.DISCARD) and row.problem is None
    result = await adapter.retry(job_id, "ops")
    assert result.outcome is Outcome.DONE
    assert json.loads(autumn_emulator.record_raw(result.new_id))["payload"] == payload


async def test_records_too_big_for_a_page_are_flagged_not_read(
    autumn_emulator, adapter, monkeypatch
) -> None:
    from jobbridge.adapters.autumn import adapter as autumn

    monkeypatch.setattr(autumn, "PAGE_BYTES", 200_000)
    big = [autumn_emulator.enqueue("noop", {"blob": "z" * 150_000}) for _ in range(3)]
    shot = await adapter.snapshot(q())
    enqueued = rows(shot, ListName.ENQUEUED)
    read = [i for i in big if enqueued[i].problem is None]
    skipped = [i for i in big if enqueued[i].problem]
    assert len(read) == 1 and len(skipped) == 2
    assert all("too large to read here" in (enqueued[i].problem or "") for i in skipped)
    assert all(enqueued[i].actions == (Action.CANCEL,) for i in big)
    detail = await adapter.job(skipped[0])
    assert detail is not None and detail.job.problem is None and detail.job.name == "noop"


async def test_a_record_that_is_not_a_string_is_a_flagged_row(autumn_emulator, adapter) -> None:
    autumn_emulator.client.rpush(autumn_emulator.record_key("listy"), "x")
    autumn_emulator.client.lpush(autumn_emulator.queue_key("default"), "listy")
    row = rows(await adapter.snapshot(q()), ListName.ENQUEUED)["listy"]
    assert "another type than a string" in (row.problem or "")
    assert (await adapter.job("listy")) is not None
