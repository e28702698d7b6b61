"""The JSON encoding, pinned byte for byte: the output of the hand-written encoders it
replaced (keys, order, datetimes, enums, None), as the API prints it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from jobbridge.model import (
    Action,
    AuditEntry,
    Counters,
    JobDetail,
    JobRecord,
    JobStatus,
    LifecycleEntry,
    ListName,
    Page,
    QueueCounters,
    Schedule,
    Snapshot,
    Worker,
)
from jobbridge.serialize import audit_json, detail_json, snapshot_json

T0 = datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)
T1 = T0 + timedelta(seconds=61.5)
JOB = JobRecord(
    source="work",
    system="rq",
    id="j-ü-2",
    name="send_email",
    queue="mail",
    status=JobStatus.FAILED,
    raw_status="failed",
    enqueued_at=T0,
    scheduled_for=T1,
    started_at=T0,
    finished_at=T1,
    attempt=2,
    max_attempts=3,
    last_error='boom\n"x"',
    principal_id="user-7",
    correlation_id="corr-1",
    worker="w1@host",
    payload_preview='{"a": 1}',
    actions=(Action.RETRY, Action.DISCARD),
    problem="odd",
    new_id="j3",
    extra={"unique_key": "k", "group": "g"},
    overdue_since=T1,
    entry="dead",
)
BARE = JobRecord(
    source="orders",
    system="autumn",
    id="j1",
    name="",
    queue="default",
    status=JobStatus.UNKNOWN,
    raw_status="?",
)
DETAIL = JobDetail(
    job=JOB,
    payload="{}",
    payload_kind="json",
    raw="RAW",
    lifecycle=(
        LifecycleEntry(
            job_id="j1", status=JobStatus.RETRIED, at=T0, actor="token:ops", new_id="j9", record=JOB
        ),
        LifecycleEntry(job_id="j1", status=JobStatus.CANCELED, at=T1, actor="anonymous"),
    ),
)
SNAPSHOT = Snapshot(
    source="orders",
    system="autumn",
    taken_at=T0,
    counters=Counters(
        enqueued=3,
        scheduled=1,
        running=2,
        completed_24h=10,
        failed_7d=None,
        oldest_enqueued_age_s=12.25,
        queues=(QueueCounters(name="default", enqueued=3),),
        blocked=1,
        running_overdue=1,
        problems=("key x is a set",),
        completed_kept=11,
        failed_kept=None,
        canceled=2,
    ),
    lists={
        ListName.FAILED: Page(items=(BARE,), total=3, page=2, per_page=1, skipped=2),
        ListName.ENQUEUED: Page(items=(), total=0, page=1, per_page=25),
    },
    schedules=(Schedule(name="nightly", schedule="0 3 * * *", next_run_at=T1),),
    history_limit=1000,
    workers=(Worker(name="w1", state="busy", queues=("a",), birth=T0, pid=42, active=1),),
)
AUDIT = AuditEntry(
    at=T0,
    actor="a",
    source="orders",
    job_id="j1",
    action="retry",
    outcome="done",
    new_id="j2",
    message="Retried.",
    entry="dead",
)


PINNED = [
    (
        detail_json,
        DETAIL,
        '{"source":"work","system":"rq","id":"j-ü-2","name":"send_email","queue":"mai'
        'l","status":"failed","raw_status":"failed","enqueued_at":"2026-03-04T05:06:0'
        '7Z","scheduled_for":"2026-03-04T05:07:09Z","started_at":"2026-03-04T05:06:07'
        'Z","finished_at":"2026-03-04T05:07:09Z","attempt":2,"max_attempts":3,"last_e'
        'rror":"boom\\n\\"x\\"","principal_id":"user-7","correlation_id":"corr-1","worke'
        'r":"w1@host","payload_preview":"{\\"a\\": 1}","actions":["retry","discard"],"p'
        'roblem":"odd","new_id":"j3","extra":{"unique_key":"k","group":"g"},"overdue_'
        'since":"2026-03-04T05:07:09Z","entry":"dead","retries_left":null,"retries_ma'
        'x":null,"waits_for":[],"payload":"{}","payload_kind":"'
        'json","lifecycle":[{"job_id":"j1","status":"retried","at":"2026-03-04T05:06:'
        '07Z","actor":"token:ops","new_id":"j9"},{"job_id":"j1","status":"canceled","'
        'at":"2026-03-04T05:07:09Z","actor":"anonymous","new_id":null}]}',
    ),
    (
        snapshot_json,
        SNAPSHOT,
        '{"source":"orders","system":"autumn","taken_at":"2026-03-04T05:06:07Z","counte'
        'rs":{"enqueued":3,"scheduled":1,"running":2,"completed_24h":10,"failed_7d":nul'
        'l,"oldest_enqueued_age_s":12.25,"oldest_enqueued_age_at_least":false,"blocked"'
        ':1,"running_overdue":1,"completed_kept":11,"failed_kept":null,"canceled":2,"pr'
        'oblems":["key x is a set"],"queues":[{"name":"default","enqueued":3,"oldest_en'
        'queued_age_s":null,"oldest_enqueued_age_at_least":false}]},"lists":{"failed":{'
        '"items":[{"source":"orders","system":"autumn","id":"j1","name":"","queue":"def'
        'ault","status":"unknown","raw_status":"?","enqueued_at":null,"scheduled_for":n'
        'ull,"started_at":null,"finished_at":null,"attempt":null,"max_attempts":null,"l'
        'ast_error":null,"principal_id":null,"correlation_id":null,"worker":null,"paylo'
        'ad_preview":"","actions":[],"problem":null,"new_id":null,"extra":{},"overdue_s'
        'ince":null,"entry":null,"retries_left":null,"retries_max":null,"waits_for":[]'
        '}],"total":3,"page":2,"per_page":1,"flagged":2},"enqueu'
        'ed":{"items":[],"total":0,"page":1,"per_page":25,"flagged":0}},"schedules":[{"'
        'name":"nightly","schedule":"0 3 * * *","next_run_at":"2026-03-04T05:07:09Z","l'
        'ast_status":null}],"history_limit":1000,"workers":[{"name":"w1","state":"busy"'
        ',"queues":["a"],"current_job":null,"birth":"2026-03-04T05:06:07Z","last_heartb'
        'eat":null,"successful":null,"failed":null,"hostname":null,"pid":42,"problem":n'
        'ull,"pool":null,"concurrency":null,"active":1,"reserved":null,"scheduled":nul'
        'l,"current_jobs":[],"processed":null,"failed_since":null,"working_time_s":nul'
        'l,"last_seen":null}]}',
    ),
    (
        audit_json,
        AUDIT,
        '{"at":"2026-03-04T05:06:07Z","actor":"a","source":"orders","job_id":"j1","ac'
        'tion":"retry","outcome":"done","new_id":"j2","message":"Retried.","entry":"d'
        'ead"}',
    ),
]


def api_bytes(data: Any) -> str:
    """As web/responses.json_response writes a body."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


@pytest.mark.parametrize(
    ("encode", "record", "expected"), PINNED, ids=["detail", "snapshot", "audit"]
)
def test_encoding_is_pinned(encode: Any, record: Any, expected: str) -> None:
    assert api_bytes(encode(record)) == expected
