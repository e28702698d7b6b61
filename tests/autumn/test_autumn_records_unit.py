"""Mapping Autumn records onto the shared model: no Redis."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from jobbridge.adapters.autumn import records
from jobbridge.adapters.fields import correlation_of, principal_of
from jobbridge.model import Action, JobRecord, JobStatus

T0 = 1_780_000_000_000  # 2026-05-28T20:26:40Z


def record(**changes: object) -> str:
    base: dict[str, object] = {
        "id": "j1",
        "name": "send_email",
        "queue": "mail",
        "payload": {"to": "a@example.com", "principal_id": "u-7", "request_id": "r-1"},
        "attempt": 1,
        "max_attempts": 5,
        "initial_backoff_ms": 250,
        "enqueued_at_ms": T0,
        "started_at_ms": None,
        "finished_at_ms": None,
        "claimed_by": None,
        "claimed_at_ms": None,
        "last_error": None,
    }
    base.update(changes)
    return json.dumps({k: v for k, v in base.items() if v is not ...})


def to_job(raw: str | None, status: JobStatus = JobStatus.ENQUEUED, **kw: object):
    return records.to_job(
        raw, source="orders", job_id="j1", status=status, raw_status="queue", **kw
    )  # type: ignore[arg-type]


def ms(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1000, tz=UTC)


def test_enqueued_record_maps_every_field() -> None:
    job = to_job(record())
    assert job.source == "orders"
    assert job.system == "autumn"
    assert job.id == "j1"
    assert job.name == "send_email"
    assert job.queue == "mail"
    assert job.status is JobStatus.ENQUEUED
    assert job.raw_status == "queue"
    assert job.enqueued_at == ms(T0)
    assert job.started_at is None and job.finished_at is None
    assert (job.attempt, job.max_attempts) == (1, 5)
    assert job.principal_id == "u-7"
    assert job.correlation_id == "r-1"
    assert job.actions == (Action.CANCEL,)
    assert job.problem is None
    assert '"to":"a@example.com"' in job.payload_preview


def test_running_record_has_worker_and_start() -> None:
    raw = record(started_at_ms=T0 + 5, claimed_at_ms=T0 + 5, claimed_by="123:abc")
    job = to_job(raw, JobStatus.RUNNING)
    assert job.status is JobStatus.RUNNING
    assert job.worker == "123:abc"
    assert job.started_at == ms(T0 + 5)
    assert job.actions == ()


def test_enqueued_row_claimed_meanwhile_shows_running() -> None:
    job = to_job(record(claimed_by="1:w", claimed_at_ms=T0, started_at_ms=T0))
    assert job.status is JobStatus.RUNNING
    assert job.actions == ()


def test_delayed_first_attempt_is_scheduled() -> None:
    job = to_job(record(), JobStatus.SCHEDULED, scheduled_for_ms=T0 + 60_000)
    assert job.status is JobStatus.SCHEDULED
    assert job.scheduled_for == ms(T0 + 60_000)
    assert job.actions == (Action.CANCEL,)


def test_delayed_retry_backoff_is_retrying() -> None:
    raw = record(attempt=2, last_error="boom", finished_at_ms=T0 + 10)
    job = to_job(raw, JobStatus.SCHEDULED, scheduled_for_ms=T0 + 500)
    assert job.status is JobStatus.RETRYING
    assert job.last_error == "boom"
    assert job.finished_at == ms(T0 + 10)


def test_delayed_attempt_two_without_error_stays_scheduled() -> None:
    job = to_job(record(attempt=2), JobStatus.SCHEDULED, scheduled_for_ms=T0)
    assert job.status is JobStatus.SCHEDULED


def test_completed_and_failed_statuses_and_actions() -> None:
    done = to_job(record(finished_at_ms=T0 + 9), JobStatus.COMPLETED)
    assert done.status is JobStatus.COMPLETED and done.actions == ()
    failed = to_job(record(attempt=5, last_error="x", finished_at_ms=T0 + 9), JobStatus.FAILED)
    assert failed.status is JobStatus.FAILED
    assert failed.actions == (Action.RETRY, Action.DISCARD)


def sort_time_ms(job: JobRecord) -> int | None:
    moment = job.sort_time
    return None if moment is None else int(moment.timestamp() * 1000)


def test_sort_time_prefers_finished_then_started_then_enqueued() -> None:
    both = to_job(record(started_at_ms=T0 + 1, finished_at_ms=T0 + 2), JobStatus.COMPLETED)
    assert sort_time_ms(both) == T0 + 2
    started = to_job(record(started_at_ms=T0 + 1), JobStatus.FAILED)
    assert sort_time_ms(started) == T0 + 1
    assert sort_time_ms(to_job(record(), JobStatus.FAILED)) == T0
    assert sort_time_ms(to_job(record(enqueued_at_ms=None), JobStatus.FAILED)) is None


@pytest.mark.parametrize(
    ("payload", "principal", "correlation"),
    [
        ({"principal_id": "p", "principal": "q", "user_id": "u"}, "p", None),
        ({"principal": "q", "user_id": "u"}, "q", None),
        ({"user_id": 42}, "42", None),
        ({"principal_id": "", "principal": None, "user_id": "u"}, "u", None),
        ({"principal_id": {"a": 1}, "principal": [1], "user_id": True}, "true", None),
        ({"correlation_id": "c", "request_id": "r"}, None, "c"),
        ({"correlation_id": "", "request_id": 1.5}, None, "1.5"),
        ({"nested": {"principal_id": "deep"}}, None, None),
        (["principal_id", "x"], None, None),
        (None, None, None),
    ],
)
def test_identity_precedence(
    payload: object, principal: str | None, correlation: str | None
) -> None:
    assert principal_of(payload) == principal
    assert correlation_of(payload) == correlation


def test_missing_record_is_flagged_and_not_cancelable() -> None:
    job = to_job(None)
    assert job.problem == "record missing"
    assert job.id == "j1"
    assert job.name == ""
    assert job.actions == ()


def test_invalid_json_is_flagged_but_cancelable() -> None:
    job = to_job("{not json")
    assert job.problem is not None and job.problem.startswith("record is not valid JSON: ")
    assert job.actions == (Action.CANCEL,)


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"attempt": 1.0}, "attempt is missing or not an unsigned integer"),
        ({"attempt": "1"}, "attempt is missing or not an unsigned integer"),
        ({"max_attempts": -1}, "max_attempts is missing or not an unsigned integer"),
        ({"attempt": True}, "attempt is missing or not an unsigned integer"),
        ({"enqueued_at_ms": 1.5e12}, "enqueued_at_ms is not an unsigned integer"),
        ({"name": 7}, "name is missing or not a string"),
        ({"queue": ["a"]}, "queue is not a string"),
        ({"unique_key": None}, "unique_key is present but not a string"),
        ({"claimed_by": 5}, "claimed_by is not a string"),
    ],
)
def test_wrong_field_types_are_flagged(changes: dict[str, object], problem: str) -> None:
    job = to_job(record(**changes), JobStatus.FAILED)
    assert job.problem is not None and problem in job.problem
    # A record Autumn cannot decode must not be retried, only discarded.
    assert job.actions == (Action.DISCARD,)


def test_nan_is_rejected_like_serde() -> None:
    problems = records.decode('{"id":"j","attempt":NaN}').problems
    assert problems == ("record is not valid JSON: non-standard JSON constant NaN",)


def test_repeated_record_fields_are_rejected_like_serde() -> None:
    good = json.loads(record())
    body = json.dumps(good)[:-1] + ',"attempt":2,"extra":{"id":1,"id":2},"extra":2}'
    decoded = records.decode(body)
    # Only the record's own fields count, in the record itself: serde ignores unknown ones.
    assert decoded.problems == ("attempt appears more than once",)
    assert records.decode(json.dumps(good)).ok


def test_invalid_utf8_is_rejected_like_serde() -> None:
    good = record().encode()
    assert records.decode(good).ok
    for bad in (b"\xff", b"\xed\xa0\x80"):  # not UTF-8; an encoded lone surrogate
        broken = good.replace(b'"send_email"', b'"send' + bad + b'_email"')
        assert records.decode(broken).problems == ("record is not valid JSON: not valid UTF-8",)


def test_escaped_lone_surrogates_are_rejected_like_serde() -> None:
    lone = record(name="\ud800")  # json.dumps writes it as the escape "\\ud800"
    assert "\\ud800" in lone
    assert records.decode(lone).problems == (
        "record is not valid JSON: holds an escaped lone surrogate",
    )
    # A proper pair is one character, and fine.
    pair = record().replace('"send_email"', '"mail \\ud83d\\ude00"')
    assert records.decode(pair).ok and records.decode(pair).data["name"] == "mail \U0001f600"


def test_malformed_dead_entry_is_a_flagged_failed_row() -> None:
    raw = json.dumps({"id": "bad-1", "error": "invalid job payload: x", "raw_payload": "{oops"})
    job = records.history_row(raw.encode(), "orders", "bad-1", JobStatus.FAILED, "dead")
    assert job.id == "bad-1"
    assert job.status is JobStatus.FAILED
    assert job.last_error == "invalid job payload: x"
    assert job.problem is not None and "malformed" in job.problem
    assert job.payload_preview == "{oops"
    assert job.actions == (Action.DISCARD,)


def test_hostile_sizes_are_capped() -> None:
    job = to_job(record(name="n" * 10_000, last_error="e" * 100_000), JobStatus.FAILED)
    assert len(job.name) < 300
    assert job.last_error is not None and len(job.last_error) < 17_000
    assert len(job.payload_preview) <= 161


def test_timestamps_outside_range_are_dropped() -> None:
    job = to_job(record(enqueued_at_ms=10**20))
    assert job.enqueued_at is None


def test_unique_lock_suffix_by_window() -> None:
    base = {"name": "n", "unique_key": "args:00"}
    assert records.unique_lock_suffix({**base, "unique_window": "pending"}) == ("n", "args:00")
    assert records.unique_lock_suffix({**base, "unique_window": "running"}) == ("n", "args:00")
    assert records.unique_lock_suffix(base) == ("n", "args:00")
    assert records.unique_lock_suffix({**base, "unique_window": "ttl"}) is None
    assert records.unique_lock_suffix({"name": "n"}) is None
    assert records.unique_lock_suffix(None) is None


def test_queue_of_normalises() -> None:
    assert records.queue_of({"queue": " low "}) == "low"
    assert records.queue_of({"queue": ""}) == "default"
    assert records.queue_of({}) == "default"
    assert records.queue_of(None) == "default"


def test_retried_record_keeps_types_order_and_bytes() -> None:
    data = json.loads(
        record(
            payload={"urls": ["http://x/y"], "empty": [], "big": 12345678901234567890, "f": 0.1},
            attempt=5,
            started_at_ms=T0,
            finished_at_ms=T0 + 1,
            claimed_by=None,
            claimed_at_ms=None,
            last_error="boom",
            unique_key="args:1",
            unique_window="pending",
        )
    )
    out = records.retried_record(data, "new-id", T0 + 100)
    decoded = json.loads(out)
    assert decoded["id"] == "new-id"
    assert decoded["attempt"] == 1
    assert decoded["enqueued_at_ms"] == T0 + 100
    for gone in ("started_at_ms", "finished_at_ms", "claimed_by", "claimed_at_ms", "last_error"):
        assert gone not in decoded
    assert decoded["payload"] == {
        "urls": ["http://x/y"],
        "empty": [],
        "big": 12345678901234567890,
        "f": 0.1,
    }
    # cjson would write "\/", "{}" and an exponent float; this encoder does not.
    assert "http://x/y" in out and '"empty":[]' in out and "12345678901234567890" in out
    assert list(decoded)[:3] == ["id", "name", "queue"]
    assert decoded["unique_key"] == "args:1"
