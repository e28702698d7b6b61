"""The chart series keys on a real Redis (jobbridge.series.store and lua/write.lua): one
writer at a time, writes only from the cursor read, each job counted once, bounded and
expiring hashes, and the read of one window."""

from __future__ import annotations

import pytest
import redis.asyncio

from jobbridge.adapters.finished import FinishedJob
from jobbridge.series.model import Window
from jobbridge.series.store import LEASE_LOST, STALE_CURSOR, TTL_S, SeriesStore

pytestmark = pytest.mark.redis

NOW = 1_800_000_000 // 3600 * 3600 + 1800  # the middle of an hour


def job(job_id: str, at_s: float, *, failed: bool = False, queue: str | None = "q") -> FinishedJob:
    return FinishedJob(job_id, int(at_s * 1000), failed, queue)


async def write(store: SeriesStore, token: str = "t1", **kw: object) -> int:
    args: dict[str, object] = {
        "token": token,
        "read_from": None,
        "cursor": "c1",
        "now_s": NOW,
        "enqueued": 5,
        "queue_depths": [("q", 3)],
        "jobs": [],
    }
    args.update(kw)
    return await store.write(**args)  # type: ignore[arg-type]


async def test_only_the_lease_holder_writes(redis_client: redis.asyncio.Redis) -> None:
    store = SeriesStore(redis_client, "jb:", "src")
    assert await store.hold_lease("t1", 10_000)
    assert not await store.hold_lease("t2", 10_000)
    assert await store.hold_lease("t1", 10_000)  # renewed
    assert await write(store, "t2", jobs=[job("a", NOW)]) == LEASE_LOST
    assert await redis_client.exists(store.points_key(Window.HOUR), store.cursor_key) == 0
    assert await write(store, "t1", jobs=[job("a", NOW)]) == 1
    await store.release("t1")
    assert await store.hold_lease("t2", 10_000)
    assert await write(store, "t1", read_from="c1", cursor="c2") == LEASE_LOST


async def test_a_stale_cursor_writes_nothing(redis_client: redis.asyncio.Redis) -> None:
    store = SeriesStore(redis_client, "jb:", "src")
    await store.hold_lease("t1", 10_000)
    assert await write(store, jobs=[job("a", NOW)]) == 1
    # Another step already moved the cursor from None to c1: reading from None again is stale.
    assert await write(store, jobs=[job("b", NOW)], cursor="c9") == STALE_CURSOR
    assert await store.cursor() == "c1"
    series = await store.read(Window.HOUR, None, NOW)
    assert sum(p.completed for p in series.points) == 1


async def test_each_job_counts_once_in_its_minute(redis_client: redis.asyncio.Redis) -> None:
    store = SeriesStore(redis_client, "jb:", "src")
    await store.hold_lease("t1", 10_000)
    jobs = [job("a", NOW - 61), job("b", NOW - 61, failed=True), job("c", NOW, queue="other")]
    assert await write(store, jobs=jobs) == 3
    # Read again (a cursor lost, a list that moved): the same jobs count nothing new.
    assert await write(store, read_from="c1", cursor="c2", jobs=jobs) == 0
    # The same id finishing again (a retried job) is a new finish.
    assert await write(store, read_from="c2", cursor="c3", jobs=[job("a", NOW)]) == 1
    hour = await store.read(Window.HOUR, None, NOW)
    assert len(hour.points) == 60 and hour.step_s == 60
    by_minute = {int(p.at.timestamp()): (p.completed, p.failed) for p in hour.points}
    assert by_minute[(NOW - 61) // 60 * 60] == (1, 1)
    assert by_minute[NOW // 60 * 60] == (2, 0)
    assert hour.points[-1].enqueued == 5
    assert hour.since is not None and int(hour.since.timestamp()) == NOW
    queue = await store.read(Window.HOUR, "q", NOW)
    assert sum(p.completed for p in queue.points) == 2  # "other" was not a followed queue
    assert queue.points[-1].enqueued == 3
    day = await store.read(Window.DAY, None, NOW)
    assert len(day.points) == 96 and sum(p.completed + p.failed for p in day.points) == 4


async def test_old_steps_are_trimmed_and_keys_expire(redis_client: redis.asyncio.Redis) -> None:
    store = SeriesStore(redis_client, "jb:", "src")
    await store.hold_lease("t1", 10_000)
    await write(store, jobs=[job(f"j{i}", NOW - i * 60) for i in range(60)])
    cursor = "c1"
    # Two hours of steps later, every minute sampled: the hour's hash keeps one window.
    for n, minute in enumerate(range(1, 121)):
        await write(store, read_from=cursor, cursor=f"c{n + 2}", now_s=NOW + minute * 60)
        cursor = f"c{n + 2}"
    key = store.points_key(Window.HOUR)
    fields = await redis_client.hkeys(key)
    steps = {f for f in fields if f[:2] in (b"c:", b"f:", b"e:")}
    assert len(steps) <= 60  # depth samples of the last 60 minutes only
    assert all(int(f[2:]) > NOW + 60 * 60 for f in steps)
    for k in (key, store.points_key(Window.DAY), store.seen_key, store.cursor_key):
        assert 0 < await redis_client.ttl(k) <= TTL_S
    # A job older than the day's window is not counted (nor kept in the seen set).
    assert await write(store, read_from=cursor, cursor="z", jobs=[job("old", NOW - 26 * 3600)]) == 0


async def test_hostile_names_stay_in_their_own_keys(redis_client: redis.asyncio.Redis) -> None:
    store = SeriesStore(redis_client, "jb:", "s:{x}")
    await store.hold_lease("t1", 10_000)
    queue = "q:1h\x00<b>"
    assert await write(store, queue_depths=[(queue, 7)], jobs=[job("a", NOW, queue=queue)]) == 1
    series = await store.read(Window.HOUR, queue, NOW)
    assert series.points[-1].enqueued == 7 and series.points[-1].completed == 1
    # A broken field reads as unknown, not as an error.
    await redis_client.hset(store.points_key(Window.HOUR, queue), f"c:{NOW // 60 * 60}", "x")
    assert (await store.read(Window.HOUR, queue, NOW)).points[-1].completed == 0


@pytest.mark.parametrize("system", ["rq", "autumn"])
async def test_an_operator_redis_user_keeps_the_lease_and_writes(
    redis_url: str, sync_redis, system: str
) -> None:
    """The user `jobbridge acl --role operator` prints may renew the lease (SET PX, not
    PEXPIRE) and run the series' write script, whatever the source's system."""
    from jobbridge.acl import acl_rules
    from jobbridge.settings import SourceConfig

    source = SourceConfig(name="src", system=system, redis_url=redis_url)
    user = f"series-operator-{system}"
    rules = acl_rules([source], "operator")
    sync_redis.execute_command("ACL", "SETUSER", user, "reset", "on", ">pw", *rules)
    client = redis.asyncio.Redis.from_url(redis_url.replace("redis://", f"redis://{user}:pw@"))
    try:
        store = SeriesStore(client, source.jobbridge_prefix, "src")
        assert await store.hold_lease("t1", 10_000)
        assert await store.hold_lease("t1", 10_000)  # renewed
        assert await write(store, "t1", jobs=[job("a", NOW), job("b", NOW, failed=True)]) == 2
        series = await store.read(Window.HOUR, None, NOW)
        assert sum(p.completed for p in series.points) == 1
        assert sum(p.failed for p in series.points) == 1
    finally:
        await client.aclose()
        sync_redis.execute_command("ACL", "DELUSER", user)
