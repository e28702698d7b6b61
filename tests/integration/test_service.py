"""The service over real adapters: overview, coalescing, outages, read-only, audit merging."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio

from jobbridge.adapters.autumn.adapter import AutumnAdapter
from jobbridge.dev.private_redis import free_port
from jobbridge.errors import SourceUnavailable, UnknownSource
from jobbridge.model import Action, Outcome
from jobbridge.service import JobService
from jobbridge.sources import connect
from tests.autumn.autumn_fixtures import Autumn, failing_job

pytestmark = pytest.mark.redis


def dead_url() -> str:
    return f"redis://127.0.0.1:{free_port()}/0"


@pytest.fixture
async def service(redis_url: str):
    shared = redis.asyncio.Redis.from_url(redis_url)
    svc = JobService(
        {
            "orders": AutumnAdapter(shared, source="orders"),
            "billing": AutumnAdapter(shared, source="billing", key_prefix="billing:jobs"),
            "down": AutumnAdapter(connect(dead_url()), source="down"),
        },
        cache_ttl_s=5,
    )
    yield svc
    await svc.close()


async def test_overview_survives_a_source_that_is_down(autumn_emulator, service) -> None:
    failing_job(autumn_emulator, payload={"message": "first"})
    await asyncio.sleep(0.01)  # Autumn stamps ms: equal finish times would have no order
    failing_job(Autumn(autumn_emulator.client, "billing:jobs"), payload={"message": "second"})
    overview = await service.overview()
    rows = {r.name: r for r in overview.sources}
    assert rows["orders"].healthy and rows["orders"].counters.failed_7d == 1
    assert rows["billing"].counters.failed_7d == 1
    assert not rows["down"].healthy and rows["down"].counters is None
    assert "Connect" in (rows["down"].error or "") or "refused" in (rows["down"].error or "")
    assert [j.last_error for j in overview.recent_failures] == ["second", "first"]
    assert {j.source for j in overview.recent_failures} == {"orders", "billing"}


async def test_every_read_across_sources_reports_the_down_one_in_one_wording(
    autumn_emulator, service
) -> None:
    failing_job(autumn_emulator)
    counters = {r.name: r for r in await service.every_counters()}
    assert list(counters) == ["orders", "billing", "down"]
    assert counters["orders"].error is None and counters["orders"].value.failed_7d == 1
    down = counters["down"]
    assert down.value is None and not down.slow and not down.internal
    assert down.error == f"Redis unavailable ({down.detail})"
    overview = {r.name: r for r in (await service.overview()).sources}
    assert overview["down"].error == down.error and not overview["down"].slow
    ready = {r.name: r for r in await service.readiness()}
    assert ready["down"].error == down.error and ready["orders"].error is None
    # Unauthenticated probes get the verdict, never Redis's words.
    assert ready["down"].public_error == "unavailable"
    tally = await service.job_name_counts()
    assert tally["sources"]["down"] == {"system": "autumn", "up": False, "error": "unavailable"}
    assert tally["sources"]["orders"]["up"] is True


async def test_reads_of_a_down_source_raise_unavailable(service) -> None:
    with pytest.raises(SourceUnavailable) as info:
        await service.snapshot("down")
    assert info.value.source == "down"
    ready = await service.ready()
    assert ready["orders"] is None and ready["down"]


async def test_unknown_source(service) -> None:
    with pytest.raises(UnknownSource):
        await service.counters("nope")


async def test_identical_reads_share_one_round_trip(autumn_emulator, service, redis_client) -> None:
    autumn_emulator.enqueue("noop", {})
    await service.snapshot("orders")  # warm the script and history caches
    service.cache.invalidate()
    before = (await redis_client.info("stats"))["total_commands_processed"]
    shots = await asyncio.gather(*(service.snapshot("orders") for _ in range(100)))
    after = (await redis_client.info("stats"))["total_commands_processed"]
    assert all(s is shots[0] for s in shots)
    assert after - before - 1 < 20  # one snapshot's worth, not a hundred


async def test_actions_invalidate_the_cache(autumn_emulator, service) -> None:
    job = autumn_emulator.enqueue("noop", {})
    assert (await service.counters("orders")).enqueued == 1
    result = await service.act("orders", job, Action.CANCEL, "ops")
    assert result.outcome is Outcome.DONE
    assert (await service.counters("orders")).enqueued == 0


async def test_action_on_a_down_source_is_unavailable(service) -> None:
    result = await service.act("down", "x", Action.RETRY, "ops")
    assert result.outcome is Outcome.UNAVAILABLE
    assert "audit log" in result.message


async def test_read_only_refuses_before_redis(autumn_emulator, redis_url) -> None:
    job = autumn_emulator.enqueue("noop", {})
    svc = JobService(
        {"orders": AutumnAdapter(redis.asyncio.Redis.from_url(redis_url), source="orders")},
        read_only=True,
    )
    try:
        result = await svc.act("orders", job, Action.CANCEL, "ops")
    finally:
        await svc.close()
    assert result.outcome is Outcome.FORBIDDEN
    assert autumn_emulator.queue_ids() == [job]


async def test_audit_merges_sources_and_filters(autumn_emulator, service) -> None:
    await service.act("orders", "a", Action.CANCEL, "ops")
    await service.act("billing", "b", Action.RETRY, "ops")
    everything = await service.audit()
    assert [(e.source, e.job_id) for e in everything] == [("billing", "b"), ("orders", "a")]
    only = await service.audit("orders")
    assert [(e.source, e.job_id) for e in only] == [("orders", "a")]


async def test_background_discovery_finds_new_queues(autumn_emulator, redis_url) -> None:
    adapter = AutumnAdapter(redis.asyncio.Redis.from_url(redis_url), source="orders")
    svc = JobService({"orders": adapter})
    autumn_emulator.enqueue("noop", {}, queue="reports")
    await svc.start()
    try:
        for _ in range(100):
            if "reports" in adapter.queues:
                break
            await asyncio.sleep(0.05)
    finally:
        await svc.close()
    assert "reports" in adapter.queues


async def test_audit_filters_by_job_including_the_job_a_retry_made(
    autumn_emulator, service
) -> None:
    old = failing_job(autumn_emulator)
    result = await service.act("orders", old, Action.RETRY, "ops")
    await service.act("orders", "other", Action.CANCEL, "ops")
    about_old = await service.audit("orders", job_id=old)
    about_new = await service.audit(job_id=result.new_id)
    assert [(e.action, e.job_id) for e in about_old] == [("retry", old)]
    assert about_new == about_old
