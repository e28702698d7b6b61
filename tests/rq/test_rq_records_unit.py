"""RQ's hashes mapped onto the shared model: pure functions, no Redis.

Hashes are made by RQ's own ``Job.to_dict`` (encoded as redis-py stores them) wherever
possible, and by hand only where a hash is broken on purpose.
"""

from __future__ import annotations

import enum
import pickle
import random
import zlib
from datetime import UTC, datetime
from typing import Any

import pytest
import redis
from redis.connection import Encoder
from rq.cron import CronJob
from rq.job import Job
from rq.job import JobStatus as RqStatus
from rq.results import Result
from rq.serializers import JSONSerializer
from rq.utils import utcformat, utcparse

from jobbridge.adapters.fields import MAX_ERROR_CHARS, MAX_NAME_CHARS
from jobbridge.adapters.rq import calls, hashes, records
from jobbridge.adapters.rq import worker_hashes as workers
from jobbridge.adapters.rq.hashes import Found, JobHash, Where
from jobbridge.adapters.rq.keys import RqKeys
from jobbridge.model import Action, JobStatus

#: a client that is never connected: Job.create and to_dict need one but send nothing
OFFLINE = redis.Redis(host="127.0.0.1", port=1)
_ENCODER = Encoder("utf-8", "strict", False)
SOURCE = "rq"


def stored(mapping: dict[str, Any]) -> dict[str, bytes]:
    """A ``to_dict`` as Redis stores it (redis-py's own encoding of each value)."""
    out = {}
    for name, value in mapping.items():
        if isinstance(value, enum.Enum):
            value = value.value
        out[name] = _ENCODER.encode(value)
    return out


def rq_hash(func: str = "tests.rq.tasks.add", *args: Any, **options: Any) -> dict[str, bytes]:
    """A job hash as RQ writes it, with ``status`` and any field overridden by ``fields``."""
    fields = options.pop("fields", {})
    kwargs = options.pop("kwargs", {})
    serializer = options.pop("serializer", None)
    job = Job.create(
        func, args=args, kwargs=kwargs, connection=OFFLINE, origin="default", serializer=serializer
    )
    job.enqueued_at = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    data = stored(job.to_dict())
    data.update(stored(fields))
    return data


def as_read(fields: dict[str, bytes], *, exists: bool = True) -> JobHash:
    """A hash as the adapter's capped read gives it: every field read."""
    sizes = {n: len(fields[n]) for n in hashes.LARGE_FIELDS if n in fields}
    return JobHash(exists=exists, fields=fields, sizes=sizes)


def row(fields: dict[str, bytes], found: Found | None = None, **kw: Any):
    job = as_read(fields)
    call = calls.summarize_call(fields["data"]) if fields.get("data") else None
    return records.to_job(
        job, found or Found(Where.QUEUE, "default"), source=SOURCE, job_id="j1", call=call, **kw
    )


# ------------------------------------------------------------------ timestamps and numbers


def test_timestamps_round_trip_with_rq() -> None:
    moment = datetime(2026, 3, 4, 5, 6, 7, 89, tzinfo=UTC)
    text = utcformat(moment)
    assert text == "2026-03-04T05:06:07.000089Z"
    assert hashes.parse_timestamp(text) == utcparse(text) == moment
    assert hashes.parse_timestamp(text.encode()) == moment
    # without microseconds, as old RQ versions wrote it
    assert hashes.parse_timestamp(b"2026-03-04T05:06:07Z") == moment.replace(microsecond=0)
    parsed = hashes.parse_timestamp(b"2026-03-04T05:06:07Z")
    assert parsed is not None and parsed.tzinfo is UTC


def test_timestamps_unset_and_garbage() -> None:
    assert hashes.parse_timestamp(None) is None
    assert hashes.parse_timestamp(b"") is None
    for bad in (b"yesterday", b"\xff\xfe", b"2026-13-01T00:00:00Z", b"9" * 100, "2026-01-01"):
        with pytest.raises(ValueError):
            hashes.parse_timestamp(bad)


def test_timestamps_read_as_the_same_instant_in_any_zone() -> None:
    local = datetime(2026, 1, 1, 12, 0, tzinfo=UTC).astimezone()
    assert hashes.parse_timestamp("2026-01-01T12:00:00.000000Z") == local


def test_parse_int_and_epoch() -> None:
    assert hashes.parse_int(b"180") == 180
    assert hashes.parse_int(b"-1") == -1
    assert hashes.parse_int(b"") is None
    for bad in (b"1.5", b"ten", b"\xff", b"9" * 30):
        with pytest.raises(ValueError):
            hashes.parse_int(bad)
    assert hashes.epoch_datetime(0.0) == datetime(1970, 1, 1, tzinfo=UTC)
    for bad in (float("inf"), float("nan"), -1.0, 1e300, b"x", None):
        assert hashes.epoch_datetime(bad) is None


# ------------------------------------------------------------------ statuses


def test_every_rq_status_is_mapped() -> None:
    for status in RqStatus:
        shared, word = hashes.map_status(status.value.encode())
        assert shared is not JobStatus.UNKNOWN, status
        assert word == status.value


@pytest.mark.parametrize(
    ("word", "shared"),
    [
        ("created", JobStatus.ENQUEUED),
        ("queued", JobStatus.ENQUEUED),
        ("ready_to_enqueue", JobStatus.ENQUEUED),
        ("deferred", JobStatus.SCHEDULED),  # hashes.STATUSES; the row says blocked
        ("scheduled", JobStatus.SCHEDULED),
        ("started", JobStatus.RUNNING),
        ("finished", JobStatus.COMPLETED),
        ("failed", JobStatus.FAILED),
        ("stopped", JobStatus.FAILED),
        ("canceled", JobStatus.CANCELED),
        ("rate_limited", JobStatus.BLOCKED),
    ],
)
def test_status_words(word: str, shared: JobStatus) -> None:
    assert hashes.map_status(word) == (shared, word)


def test_unknown_status_words() -> None:
    assert hashes.map_status(b"discarded") == (JobStatus.UNKNOWN, "discarded")
    assert hashes.map_status(None) == (JobStatus.UNKNOWN, "")
    status, word = hashes.map_status(b"x" * 10_000)
    assert status is JobStatus.UNKNOWN and len(word) < 300


# ------------------------------------------------------------------ rows of real RQ hashes


def test_queued_row_from_rq_hash() -> None:
    fields = rq_hash("tests.rq.tasks.add", 2, kwargs={"b": 3, "principal_id": "alice"})
    fields.update(stored({"status": "queued", "enqueued_at": "2026-01-02T03:04:05.678901Z"}))
    job = row(fields)
    assert job.system == "rq" and job.id == "j1" and job.queue == "default"
    assert job.name == "tests.rq.tasks.add"
    assert (job.status, job.raw_status) == (JobStatus.ENQUEUED, "queued")
    assert job.enqueued_at == datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    assert job.principal_id == "alice"
    assert job.payload_preview.startswith("tests.rq.tasks.add(2, b=3")
    assert job.actions == (Action.CANCEL,)
    assert job.problem is None


def test_json_serialized_job() -> None:
    fields = rq_hash(
        "tests.rq.tasks.echo",
        {"x": [1, 2]},
        serializer=JSONSerializer,
        kwargs={"request_id": "r-9"},
        fields={"status": "queued"},
    )
    job = row(fields)
    assert job.name == "tests.rq.tasks.echo"
    assert job.correlation_id == "r-9"
    assert job.problem is None


def test_retry_waiting_for_its_interval_is_retrying() -> None:
    # As an rq 3.0 worker leaves a job that raised with Retry(max=2, interval=600) left.
    fields = rq_hash(
        "tests.rq.tasks.fail",
        fields={
            "status": "scheduled",
            "started_at": "2026-01-02T03:04:06.000000Z",
            "ended_at": "2026-01-02T03:04:07.000000Z",
            "worker_name": "w1",
            "retries_left": 1,
            "retry_intervals": "[600, 600]",
        },
    )
    due = datetime(2026, 1, 2, 3, 14, 7, tzinfo=UTC)
    job = row(fields, Found(Where.SCHEDULED, "default", due.timestamp()))
    assert job.status is JobStatus.RETRYING and job.raw_status == "scheduled"
    assert job.scheduled_for == due
    assert job.actions == (Action.CANCEL,)
    assert job.retries_left == 1 and job.extra["last worker"] == "w1"
    assert job.retries_max is None  # it has run: RQ keeps no maximum
    assert job.finished_at is None and job.worker is None


def test_first_time_scheduled_job_is_scheduled() -> None:
    fields = rq_hash(fields={"status": "scheduled", "retries_left": 3})
    job = row(fields, Found(Where.SCHEDULED, "default", 1_900_000_000.0))
    assert job.status is JobStatus.SCHEDULED
    assert job.scheduled_for == datetime.fromtimestamp(1_900_000_000, tz=UTC)
    # no worker has taken it: retries_left is still the Retry's max
    assert (job.retries_left, job.retries_max) == (3, 3)


def test_deferred_job_names_its_dependencies() -> None:
    fields = rq_hash(
        fields={"status": "deferred", "dependency_id": "a", "dependency_ids": '["a", "b"]'}
    )
    job = row(fields, Found(Where.DEFERRED, "default", 1_700_000_000.0))
    assert (job.status, job.raw_status) == (JobStatus.BLOCKED, "deferred")
    assert job.waits_for == ("a", "b")
    assert job.scheduled_for is None  # a deferred score is when it was registered
    assert job.actions == (Action.CANCEL,)


def test_failed_and_stopped_rows() -> None:
    for word in ("failed", "stopped"):
        fields = rq_hash(
            fields={
                "status": word,
                "started_at": "2026-01-02T03:04:06.000000Z",
                "ended_at": "2026-01-02T03:04:07.500000Z",
            }
        )
        job = row(fields, Found(Where.FAILED, "default", 1e9), last_error="ValueError: x")
        assert (job.status, job.raw_status) == (JobStatus.FAILED, word)
        assert job.finished_at == datetime(2026, 1, 2, 3, 4, 7, 500000, tzinfo=UTC)
        assert job.last_error == "ValueError: x"
        assert job.actions == (Action.RETRY, Action.DISCARD)


def test_failed_without_data_can_only_be_discarded() -> None:
    fields = rq_hash(fields={"status": "failed"})
    del fields["data"]
    job = row(fields, Found(Where.FAILED, "default", 1e9))
    assert job.actions == (Action.DISCARD,)
    assert job.problem is not None and "no data" in job.problem
    # the name still comes from the description
    assert job.name == "tests.rq.tasks.add"


def test_started_row_in_wip_can_be_stopped_and_goes_overdue() -> None:
    fields = rq_hash(
        fields={
            "status": "started",
            "worker_name": "w-7",
            "started_at": "2026-01-02T03:04:06.000000Z",
            "last_heartbeat": "2026-01-02T03:04:36.000000Z",
        }
    )
    found = Found(Where.WIP, "default", 1_000.0, "0" * 32)
    job = row(fields, found)
    assert (job.status, job.raw_status, job.worker) == (JobStatus.RUNNING, "started", "w-7")
    assert job.actions == (Action.STOP,)
    assert job.extra["execution"] == "0" * 32
    assert job.extra["last heartbeat"] == "2026-01-02 03:04:36Z"
    assert records.with_deadline(job, 2_000.0, now_s=1_500.0).overdue_since is None
    late = records.with_deadline(job, 1_000.0, now_s=1_500.0)
    assert late.overdue_since == datetime.fromtimestamp(1_000, tz=UTC)
    # a deadline that is not a time does not make anything overdue
    assert records.with_deadline(job, float("inf"), now_s=1_500.0).overdue_since is None


def test_intermediate_row_is_taken_not_cancelable() -> None:
    fields = rq_hash(fields={"status": "queued"})
    job = row(fields, Found(Where.INTERMEDIATE, "default"))
    assert (job.status, job.raw_status) == (JobStatus.RUNNING, "intermediate")
    assert job.actions == ()


def test_finished_row() -> None:
    fields = rq_hash(fields={"status": "finished", "ended_at": "2026-01-02T03:04:08.000000Z"})
    job = row(fields, Found(Where.FINISHED, "default", 1e9))
    assert job.status is JobStatus.COMPLETED and job.actions == ()
    assert job.finished_at == datetime(2026, 1, 2, 3, 4, 8, tzinfo=UTC)


def test_returned_retry_counts_attempts() -> None:
    fields = rq_hash(fields={"status": "queued", "number_of_retries": 2})
    assert row(fields).attempt == 3


def test_queue_named_by_the_hash_differs() -> None:
    fields = rq_hash(fields={"status": "queued"})
    job = row(fields, Found(Where.QUEUE, "other"))
    assert job.queue == "other"
    assert job.problem is not None and "names queue default" in job.problem


def test_too_large_data_is_named_and_description_shown() -> None:
    fields = rq_hash(fields={"status": "queued"})
    read = JobHash(
        exists=True,
        fields={k: v for k, v in fields.items() if k != "data"},
        sizes={"data": 10 * 1024 * 1024, "description": len(fields["description"])},
    )
    job = records.to_job(read, Found(Where.QUEUE, "default"), source=SOURCE, job_id="j1")
    assert job.problem is not None and "10.0 MB" in job.problem
    assert job.name == "tests.rq.tasks.add"
    assert job.payload_preview.startswith("tests.rq.tasks.add(")
    assert job.actions == (Action.CANCEL,)


def test_pickled_argument_that_needs_a_class_is_partly_decoded() -> None:
    fields = rq_hash("tests.rq.tasks.echo", datetime(2026, 1, 1, tzinfo=UTC))
    fields.update(stored({"status": "queued"}))
    job = row(fields)
    assert job.name == "tests.rq.tasks.echo"
    assert job.problem is None
    assert "payload" in job.extra


# ------------------------------------------------------------------ broken hashes


def test_dangling_member_is_a_flagged_row() -> None:
    job = records.to_job(
        JobHash(exists=False),
        Found(Where.FAILED, "default", 1e9),
        source=SOURCE,
        job_id="gone",
        last_error="ValueError: kept in the results stream",
    )
    assert job.problem == "its job hash no longer exists"
    assert (job.status, job.queue, job.actions) == (JobStatus.FAILED, "default", ())
    assert job.last_error == "ValueError: kept in the results stream"


def test_wrong_type_key_is_a_flagged_row() -> None:
    job = records.to_job(
        JobHash(exists=True, wrong_type=True),
        Found(Where.QUEUE, "default"),
        source=SOURCE,
        job_id="x",
    )
    assert job.problem == "its key holds another type than a hash"
    assert job.status is JobStatus.ENQUEUED and job.actions == ()


GARBAGE = {
    "status": b"\xff\xfe not a status",
    "origin": b"\xc3\x28",
    "created_at": b"\x00\x01",
    "enqueued_at": b"last tuesday",
    "started_at": b"2026-99-99T99:99:99Z",
    "ended_at": b"9" * 500,
    "last_heartbeat": b"-",
    "worker_name": b"\xff" * 1000,
    "timeout": b"forever",
    "retries_left": b"1e999",
    "retry_intervals": b"{",
    "number_of_retries": b"-",
    "dependency_id": b"\xff",
    "dependency_ids": b"[[[[",
    "description": b"\xff(\x00)" * 5000,
    "data": b"x\x9c" + b"\x00" * 64,
    "meta": b"\x80\x05garbage",
    "exc_info": b"\x78\x9c\xff",
    "group_id": b"\xff",
}


def test_garbage_in_every_field_becomes_words() -> None:
    job = row(dict(GARBAGE), Found(Where.DEFERRED, "default", float("nan")))
    assert job.problem is not None
    for word in ("status", "enqueued_at", "started_at", "ended_at", "timeout", "retries_left"):
        assert word in job.problem, word
    assert job.status is JobStatus.BLOCKED and job.raw_status == "deferred"
    assert len(job.name) <= MAX_NAME_CHARS and len(job.payload_preview) <= 200
    assert job.enqueued_at is None and job.started_at is None


def test_random_hashes_never_raise() -> None:
    rng = random.Random(1234)
    names = [*hashes.SMALL_FIELDS, *hashes.LARGE_FIELDS]
    for _ in range(300):
        fields = {
            name: bytes(rng.randrange(256) for _ in range(rng.randrange(0, 40)))
            for name in rng.sample(names, rng.randrange(len(names)))
        }
        where = rng.choice(list(Where))
        found = Found(where, "q", rng.choice([None, 1.5, float("inf"), -1.0]))
        job = row(fields, found)
        assert job.id == "j1"
        records.raw_text(as_read(fields))


def test_error_text_from_rq_results() -> None:
    entry = stored(
        Result(
            "j1", Result.Type.FAILED, connection=OFFLINE, exc_string="Traceback\nValueError: x"
        ).serialize()
    )
    raw = {k.encode(): v for k, v in entry.items()}
    assert calls.result_error(raw) == ("Traceback\nValueError: x", None)
    traceback = (
        'Traceback (most recent call last):\n  File "t.py", line 1\n    f()\nValueError: x\n'
    )
    shown = Result("j1", Result.Type.FAILED, connection=OFFLINE, exc_string=traceback).serialize()
    text, problem = calls.result_error({b"exc_string": shown["exc_string"].encode()})
    assert problem is None and text == "ValueError: x\n\n" + traceback
    assert calls.result_error(None) == (None, None)
    assert calls.result_error({b"exc_string": b"not base64!"})[1] is not None
    huge = Result("j1", Result.Type.FAILED, connection=OFFLINE, exc_string="x" * 100_000)
    text, _ = calls.result_error({b"exc_string": huge.serialize()["exc_string"].encode()})
    assert text is not None and len(text) < MAX_ERROR_CHARS + 100


def test_legacy_exc_info() -> None:
    assert calls.legacy_error(zlib.compress(b"ValueError: old")) == ("ValueError: old", None)
    # what RQ's requeue writes: no error
    assert calls.legacy_error(zlib.compress(b"")) == (None, None)


def test_result_description_never_unpickles(tmp_path) -> None:
    marker = tmp_path / "ran"

    class Boom:
        def __reduce__(self):
            import os

            return (os.system, (f"touch {marker}",))

    import base64

    value = base64.b64encode(pickle.dumps(Boom()))
    shown = calls.describe_stream_value(value)
    assert "not" in shown and not marker.exists()
    entry = {b"type": b"1", b"return_value": base64.b64encode(pickle.dumps({"a": 1}))}
    text = calls.describe_result(
        b"1700000000000-0", entry, calls.describe_stream_value(entry[b"return_value"])
    )
    assert "successful" in text and '"a": 1' in text and "2023-11-14" in text


# ------------------------------------------------------------------ wip members


def test_split_wip_member() -> None:
    execution = "a" * 32
    assert records.split_wip_member(f"job-1:{execution}") == ("job-1", execution)
    # 1.x: plain ids, which could hold ':'
    assert records.split_wip_member("job-1") == ("job-1", None)
    assert records.split_wip_member("a:b") == ("a:b", None)
    assert records.split_wip_member(f"a:b:{execution}") == ("a:b", execution)
    assert records.split_wip_member(f":{execution}") == (f":{execution}", None)


# ------------------------------------------------------------------ detail and copies


def test_detail_call_and_raw_text() -> None:
    fields = rq_hash("tests.rq.tasks.add", 2, kwargs={"b": 3}, fields={"status": "queued"})
    summary, shown, serializer = calls.detail_call(fields["data"])
    assert summary.name == "tests.rq.tasks.add" and serializer == "pickle"
    assert "function: tests.rq.tasks.add" in shown and '"b": 3' in shown
    raw = records.raw_text(as_read(fields))
    assert "status: queued" in raw and "data: <" in raw


def test_lifecycle_copy_becomes_a_row() -> None:
    copy = '{"id": "j1", "origin": "default", "status": "failed", "description": "t.f(1)"}'
    job = records.lifecycle_record(SOURCE, copy, "j1", JobStatus.DISCARDED)
    assert (job.status, job.raw_status, job.queue, job.name) == (
        JobStatus.DISCARDED,
        "discarded",
        "default",
        "t.f",
    )
    assert job.actions == () and job.problem is None
    broken = records.lifecycle_record(SOURCE, "{not json", "j1", JobStatus.CANCELED)
    assert broken.status is JobStatus.CANCELED and broken.problem is not None


# ------------------------------------------------------------------ workers


def test_worker_rows() -> None:
    values = [
        b"busy",
        b"default,high",
        b"job-1",
        b"2026-01-02T03:04:05.000000Z",
        b"2026-01-02T03:05:05.000000Z",
        b"3",
        b"1",
        b"host",
        b"4242",
        None,
        b"12.5",
    ]
    worker = workers.to_worker("w1", values)
    assert (worker.state, worker.queues, worker.current_job) == (
        "busy",
        ("default", "high"),
        "job-1",
    )
    assert (worker.successful, worker.failed, worker.pid) == (3, 1, 4242)
    assert worker.problem is None and worker.working_time_s == 12.5
    assert worker.current_jobs == ("job-1",) and worker.last_seen == worker.last_heartbeat
    dead = workers.to_worker("w1", [*values[:-2], b"2026-01-02T03:06:05.000000Z", None])
    assert dead.state == "dead"
    gone = workers.to_worker("w2", [None] * len(workers.WORKER_FIELDS))
    assert gone.state == "dead" and gone.problem is not None
    # RQ 3 keeps the current job in the worker's executions set, not in its hash
    rq3 = workers.to_worker("w3", [b"busy", *[None] * 10], b"job-9:" + b"f" * 32)
    assert rq3.current_job == "job-9"
    bad = workers.to_worker(
        "w4", [b"\xff", b"\xff", None, b"x", b"y", b"-3", b"z", None, b"p", None, b"nan"]
    )
    assert bad.problem is not None and bad.successful is None and bad.pid is None
    assert bad.working_time_s is None and "total_working_time" in bad.problem


# ------------------------------------------------------------------ cron


def test_cron_schedules_from_rq_cron_jobs() -> None:
    import json

    jobs = [
        CronJob("default", func_name="tests.rq.tasks.add", interval=60, args=(1,)),
        CronJob("reports", func_name="tests.rq.tasks.echo", cron="*/5 * * * *", name="report"),
    ]
    raw = json.dumps([j.to_dict() for j in jobs]).encode()
    schedules, problem = workers.cron_schedules(raw, 100)
    assert problem is None
    assert [(s.name, s.schedule) for s in schedules] == [
        ("tests.rq.tasks.add", "every 60s on queue default"),
        ("report", "cron */5 * * * * on queue reports"),
    ]
    assert schedules[1].next_run_at is not None and schedules[0].next_run_at is None
    assert workers.cron_schedules(b"{", 10)[1] is not None
    assert workers.cron_schedules(b'[1, {"name": 2}]', 10) == (
        [],
        "2 of its cron jobs could not be read",
    )


# ------------------------------------------------------------------ keys


def test_keys_match_rq() -> None:
    from rq.executions import Execution
    from rq.queue import Queue
    from rq.registry import (
        CanceledJobRegistry,
        DeferredJobRegistry,
        FailedJobRegistry,
        FinishedJobRegistry,
        ScheduledJobRegistry,
        StartedJobRegistry,
    )
    from rq.worker import Worker

    keys = RqKeys()
    queue = Queue("q1", connection=OFFLINE)
    assert keys.queue("q1") == queue.key and keys.queues == Queue.redis_queues_keys
    assert keys.intermediate("q1") == f"{queue.key}:intermediate"
    for cls, name in [
        (StartedJobRegistry, "wip"),
        (FinishedJobRegistry, "finished"),
        (FailedJobRegistry, "failed"),
        (DeferredJobRegistry, "deferred"),
        (ScheduledJobRegistry, "scheduled"),
        (CanceledJobRegistry, "canceled"),
    ]:
        assert keys.registry(name, "q1") == cls("q1", connection=OFFLINE).key
    job = Job.create("tests.rq.tasks.add", args=(1,), connection=OFFLINE, id="abc")
    assert keys.job("abc") == job.key
    assert keys.dependents("abc") == job.dependents_key
    assert keys.dependencies("abc") == job.dependencies_key == "rq:job::abc:dependencies"
    assert keys.results("abc") == Result.get_key("abc")
    execution = Execution("e1", "abc", connection=OFFLINE, worker_name="w")
    assert keys.execution("abc", "e1") == execution.key
    assert keys.worker("w") == Worker.redis_worker_namespace_prefix + "w"
    assert keys.workers == Worker.redis_workers_keys
    assert keys.worker_executions("w") == execution.worker_executions_key


def test_keys_under_another_prefix() -> None:
    keys = RqKeys("{app}:rq")
    assert keys.queue("default") == "{app}:rq:queue:default"
    assert keys.dependencies("x") == "{app}:rq:job::x:dependencies"
    assert keys.queue_name_of_key("{app}:rq:queue:default") == "default"
    assert keys.queue_name_of_key("rq:queue:default") is None
    assert keys.worker_name_of_key("{app}:rq:worker:w1") == "w1"
    assert keys.cron_job_history("n") == "{app}:rq:cron_job:n:jobs"
