"""The census of RQ queues: a million waiting jobs counted exactly while the event loop stays
free, and jobs enqueued by RQ itself named as RQ wrote them."""

from __future__ import annotations

import asyncio

import pytest
from rq import Queue
from rq.job import Job
from rq.serializers import JSONSerializer

from jobbridge.census.model import UNKNOWN_NAME, CensusState
from jobbridge.census.runner import CensusManager, plan_for, run_census, store_for
from jobbridge.model import SnapshotQuery
from jobbridge.settings import SourceConfig
from tests.census.seed import seed_rq_queue, truth
from tests.census.support import LagProbe, adapter_of, counts, wait_done
from tests.integration.processes import scaled
from tests.rq import tasks

pytestmark = pytest.mark.redis

MILLION = 1_000_000


def rq_source(redis_url: str) -> SourceConfig:
    return SourceConfig(name="rq", system="rq", redis_url=redis_url)


class Greeter:
    """A bound method's job: RQ pickles the instance and names the method."""

    def hello(self, who: str) -> str:
        return f"hello {who}"


@pytest.mark.slow
@pytest.mark.timeout(400)
async def test_a_million_job_rq_queue_is_counted_exactly_with_the_loop_free(
    sync_redis, redis_url
) -> None:
    seed_rq_queue(sync_redis, MILLION)
    assert sync_redis.llen("rq:queue:deep") == MILLION
    seen: list[tuple[str, int, int]] = []
    try:
        async with adapter_of(rq_source(redis_url)) as adapter:
            manager = CensusManager()
            store = store_for(adapter, "deep")
            try:
                with LagProbe() as probe:
                    started = await manager.start(adapter, "deep")
                    # the answer to "start" already shows the census, at 0 of the whole queue
                    assert started.state is CensusState.RUNNING, started
                    assert started.total_at_start == MILLION
                    result = await wait_done(store, timeout=360, seen=seen)
            finally:
                await manager.close()
    finally:
        # a million keys freed in the background, not by the fixture's blocking FLUSHDB
        sync_redis.flushdb(asynchronous=True)
    print(
        f"\n1M census: worst loop lag {probe.worst * 1000:.1f} ms "
        f"({probe.worst_cpu * 1000:.1f} ms of the loop's own CPU, "
        f"longest garbage collection {probe.worst_gc * 1000:.1f} ms), "
        f"{len(seen)} progress reads, took {(result.finished_at - result.started_at)}"  # type: ignore[operator]
    )
    assert result.state is CensusState.DONE, result
    assert counts(result) == truth(MILLION)
    assert (result.read, result.total_at_start, result.missing) == (MILLION, MILLION, 0)
    assert result.note is None and result.other_names == 0 and result.distinct_names == 5
    assert result.principals is None  # RQ records no principal
    # progress was visible between 0 and the total while it ran, and only went forward
    running = [read for state, read, total in seen if state == "running"]
    assert any(0 < read < MILLION for read in running), seen[:5]
    assert running == sorted(running)
    # The event loop never waited on the census: its own work (the loop thread's CPU time)
    # stayed under 20 ms per turn. Wall time also counts the loop being preempted: while the
    # census runs, Redis works flat out on the same two cores as this process, the decoding
    # process and whatever else the machine runs (with a loaded machine, 25-40 ms seen; 4 ms
    # idle), so its bound is wider, and still catches a census that holds the loop.
    assert probe.ticks > 100
    assert probe.worst_cpu < 0.02
    assert probe.worst < scaled(0.05)


async def test_jobs_enqueued_by_rq_are_named_as_rq_and_the_rows_name_them(
    sync_redis, redis_url
) -> None:
    queue = Queue("mixed", connection=sync_redis)
    ids = [queue.enqueue(tasks.add, n, b=n).id for n in range(3)]
    ids.append(queue.enqueue(tasks.echo, {"principal_id": "u-1"}).id)
    ids.append(queue.enqueue("tests.rq.tasks.sleep", 1).id)
    ids.append(queue.enqueue(tasks.add, 1, description="a hand-written description").id)
    ids.append(queue.enqueue(Greeter().hello, "you").id)
    ids += [
        j.id
        for j in queue.enqueue_many([Queue.prepare_data(tasks.fail, ("boom",)) for _ in range(4)])
    ]
    expected: dict[str, int] = {}
    for job_id in ids:
        name = Job.fetch(job_id, connection=sync_redis).func_name
        expected[name] = expected.get(name, 0) + 1
    as_json = Queue("mixed", connection=sync_redis, serializer=JSONSerializer)
    ids.append(as_json.enqueue("tests.rq.tasks.add", 2, 3).id)
    expected["tests.rq.tasks.add"] += 1
    # a dangling id (its hash expired) and a hash whose data is not RQ's
    sync_redis.rpush("rq:queue:mixed", "gone-id")
    sync_redis.hset("rq:job:odd", mapping={"data": b"\x00garbage", "description": "x.y(1)"})
    sync_redis.rpush("rq:queue:mixed", "odd")
    expected["x.y"] = 1

    async with adapter_of(rq_source(redis_url)) as adapter:
        store = store_for(adapter, "mixed")
        assert await store.take_lease("t")
        await run_census(plan_for(adapter, "mixed"), store, "t")
        result = await store.read()
        await adapter.discover_queues()
        snapshot = await adapter.snapshot(SnapshotQuery.build({}, 100))
    assert result is not None and result.state is CensusState.DONE
    assert counts(result) == expected
    assert result.missing == 1 and result.read == len(ids) + 2
    assert result.note is not None and "no record" in result.note
    # the census names each job as its row does
    rows = [job for job in snapshot.lists["enqueued"].items if job.id in ids]
    assert len(rows) == len(ids)
    by_row: dict[str, int] = {}
    for row in rows:
        by_row[row.name] = by_row.get(row.name, 0) + 1
    assert by_row == {name: n for name, n in expected.items() if name != "x.y"}


async def test_a_queue_that_changes_while_it_is_read_says_so(sync_redis, redis_url) -> None:
    seed_rq_queue(sync_redis, 3_000, queue="busy")
    async with adapter_of(rq_source(redis_url)) as adapter:
        plan = plan_for(adapter, "busy")
        count = plan.count

        async def count_and_take(ids):  # a worker takes jobs while the census reads
            await asyncio.to_thread(sync_redis.lpop, "rq:queue:busy", 700)
            return await count(ids)

        plan = type(plan)(plan.client, plan.lists, count_and_take, plan.principals, 1000)
        store = store_for(adapter, "busy")
        assert await store.take_lease("t")
        await run_census(plan, store, "t")
        result = await store.read()
    assert result is not None and result.state is CensusState.DONE
    assert result.total_at_start == 3_000 and result.read < 3_000
    assert result.note is not None and "changed during the read" in result.note


async def test_two_starts_run_one_census_and_names_past_the_cap_are_other(
    sync_redis, redis_url, monkeypatch
) -> None:
    from jobbridge.census import runner

    monkeypatch.setattr(runner, "MAX_DISTINCT", 3)
    seed_rq_queue(sync_redis, 2_000, queue="q")
    async with adapter_of(rq_source(redis_url)) as adapter:
        one, two = CensusManager(), CensusManager()  # two replicas
        try:
            first = await one.start(adapter, "q")
            second = await two.start(adapter, "q")
            assert second.state is CensusState.RUNNING and two.running() == 0
            assert first.started_at == second.started_at
            result = await wait_done(store_for(adapter, "q"), timeout=60)
        finally:
            await one.close()
            await two.close()
    assert result.state is CensusState.DONE
    assert sum(counts(result).values()) + result.other_names == 2_000
    assert len(result.names) == 3 and result.other_names == 2_000 - sum(counts(result).values())
    assert UNKNOWN_NAME not in counts(result)
