"""The Autumn adapter's lists, windows and counters on a real Redis with emulator data."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
import redis
import redis.asyncio

from jobbridge.adapters.autumn.adapter import AutumnAdapter
from jobbridge.model import Action, JobStatus, ListName, SnapshotQuery
from tests.autumn.autumn_fixtures import (
    DAY_MS,
    Autumn,
    Worker,
    failing_job,
    history_record,
    push_dead,
)

pytestmark = pytest.mark.redis

QUEUES = ["critical", "default", "low"]


@pytest.fixture
def adapter(redis_client: redis.asyncio.Redis) -> AutumnAdapter:
    return AutumnAdapter(redis_client, source="orders", queues=QUEUES)


def q(per_page: int = 25, **pages: int) -> SnapshotQuery:
    return SnapshotQuery.build({ListName(k): v for k, v in pages.items()}, per_page)


def ids(page) -> list[str]:
    return [j.id for j in page.items]


async def test_enqueued_pages_span_queues_in_priority_order_newest_first(
    autumn_emulator, adapter
) -> None:
    made = {
        name: [autumn_emulator.enqueue("noop", {"n": i}, queue=name) for i in range(n)]
        for name, n in (("critical", 3), ("default", 4), ("low", 5))
    }
    # Newest first within each queue, queues in priority order.
    expected = [i for name in QUEUES for i in reversed(made[name])]

    pages = [await adapter.snapshot(q(5, enqueued=n)) for n in (1, 2, 3, 4)]
    enqueued = [p.lists[ListName.ENQUEUED] for p in pages]
    assert [ids(p) for p in enqueued] == [expected[0:5], expected[5:10], expected[10:12], []]
    assert all(p.total == 12 for p in enqueued)
    assert enqueued[0].pages == 3
    first = enqueued[0].items[0]
    assert first.status is JobStatus.ENQUEUED and first.queue == "critical"
    assert first.actions == (Action.CANCEL,)


async def test_counters_per_queue_and_oldest_age(autumn_emulator, adapter) -> None:
    now = autumn_emulator.now_ms()
    old = Autumn(autumn_emulator.client, clock=lambda: now - 90_000)
    old.enqueue("noop", {}, queue="low")
    autumn_emulator.enqueue("noop", {}, queue="low")
    autumn_emulator.enqueue("noop", {}, queue="critical")
    counters = await adapter.counters()
    assert counters.enqueued == 3
    by_queue = {c.name: c for c in counters.queues}
    assert by_queue["low"].enqueued == 2 and by_queue["critical"].enqueued == 1
    assert by_queue["default"].enqueued == 0 and by_queue["default"].oldest_enqueued_age_s is None
    assert 89 <= (by_queue["low"].oldest_enqueued_age_s or 0) <= 120
    assert counters.oldest_enqueued_age_s == by_queue["low"].oldest_enqueued_age_s


async def test_scheduled_soonest_first_with_retrying_backoffs(autumn_emulator, adapter) -> None:
    late = autumn_emulator.enqueue("noop", {}, delay_ms=600_000)
    soon = autumn_emulator.enqueue("noop", {}, delay_ms=60_000)
    flaky = autumn_emulator.enqueue("fail_times", {"fail_times": 1}, initial_backoff_ms=300_000)
    worker = Worker(autumn_emulator, ["default"])
    worker.execute(worker.claim())  # fails once: now a retry backoff in delayed

    shot = await adapter.snapshot(q())
    scheduled = shot.lists[ListName.SCHEDULED]
    assert ids(scheduled) == [soon, flaky, late]
    rows = {j.id: j for j in scheduled.items}
    assert rows[soon].status is JobStatus.SCHEDULED
    assert rows[flaky].status is JobStatus.RETRYING
    assert rows[flaky].attempt == 2 and rows[flaky].last_error
    assert rows[soon].scheduled_for is not None
    assert all(j.actions == (Action.CANCEL,) for j in scheduled.items)
    assert shot.counters.scheduled == 3


async def test_running_page_shows_worker_newest_start_first(autumn_emulator, adapter) -> None:
    first = autumn_emulator.enqueue("noop", {})
    second = autumn_emulator.enqueue("noop", {})
    slow = Autumn(autumn_emulator.client, visibility_timeout_ms=3_600_000)
    worker = Worker(slow, ["default"], worker_id="w-1")
    worker.claim()
    Autumn(autumn_emulator.client, clock=lambda: autumn_emulator.now_ms() + 5)
    worker.claim()
    shot = await adapter.snapshot(q())
    running = shot.lists[ListName.RUNNING]
    assert running.total == 2 and set(ids(running)) == {first, second}
    assert all(j.worker == "w-1" and j.status is JobStatus.RUNNING for j in running.items)
    assert all(j.actions == () for j in running.items)
    starts = [j.started_at for j in running.items]
    assert starts == sorted(starts, reverse=True)


async def test_running_jobs_past_their_claim_deadline_are_overdue(autumn_emulator, adapter) -> None:
    stuck, fine = autumn_emulator.enqueue("noop", {}), autumn_emulator.enqueue("noop", {})
    # Claimed a minute ago with a 30 s visibility timeout: its worker never settled it.
    past = Autumn(autumn_emulator.client, clock=lambda: autumn_emulator.now_ms() - 60_000)
    claimed = Worker(past, ["default"], worker_id="gone").claim()
    assert claimed is not None and claimed["id"] == stuck
    assert Worker(autumn_emulator, ["default"], worker_id="alive").claim() is not None
    shot = await adapter.snapshot(q())
    assert shot.counters.running == 2 and shot.counters.running_overdue == 1
    rows = {j.id: j for j in shot.lists[ListName.RUNNING].items}
    deadline = dict(autumn_emulator.processing_entries())[stuck]
    assert rows[stuck].overdue_since == datetime.fromtimestamp(deadline / 1000, tz=UTC)
    assert deadline < autumn_emulator.now_ms() - 29_000
    assert rows[fine].overdue_since is None
    detail = await adapter.job(stuck)
    assert detail is not None and detail.job.overdue_since == rows[stuck].overdue_since
    assert (await adapter.counters()).running_overdue == 1


async def test_completed_keeps_only_the_last_24_hours_newest_first(
    autumn_emulator, adapter
) -> None:
    now = autumn_emulator.now_ms()
    for age_ms in (25 * 3600_000, 2 * 3600_000, 60_000, 23 * 3600_000):
        autumn_emulator.client.lpush(
            autumn_emulator.completed_key, history_record(autumn_emulator, finished_ms=now - age_ms)
        )
    done = autumn_emulator.enqueue("noop", {"principal": "p-1", "request_id": "r-9"})
    Worker(autumn_emulator).run(until_idle=True)

    shot = await adapter.snapshot(q(2))
    completed = shot.lists[ListName.COMPLETED]
    assert completed.total == 4
    assert shot.counters.completed_24h == 4
    assert completed.items[0].id == done
    assert completed.items[0].principal_id == "p-1"
    assert completed.items[0].correlation_id == "r-9"
    page2 = (await adapter.snapshot(q(2, completed=2))).lists[ListName.COMPLETED]
    times = [j.finished_at for j in completed.items + page2.items]
    assert times == sorted(times, reverse=True)
    assert len(page2.items) == 2


async def test_failed_keeps_7_days_and_flags_malformed_entries(autumn_emulator, adapter) -> None:
    now = autumn_emulator.now_ms()
    push_dead(
        autumn_emulator,
        history_record(autumn_emulator, finished_ms=now - 8 * DAY_MS, last_error="old"),
    )
    push_dead(
        autumn_emulator,
        history_record(autumn_emulator, finished_ms=now - 6 * DAY_MS, last_error="six days"),
    )
    real = failing_job(
        autumn_emulator, payload={"message": "<script>alert(1)</script>", "user_id": 5}
    )
    # Autumn's own malformed entry (docs/autumn.md §3.4): no dead-record key, no timestamps.
    autumn_emulator.client.lpush(
        autumn_emulator.dead_key,
        json.dumps({"id": "bad-1", "error": "invalid job payload: attempt", "raw_payload": "{x"}),
    )

    shot = await adapter.snapshot(q())
    failed = shot.lists[ListName.FAILED]
    assert failed.total == 3 and shot.counters.failed_7d == 3
    assert ids(failed) == ["bad-1", real, ids(failed)[2]]
    bad, mine, six = failed.items
    assert bad.problem and "malformed" in bad.problem and bad.actions == (Action.DISCARD,)
    assert mine.last_error == "<script>alert(1)</script>"
    assert mine.principal_id == "5"
    assert mine.actions == (Action.RETRY, Action.DISCARD)
    assert six.last_error == "six days"
    assert failed.skipped == 1


async def test_broken_records_become_flagged_rows(autumn_emulator, adapter) -> None:
    good = autumn_emulator.enqueue("noop", {})
    autumn_emulator.client.lpush(autumn_emulator.queue_key("default"), "ghost")  # id with no record
    autumn_emulator.client.set(autumn_emulator.record_key("garbled"), b"\xff{not json")
    autumn_emulator.client.lpush(autumn_emulator.queue_key("default"), "garbled")
    typed = json.loads(autumn_emulator.record_raw(good))
    typed.update(id="typed", attempt=1.0)
    autumn_emulator.client.set(autumn_emulator.record_key("typed"), json.dumps(typed))
    autumn_emulator.client.lpush(autumn_emulator.queue_key("default"), "typed")

    page = (await adapter.snapshot(q())).lists[ListName.ENQUEUED]
    rows = {j.id: j for j in page.items}
    assert page.total == 4
    assert rows["ghost"].problem == "record missing" and rows["ghost"].actions == ()
    assert rows["garbled"].problem == "record is not valid JSON: not valid UTF-8"
    assert rows["typed"].problem is not None and "attempt" in rows["typed"].problem
    assert rows[good].problem is None
    assert page.skipped == 3


@pytest.mark.slow
async def test_queues_are_discovered_with_a_bounded_scan(autumn_emulator, redis_client) -> None:
    for name in ("alpha", "default", "zeta"):
        autumn_emulator.enqueue("noop", {}, queue=name)
    autumn_emulator.client.set("autumn:jobs:queue:notalist", "x")
    for n in range(3000):  # other keys the scan must page through
        autumn_emulator.client.set(f"noise:{n}", 1)
    adapter = AutumnAdapter(redis_client, source="s")
    assert adapter.queues == ("default",)
    await adapter.discover_queues()
    assert adapter.queues == ("default", "alpha", "zeta")
    assert adapter.discovery_passes == 1
    counters = await adapter.counters()
    assert counters.enqueued == 3


async def test_discovery_takes_glob_characters_in_the_prefix_literally(
    redis_url, redis_client
) -> None:
    client = redis.Redis.from_url(redis_url)
    Autumn(client, "app[1]:jobs").enqueue("noop", {}, queue="mail")
    Autumn(client, "app1:jobs").enqueue("noop", {}, queue="other")  # what [1] would match
    adapter = AutumnAdapter(redis_client, source="s", key_prefix="app[1]:jobs")
    await adapter.discover_queues()
    assert adapter.queues == ("default", "mail")
    assert (await adapter.counters()).enqueued == 1


async def test_configured_queues_keep_their_order(autumn_emulator, redis_client) -> None:
    adapter = AutumnAdapter(redis_client, source="s", queues=["low", "critical"])
    autumn_emulator.enqueue("noop", {}, queue="extra")
    await adapter.discover_queues()
    assert adapter.queues == ("low", "critical", "extra")


async def test_custom_prefix_is_isolated(redis_url, redis_client) -> None:
    client = redis.Redis.from_url(redis_url)
    other = Autumn(client, "billing:jobs")
    other.enqueue("noop", {})
    Autumn(client).enqueue("noop", {})
    Autumn(client).enqueue("noop", {})
    adapter = AutumnAdapter(redis_client, source="billing", key_prefix="billing:jobs")
    assert (await adapter.counters()).enqueued == 1
    client.close()


async def test_job_lookup_everywhere(autumn_emulator, adapter) -> None:
    waiting = autumn_emulator.enqueue("noop", {"principal_id": "p"})
    due = autumn_emulator.enqueue("noop", {}, delay_ms=60_000)
    dead = failing_job(autumn_emulator, queue="critical")
    assert autumn_emulator.enqueue("noop", {}, queue="low")
    Worker(autumn_emulator, ["low"]).run(until_idle=True)
    done = autumn_emulator.completed_entries()[0]["id"]

    assert (await adapter.job(waiting)).job.status is JobStatus.ENQUEUED
    detail = await adapter.job(due)
    assert detail.job.status is JobStatus.SCHEDULED and detail.job.scheduled_for
    failed = await adapter.job(dead)
    assert failed.job.status is JobStatus.FAILED and failed.job.queue == "critical"
    assert '"message": "boom"' in failed.payload and failed.payload_kind == "json"
    assert failed.raw == autumn_emulator.dead_record_raw(dead)
    assert (await adapter.job(done)).job.status is JobStatus.COMPLETED
    assert await adapter.job("nope") is None


async def test_snapshot_costs_a_fixed_number_of_round_trips(
    autumn_emulator, adapter, redis_client
) -> None:
    for n in range(300):
        autumn_emulator.enqueue("noop", {"n": n}, queue=QUEUES[n % 3])

    async def commands(query) -> int:
        before = (await redis_client.info("stats"))["total_commands_processed"]
        await adapter.snapshot(query)
        after = (await redis_client.info("stats"))["total_commands_processed"]
        return after - before - 1  # INFO itself is one command

    first = await commands(q(25, enqueued=5))
    # counts and probes (2 per queue, 10 more), one GETRANGE per row, one LRANGE per queue
    # the page spans, one GETRANGE per queue's oldest record (only when it changes)
    assert first <= 2 * len(QUEUES) + 10 + 25 + len(QUEUES) + len(QUEUES)
    deep = await commands(q(25, enqueued=11))
    assert deep <= 2 * len(QUEUES) + 10 + 25 + len(QUEUES)
