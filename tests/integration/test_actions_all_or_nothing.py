"""Issue 15, class 2: an action is all or nothing.

Redis keeps the writes a Lua script made before one of its commands failed on a key of another
type, so a script that met such a key half-way left a job half acted on (out of its queue and
in no list, its audit entry missing). For every action script of every system, and for every
key it takes (``KEYS[n]`` as its header lists them: a key added to a script is tested here
without editing this file), a real job is set up in the state the action needs, that one key
is made to hold another type, and the action runs through the service, as the API runs it.
The reply must be a refusal naming the key (422, never 503), and nothing may change: every key
of the database dumps byte-equal before and after (the audit list gains only the refusal's own
entry, and not even that when it is the key), and nothing is published.

Each key is made wrong-typed twice: before the action starts (Python's own reads see it first)
and between Python's reads and the script (the script's check alone stands in the way).
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
import redis
import redis.asyncio
from rq import Queue
from rq.job import JobStatus as RqStatus
from rq.registry import FailedJobRegistry

from jobbridge.adapters.autumn.adapter import AutumnAdapter
from jobbridge.adapters.celery import index_store, index_summary
from jobbridge.adapters.celery.adapter import CeleryAdapter
from jobbridge.adapters.celery.index_store import IndexKeyWrongType
from jobbridge.adapters.operator_log import parse_audit
from jobbridge.adapters.rq.adapter import RqAdapter
from jobbridge.adapters.scripts import BoundScripts
from jobbridge.model import Action, ActionResult, Outcome
from jobbridge.service import JobService
from tests.autumn.autumn_fixtures import Autumn, failing_job
from tests.celery.celery_support import client_app, realistic_meta, send
from tests.lua_files import FILES
from tests.rq import tasks as rq_tasks
from tests.rq.rq_support import rq_api

pytestmark = pytest.mark.redis

AUDIT = "jobbridge:audit"
SOURCE = "src"

# ------------------------------------------------------------------ what each script takes


def header_keys(text: str) -> list[int]:
    """The n of every ``-- KEYS[n]:`` line of a script's header (``KEYS[1..3]`` are the
    prelude's, shared by every action script)."""
    return sorted({int(n) for n in re.findall(r"^-- KEYS\[(\d+)\]:", text, re.MULTILINE)})


def checked_types(text: str) -> dict[int, str]:
    """KEYS[n] -> the type the script's check block expects of it."""
    return {int(n): t for n, t in re.findall(r"\{KEYS\[(\d+)\], '(\w+)'\}", text)}


def shared_types() -> dict[int, str]:
    """KEYS[1..3] (the prelude's) -> the type jb_wrong_type expects of each."""
    listed = re.search(r"JB_SHARED_TYPES = \{([^}]*)\}", FILES["_prelude"])
    assert listed is not None
    return dict(enumerate(re.findall(r"'(\w+)'", listed.group(1)), start=1))


SHARED_TYPES = shared_types()
#: any_refuse writes nothing but the audit entry, after checking the audit list's type itself
#: (tests/integration/test_forged_keys.py::test_a_refusal_stands_when_the_audit_list_is_not_a_list)
ACTION_SCRIPTS = sorted(name for name in FILES if not name.startswith("_") and name != "any_refuse")
INDEX_SCRIPT = index_store.SCRIPT


def script_keys(name: str) -> dict[int, str]:
    """Every KEYS[n] an action script takes -> the type it must hold."""
    own = header_keys(FILES[name])
    types = {**SHARED_TYPES, **checked_types(FILES[name])}
    missing = [n for n in own if n not in types]
    assert not missing, f"{name}.lua takes KEYS{missing} but does not check their type"
    return {n: types[n] for n in sorted({*SHARED_TYPES, *own})}


def index_keys() -> dict[int, str]:
    own = header_keys(INDEX_SCRIPT)
    assert own == [1, 2, 3, 4, 5, 6], own
    return {n: "hash" if n == 6 else "zset" for n in own}


CASES = [(name, n) for name in ACTION_SCRIPTS for n in script_keys(name)]


def test_every_script_and_key_is_covered() -> None:
    """The table above covers all eleven action scripts (a new one needs a setup below)."""
    assert set(ACTION_SCRIPTS) == set(SETUPS), set(ACTION_SCRIPTS) ^ set(SETUPS)
    # the prelude's own KEYS (the audit list, the lifecycle keys) are checked by every script
    assert sorted(SHARED_TYPES) == header_keys(FILES["_prelude"])
    assert len(CASES) >= 11 * 4


# ------------------------------------------------------------------ the database, compared


def everything(conn: redis.Redis) -> dict[bytes, bytes | None]:
    """Every key of the (small, private) test database -> its DUMP; but the app's own
    bookkeeping of its replicas and its chart series, which a running app keeps writing."""
    own = (b"jobbridge:state:", b"jobbridge:series:")
    keys = sorted(k for k in conn.scan_iter(count=1000) if not k.startswith(own))
    return dict(zip(keys, [conn.dump(k) for k in keys], strict=True))


def make_wrong(conn: redis.Redis, key: bytes | str, expected: str) -> None:
    """Replace a key by one of another type than ``expected``."""
    conn.delete(key)
    if expected == "string":
        conn.sadd(key, "not a string")
    else:
        conn.set(key, "not a " + expected)


def assert_unchanged(
    conn: redis.Redis, before: dict[bytes, bytes | None], wrong: bytes, result: ActionResult
) -> None:
    """Nothing changed but the audit list, which gained the refusal's entry alone."""
    after = everything(conn)
    audit = AUDIT.encode()
    keys_before, keys_after = set(before) - {audit}, set(after) - {audit}
    assert keys_after == keys_before, (
        f"keys appeared {keys_after - keys_before} or vanished {keys_before - keys_after}"
    )
    changed = [k for k in keys_before if before[k] != after[k]]
    assert not changed, f"{result.message!r}: changed {changed}"
    if wrong == audit:
        assert before[audit] == after[audit]
        return
    new = conn.llen(audit) - (0 if before.get(audit) is None else _restored_len(conn, before))
    assert new == 1, f"{new} audit entries for one refusal"
    entry = parse_audit(conn.lindex(audit, 0) or b"")
    assert entry is not None and entry.outcome == "corrupt", entry
    assert _key_words(wrong) in entry.message, entry


def _restored_len(conn: redis.Redis, before: dict[bytes, bytes | None]) -> int:
    scratch = b"test:audit-before"
    dumped = before[AUDIT.encode()]
    assert dumped is not None
    conn.restore(scratch, 0, dumped, replace=True)
    length = int(conn.llen(scratch))
    conn.delete(scratch)
    return length


def _key_words(key: bytes) -> str:
    return "key " + key.decode()


def assert_names_key(result: ActionResult, key: bytes, expected: str) -> None:
    assert result.outcome is Outcome.CORRUPT, result
    assert _key_words(key) in result.message, result.message
    assert f"expected a {'sorted set' if expected == 'zset' else expected}" in result.message
    assert "nothing was changed" in result.message, result.message


# ------------------------------------------------------------------ jobs in each state


@dataclass
class Setup:
    service: JobService
    action: Action
    job_id: str
    #: the adapter's bound action scripts (to step in between Python's reads and the script)
    scripts: BoundScripts
    script: str


Maker = Callable[[str, redis.Redis, redis.asyncio.Redis], Awaitable[Setup]]


def _service(adapter: Any) -> JobService:
    return JobService({SOURCE: adapter}, cache_ttl_s=0.0)


async def _autumn(action: Action, url: str, conn: redis.Redis, client: Any) -> Setup:
    adapter = AutumnAdapter(client, source=SOURCE, queues=["default"])
    app = Autumn(conn)
    if action is Action.CANCEL:
        # unique: the cancel compares-and-deletes its lock (KEYS[9])
        job_id = app.enqueue("noop", {"k": 1}, unique="pending")
        assert job_id is not None
    else:
        # unique: the retry takes its lock again (KEYS[8])
        job_id = failing_job(app, unique="running")
    return Setup(_service(adapter), action, job_id, adapter._scripts, action.value)


def _rq_job(conn: redis.Redis, state: str) -> str:
    """An RQ job written by RQ's own API: queued, started on worker w1, or failed."""
    queue = Queue("default", connection=conn)
    job = queue.enqueue(rq_tasks.fail, "boom")
    if state == "queued":
        return str(job.id)
    queue.remove(job)  # what a worker's pop does
    if state == "started":
        conn.sadd("rq:workers", "rq:worker:w1")  # a live worker: stop asks only those
        job.worker_name = "w1"
        job.set_status(RqStatus.STARTED, pipeline=None)
        job.save()
        return str(job.id)
    job.set_status(RqStatus.FAILED)
    FailedJobRegistry(queue=queue).add(job, ttl=None, exc_string="Traceback: boom")
    return str(job.id)


async def _rq(action: Action, url: str, conn: redis.Redis, client: Any) -> Setup:
    adapter = RqAdapter(client, source=SOURCE, queues=["default"])
    state = {Action.CANCEL: "queued", Action.STOP: "started"}.get(action, "failed")
    return Setup(_service(adapter), action, _rq_job(conn, state), adapter.scripts, action.value)


async def _celery(action: Action, url: str, conn: redis.Redis, client: Any) -> Setup:
    adapter = CeleryAdapter(client, source=SOURCE, queues=["celery"])
    if action in (Action.CANCEL, Action.REVOKE):
        with client_app(url) as capp:
            job_id = send(capp, "add", 1, 2).id
    else:
        job_id = "failed-task-1"
        meta = realistic_meta(job_id, "FAILURE", datetime.now(UTC))
        conn.set(f"celery-task-meta-{job_id}", meta, ex=86_400)
        await adapter.index.ingest([(job_id.encode(), meta, 0)])
    return Setup(_service(adapter), action, job_id, adapter.scripts, action.value)


SETUPS: dict[str, tuple[Callable[..., Awaitable[Setup]], Action]] = {
    f"{system}_{action.value}": (make, action)
    for system, make, actions in (
        ("autumn", _autumn, (Action.CANCEL, Action.RETRY, Action.DISCARD)),
        ("rq", _rq, (Action.CANCEL, Action.RETRY, Action.DISCARD, Action.STOP)),
        ("celery", _celery, (Action.CANCEL, Action.RETRY, Action.DISCARD, Action.REVOKE)),
    )
    for action in actions
}


@pytest.fixture
async def published(redis_url: str) -> AsyncIterator[Callable[[], Awaitable[list[Any]]]]:
    """Listens to every channel (so a revoke or a stop has its listener); the messages
    received since, when called."""
    client = redis.asyncio.Redis.from_url(redis_url)
    pubsub = client.pubsub()
    await pubsub.psubscribe("*")
    await pubsub.get_message(timeout=1.0)  # the subscription's confirmation

    async def drain() -> list[Any]:
        got = []
        while (message := await pubsub.get_message(timeout=0.2)) is not None:
            if message["type"] == "pmessage":
                got.append(message["channel"])
        return got

    yield drain
    await pubsub.aclose()
    await client.aclose()


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[redis.asyncio.Redis]:
    """The adapter's client, as jobbridge.sources.connect makes it."""
    made = redis.asyncio.Redis.from_url(redis_url, encoding_errors="surrogateescape")
    yield made
    await made.aclose()


async def setup(name: str, redis_url: str, conn: redis.Redis, client: Any) -> Setup:
    make, action = SETUPS[name]
    return await make(action, redis_url, conn, client)


async def act(s: Setup) -> ActionResult:
    return await s.service.act(SOURCE, s.job_id, s.action, "alice")


class _Probe(Exception):
    def __init__(self, keys: list[Any]) -> None:
        self.keys = keys


async def keys_passed(s: Setup) -> list[bytes]:
    """The KEYS the adapter passes its script for this job (the script is not run)."""
    real = s.scripts.scripts[s.script]

    async def probe(*, keys: list[Any], args: list[Any]) -> Any:
        raise _Probe(keys)

    s.scripts.scripts[s.script] = probe  # type: ignore[assignment]
    try:
        await act(s)
    except _Probe as probe_done:
        return [
            k.encode("utf-8", "surrogateescape") if isinstance(k, str) else k
            for k in probe_done.keys
        ]
    finally:
        s.scripts.scripts[s.script] = real
    raise AssertionError("the action never reached its script")


# ------------------------------------------------------------------ the tests


@pytest.mark.parametrize("name", ACTION_SCRIPTS)
async def test_each_setup_is_one_the_action_applies_to(
    name, redis_url, sync_redis, client, published
) -> None:
    """Control: with every key of its type, the action is done (so a refusal below is the
    check's, and the comparison below sees an action's writes)."""
    s = await setup(name, redis_url, sync_redis, client)
    before = everything(sync_redis)
    result = await act(s)
    assert result.outcome is Outcome.DONE, result
    assert everything(sync_redis) != before


@pytest.mark.slow
@pytest.mark.parametrize(("name", "n"), CASES)
async def test_key_of_another_type_between_read_and_script(
    name, n, redis_url, sync_redis, client, published
) -> None:
    """The key turns wrong-typed after Python read what it needs: the script's check refuses,
    naming the key, and writes nothing but the refusal's audit entry."""
    s = await setup(name, redis_url, sync_redis, client)
    expected = script_keys(name)[n]
    real = s.scripts.scripts[s.script]
    seen: dict[str, Any] = {}

    async def wrong_first(*, keys: list[Any], args: list[Any]) -> Any:
        key = keys[n - 1]
        seen["key"] = key.encode("utf-8", "surrogateescape") if isinstance(key, str) else key
        make_wrong(sync_redis, key, expected)
        seen["before"] = everything(sync_redis)
        await published()
        return await real(keys=keys, args=args)

    s.scripts.scripts[s.script] = wrong_first  # type: ignore[assignment]
    result = await act(s)
    assert "key" in seen, result
    assert_names_key(result, seen["key"], expected)
    assert_unchanged(sync_redis, seen["before"], seen["key"], result)
    assert await published() == []


#: (script, KEYS[n]) whose key Python reads first, finding the job is not there: the reply
#: says so truthfully (the message is in no list, so it is not found), and changes nothing
NOT_FOUND_FIRST = {("celery_cancel", 4)}


@pytest.mark.slow
@pytest.mark.parametrize(("name", "n"), CASES)
async def test_key_of_another_type_before_the_action(
    name, n, redis_url, sync_redis, client, published
) -> None:
    """The key is wrong-typed before the action starts (the issue's repros: ``SET
    jobbridge:audit x``, ``SET rq:queues x``, ``SET rq:canceled:default x``): the action is
    refused, never a 503, naming the key, and nothing changes."""
    s = await setup(name, redis_url, sync_redis, client)
    expected = script_keys(name)[n]
    first, second = await keys_passed(s), await keys_passed(s)
    if first[n - 1] != second[n - 1]:
        # the new job's key, named after an id chosen afresh by each call: nobody can make it
        # wrong-typed beforehand (the race test above makes it so)
        assert s.action is Action.RETRY and first[n - 1] not in everything(sync_redis)
        return
    key = first[n - 1]
    make_wrong(sync_redis, key, expected)
    before = everything(sync_redis)
    await published()
    result = await act(s)
    assert result.outcome is not Outcome.UNAVAILABLE, result
    assert await published() == []
    if (name, n) in NOT_FOUND_FIRST:
        assert result.outcome is Outcome.NOT_FOUND, result
        assert {k for k in before if before[k] != everything(sync_redis).get(k)} <= {AUDIT.encode()}
        return
    assert_names_key(result, key, expected)
    assert_unchanged(sync_redis, before, key, result)


@pytest.mark.parametrize("n", sorted(index_keys()))
async def test_index_script_refuses_a_key_of_another_type(n, redis_url, sync_redis, client) -> None:
    """The Celery index writer (celery/lua/index/results.lua) writes nothing when one of its
    keys holds another type, and says which."""
    adapter = CeleryAdapter(client, source=SOURCE, queues=["celery"])
    index = adapter.index
    done = realistic_meta("done-1", "SUCCESS", datetime.now(UTC))
    await index.ingest([(b"done-1", done, 0)])  # something already indexed, to keep
    buckets = [index.key(b) for b in index_summary.BUCKETS]
    key = [*buckets, index.rows][n - 1]
    expected = index_keys()[n]
    make_wrong(sync_redis, key, expected)
    before = everything(sync_redis)
    metas = [
        (f"t-{state}".encode(), realistic_meta(f"t-{state}", state, datetime.now(UTC)), 0)
        for state in ("SUCCESS", "FAILURE", "REVOKED", "STARTED", "RETRY")
    ]
    with pytest.raises(IndexKeyWrongType) as raised:
        await index.ingest(metas)
    assert f"key {key} is " in str(raised.value) and "nothing was written" in str(raised.value)
    with pytest.raises(IndexKeyWrongType):
        await index.trim()
    assert everything(sync_redis) == before


# ------------------------------------------------------------------ through the HTTP API


async def test_api_refuses_with_422_naming_the_key_and_loses_nothing(redis_url, sync_redis) -> None:
    """The issue's first repro through the API: ``SET jobbridge:audit x``, then cancel and
    retry RQ jobs. Each is refused (422, the key named), the jobs stay where they were, and
    once the key is fixed the same actions are done."""
    queued = _rq_job(sync_redis, "queued")
    failed = _rq_job(sync_redis, "failed")
    sync_redis.set(AUDIT, "x")
    before = everything(sync_redis)
    async with rq_api(redis_url) as api:
        for job_id, action in ((queued, "cancel"), (failed, "retry")):
            status, body = await api.act(job_id, action)
            assert status == 422, body
            assert body["error"] == "corrupt" and body["id"] == job_id, body
            assert body["message"] == (
                f"The {action} of job {job_id} was refused: key {AUDIT} is a string, "
                "expected a list; nothing was changed."
            )
        assert everything(sync_redis) == before
        assert Queue("default", connection=sync_redis).get_job_ids() == [queued]
        assert failed in FailedJobRegistry("default", connection=sync_redis).get_job_ids()

        sync_redis.delete(AUDIT)
        for job_id, action in ((queued, "cancel"), (failed, "retry")):
            status, body = await api.act(job_id, action)
            assert status == 200, body
        assert [e["outcome"] for e in await api.audit()] == ["done", "done"]


async def test_a_second_action_after_a_refusal_is_not_a_503(redis_url, sync_redis) -> None:
    """Before the fix every later action on that Redis answered 503: now each one is refused
    on its own, and the rest of the source reads as before."""
    queued = [_rq_job(sync_redis, "queued") for _ in range(3)]
    sync_redis.set("rq:canceled:default", "x")
    async with rq_api(redis_url) as api:
        for job_id in queued:
            status, body = await api.act(job_id, "cancel")
            assert status == 422 and "key rq:canceled:default is a string" in body["message"]
        assert Queue("default", connection=sync_redis).get_job_ids() == queued
        status, _ = await api.get(f"/api/sources/{api.source}/snapshot")
        assert status == 200
    assert json.loads(sync_redis.lindex(AUDIT, 0) or b"{}")["outcome"] == "corrupt"


# ------------------------------------------------------------------ a value a write refuses


@pytest.mark.parametrize("ttl", ["1e300", "inf", "99999999999999999999", "1.5", "nan", "0x10"])
async def test_rq_retry_of_a_ttl_expire_would_refuse_writes_nothing(
    ttl, redis_url, sync_redis, client, published
) -> None:
    """rq_retry.lua gave the new hash the old job's ttl with EXPIRE after writing it: a ttl
    EXPIRE refuses left an orphan hash and a 503. Such a ttl is refused first."""
    s = await setup("rq_retry", redis_url, sync_redis, client)
    sync_redis.hset(f"rq:job:{s.job_id}", "ttl", ttl)
    before = everything(sync_redis)
    result = await act(s)
    assert result.outcome is Outcome.CORRUPT, result
    assert (
        "ttl field is not an integer" in result.message and "Nothing was changed" in result.message
    )
    after = everything(sync_redis)
    audit = AUDIT.encode()
    assert {k: v for k, v in after.items() if k != audit} == before
    assert json.loads(sync_redis.lindex(AUDIT, 0) or b"{}")["outcome"] == "corrupt"


@pytest.mark.parametrize("ttl", ["-1", "60", "999999999999"])
async def test_rq_retry_keeps_a_ttl_rq_wrote(ttl, redis_url, sync_redis, client, published) -> None:
    s = await setup("rq_retry", redis_url, sync_redis, client)
    sync_redis.hset(f"rq:job:{s.job_id}", "ttl", ttl)
    result = await act(s)
    assert result.outcome is Outcome.DONE and result.new_id, result
    assert sync_redis.hget(f"rq:job:{result.new_id}", "ttl") == ttl.encode()
    left = sync_redis.ttl(f"rq:job:{result.new_id}")
    assert left == -1 if ttl == "-1" else int(ttl) - 2 <= left <= int(ttl)
