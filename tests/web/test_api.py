"""The JSON API: shapes, pagination and clamping, actions and their HTTP statuses."""

from __future__ import annotations

import json
import re

from jobbridge.dev.autumn_emulator import Autumn, Worker
from tests.web import seed
from tests.web.conftest import csrf_token

RFC3339_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
JOB_KEYS = {
    "source",
    "system",
    "id",
    "name",
    "queue",
    "status",
    "raw_status",
    "enqueued_at",
    "scheduled_for",
    "started_at",
    "finished_at",
    "attempt",
    "max_attempts",
    "last_error",
    "principal_id",
    "correlation_id",
    "worker",
    "payload_preview",
    "actions",
    "problem",
    "new_id",
    "extra",
    "overdue_since",
    "entry",
    "retries_left",
    "retries_max",
    "waits_for",
}


async def _post(client, path: str, **kw):
    """An API POST from a browser session: the CSRF header from the page's meta tag."""
    token = await csrf_token(client)
    return await client.post(path, headers={"X-CSRF-Token": token}, **kw)


async def test_sources(client) -> None:
    response = await client.get("/admin/api/sources")
    assert response.status == 200
    assert response.content_type == "application/json"
    body = await response.json()
    assert body == {
        "sources": [
            {
                "name": "orders",
                "system": "autumn",
                "capabilities": [
                    "snapshot",
                    "job",
                    "cancel",
                    "retry",
                    "discard",
                    "audit",
                    "lifecycle",
                    "queue_discovery",
                    "finished_series",
                ],
            }
        ]
    }


async def test_snapshot_only_reads_the_named_lists(client, autumn_emulator: Autumn) -> None:
    mix = seed.mix(autumn_emulator)
    response = await client.get("/admin/api/sources/orders/snapshot?only=failed,bogus")
    assert response.status == 200
    lists = (await response.json())["lists"]
    assert [j["id"] for j in lists["failed"]["items"]] == [mix.failed]
    # The others come back empty, with their totals.
    assert lists["enqueued"]["items"] == [] and lists["enqueued"]["total"] == 1
    assert lists["scheduled"]["items"] == [] and lists["scheduled"]["total"] == 2


async def test_snapshot_shape(client, autumn_emulator: Autumn) -> None:
    mix = seed.mix(autumn_emulator)
    response = await client.get("/admin/api/sources/orders/snapshot")
    assert response.status == 200
    body = await response.json()
    assert set(body) == {
        "source",
        "system",
        "taken_at",
        "counters",
        "lists",
        "schedules",
        "history_limit",
        "workers",
    }
    assert body["source"] == "orders" and body["system"] == "autumn"
    assert RFC3339_Z.match(body["taken_at"])
    counters = body["counters"]
    for key in (
        "enqueued",
        "scheduled",
        "running",
        "completed_24h",
        "failed_7d",
        "oldest_enqueued_age_s",
    ):
        assert key in counters
    assert (counters["enqueued"], counters["scheduled"], counters["running"]) == (1, 2, 1)
    assert (counters["completed_24h"], counters["failed_7d"]) == (1, 1)
    assert (counters["completed_kept"], counters["failed_kept"]) == (1, 1)
    assert body["workers"] is None  # Autumn registers no workers
    assert isinstance(counters["oldest_enqueued_age_s"], float)
    assert set(body["lists"]) == {"enqueued", "scheduled", "running", "completed", "failed"}
    for page in body["lists"].values():
        assert set(page) == {"items", "total", "page", "per_page", "flagged"}
        assert page["page"] == 1 and page["per_page"] == 25
    assert body["schedules"] == []
    assert body["history_limit"] == 1000

    failed = body["lists"]["failed"]["items"][0]
    assert set(failed) == JOB_KEYS
    assert failed["id"] == mix.failed
    assert failed["status"] == "failed" and failed["raw_status"] == "dead"
    assert failed["actions"] == ["retry", "discard"]
    assert failed["last_error"] == "disk full on /var/spool"
    assert failed["principal_id"] == "user-7" and failed["correlation_id"] == "req-1"
    assert (failed["attempt"], failed["max_attempts"]) == (1, 1)
    for key in ("enqueued_at", "started_at", "finished_at"):
        assert RFC3339_Z.match(failed[key]), key
    assert failed["scheduled_for"] is None

    statuses = {j["id"]: j["status"] for j in body["lists"]["scheduled"]["items"]}
    assert statuses == {mix.scheduled: "scheduled", mix.retrying: "retrying"}
    scheduled = body["lists"]["scheduled"]["items"][0]
    assert RFC3339_Z.match(scheduled["scheduled_for"])
    running = body["lists"]["running"]["items"][0]
    assert running["id"] == mix.running and running["worker"] and running["actions"] == []
    enqueued = body["lists"]["enqueued"]["items"][0]
    assert enqueued["name"] == "send_email"
    assert enqueued["principal_id"] == "42"
    assert enqueued["payload_preview"] == '{"user_id":42}'
    assert enqueued["actions"] == ["cancel"]


async def test_snapshot_pagination(client, autumn_emulator: Autumn) -> None:
    ids = [seed.enqueue(autumn_emulator) for _ in range(7)]
    body = await (
        await client.get("/admin/api/sources/orders/snapshot?per_page=3&enqueued_page=2")
    ).json()
    page = body["lists"]["enqueued"]
    assert (page["total"], page["page"], page["per_page"]) == (7, 2, 3)
    # Newest first: index 0 of the list is the last enqueued.
    assert [j["id"] for j in page["items"]] == list(reversed(ids))[3:6]
    last = await (
        await client.get("/admin/api/sources/orders/snapshot?per_page=3&enqueued_page=3")
    ).json()
    assert [j["id"] for j in last["lists"]["enqueued"]["items"]] == [ids[0]]
    beyond = await (
        await client.get("/admin/api/sources/orders/snapshot?per_page=3&enqueued_page=99")
    ).json()
    assert beyond["lists"]["enqueued"]["items"] == []


async def test_snapshot_clamps_bad_values(client, autumn_emulator: Autumn) -> None:
    seed.enqueue(autumn_emulator)
    cases = {
        "per_page=0": (1, 1),
        "per_page=100": (100, 1),
        "per_page=-3": (1, 1),
        "per_page=abc": (25, 1),
        "per_page=2.5": (25, 1),
        "enqueued_page=0": (25, 1),
        "enqueued_page=-7": (25, 1),
        "enqueued_page=x": (25, 1),
        "enqueued_page=" + "9" * 50: (25, 1),
    }
    for query, (per_page, page) in cases.items():
        response = await client.get(f"/admin/api/sources/orders/snapshot?{query}")
        assert response.status == 200, query
        got = (await response.json())["lists"]["enqueued"]
        assert (got["per_page"], got["page"]) == (per_page, page), query


async def test_snapshot_per_page_above_the_cap_is_a_400_naming_it(
    client, autumn_emulator: Autumn
) -> None:
    seed.enqueue(autumn_emulator)
    for asked in ("101", "500", "10000"):
        response = await client.get(f"/admin/api/sources/orders/snapshot?per_page={asked}")
        assert response.status == 400, asked
        body = await response.json()
        assert body["error"] == "bad_per_page", body
        assert "at most 100" in body["message"] and asked in body["message"], body


async def test_job_detail_json(client, autumn_emulator: Autumn) -> None:
    job_id = seed.fail(autumn_emulator, "bad", order=17)
    response = await client.get(f"/admin/api/sources/orders/jobs/{job_id}")
    assert response.status == 200
    body = await response.json()
    assert set(body) == JOB_KEYS | {"payload", "payload_kind", "lifecycle"}
    assert body["id"] == job_id
    assert json.loads(body["payload"]) == {"message": "bad", "order": 17}
    assert body["payload_kind"] == "json"
    assert body["lifecycle"] == []


async def test_unknown_source_and_job_are_404_json(client) -> None:
    for path in (
        "/admin/api/sources/nope/snapshot",
        "/admin/api/sources/nope/jobs/x",
        "/admin/api/sources/orders/jobs/nope",
        "/admin/api/audit?source=nope",
        "/admin/api/sources/orders/jobs/" + "y" * 201,
        "/admin/api/nothing",
    ):
        response = await client.get(path)
        assert response.status == 404, path
        body = await response.json()
        assert body["error"] == "not_found"
        assert isinstance(body["message"], str)


async def test_retry_done(client, autumn_emulator: Autumn) -> None:
    job_id = seed.fail(autumn_emulator)
    response = await _post(client, f"/admin/api/sources/orders/jobs/{job_id}/retry")
    assert response.status == 200
    body = await response.json()
    assert body["outcome"] == "retried" and body["id"] == job_id
    new_id = body["new_id"]
    assert autumn_emulator.record(new_id)["attempt"] == 1
    assert autumn_emulator.queue_ids() == [new_id]
    assert autumn_emulator.dead_raw() == []
    # A second retry of the same failed job is refused as wrong state.
    again = await _post(client, f"/admin/api/sources/orders/jobs/{job_id}/retry")
    assert again.status == 409
    refused = await again.json()
    assert refused["error"] == "wrong_state"
    assert new_id in refused["message"]


async def test_discard_done_then_not_found(client, autumn_emulator: Autumn) -> None:
    job_id = seed.fail(autumn_emulator)
    response = await _post(client, f"/admin/api/sources/orders/jobs/{job_id}/discard")
    assert response.status == 200
    assert await response.json() == {
        "outcome": "discarded",
        "id": job_id,
        "message": f"Discarded job {job_id}.",
    }
    assert autumn_emulator.dead_raw() == []
    missing = await _post(client, "/admin/api/sources/orders/jobs/no-such-job/discard")
    assert missing.status == 404
    assert (await missing.json())["error"] == "not_found"


async def test_cancel_done_and_running_is_wrong_state(client, autumn_emulator: Autumn) -> None:
    waiting = seed.schedule(autumn_emulator)
    response = await _post(client, f"/admin/api/sources/orders/jobs/{waiting}/cancel")
    assert response.status == 200
    assert await response.json() == {
        "outcome": "canceled",
        "id": waiting,
        "message": f"Canceled job {waiting}.",
    }
    assert autumn_emulator.record(waiting) is None and autumn_emulator.delayed_entries() == []
    busy = seed.running(autumn_emulator)
    refused = await _post(client, f"/admin/api/sources/orders/jobs/{busy}/cancel")
    assert refused.status == 409
    body = await refused.json()
    assert body["error"] == "wrong_state" and "already running" in body["message"]
    assert autumn_emulator.record(busy) is not None


async def test_retry_conflict_when_unique_job_pending(client, autumn_emulator: Autumn) -> None:
    failed = autumn_emulator.enqueue("always_fail", {"k": 1}, unique="pending", max_attempts=1)
    Worker(autumn_emulator, ["default"]).run(until_idle=True)
    pending = autumn_emulator.enqueue("always_fail", {"k": 1}, unique="pending", max_attempts=1)
    assert pending is not None
    response = await _post(client, f"/admin/api/sources/orders/jobs/{failed}/retry")
    assert response.status == 409
    assert (await response.json())["error"] == "conflict"
    assert len(autumn_emulator.dead_raw()) == 1


async def test_retry_corrupt_record_is_422(client, autumn_emulator: Autumn, redis_client) -> None:
    raw = b'{"id":"bad-9","name":"x","attempt":"one"'
    await redis_client.set(f"{autumn_emulator.prefix}:dead-record:bad-9", raw)
    await redis_client.lpush(f"{autumn_emulator.prefix}:dead", raw)
    response = await _post(client, "/admin/api/sources/orders/jobs/bad-9/retry")
    assert response.status == 422
    assert (await response.json())["error"] == "corrupt"
    assert await redis_client.llen(f"{autumn_emulator.prefix}:dead") == 1


async def test_unknown_action_and_get_on_action(client, autumn_emulator: Autumn) -> None:
    job_id = seed.fail(autumn_emulator)
    response = await _post(client, f"/admin/api/sources/orders/jobs/{job_id}/explode")
    assert response.status == 404
    response = await client.get(f"/admin/api/sources/orders/jobs/{job_id}/retry")
    assert response.status in (404, 405)
    assert len(autumn_emulator.dead_raw()) == 1


async def test_counters(client, autumn_emulator: Autumn) -> None:
    seed.fail(autumn_emulator)
    seed.enqueue(autumn_emulator)
    body = await (await client.get("/admin/api/counters")).json()
    assert RFC3339_Z.match(body["taken_at"])
    (row,) = body["sources"]
    assert row["name"] == "orders" and row["up"] is True and row["error"] is None
    assert row["counters"]["enqueued"] == 1 and row["counters"]["failed_7d"] == 1
    assert row["counters"]["queues"][0]["name"] == "default"


async def test_audit(client, autumn_emulator: Autumn) -> None:
    first, second = seed.fail(autumn_emulator, "a"), seed.fail(autumn_emulator, "b")
    await _post(client, f"/admin/api/sources/orders/jobs/{first}/discard")
    await _post(client, f"/admin/api/sources/orders/jobs/{second}/retry")
    await _post(client, f"/admin/api/sources/orders/jobs/{second}/retry")
    body = await (await client.get("/admin/api/audit")).json()
    entries = body["entries"]
    assert [(e["job_id"], e["action"], e["outcome"]) for e in entries] == [
        (second, "retry", "wrong_state"),
        (second, "retry", "done"),
        (first, "discard", "done"),
    ]
    for entry in entries:
        assert set(entry) == {
            "at",
            "actor",
            "source",
            "job_id",
            "action",
            "outcome",
            "new_id",
            "message",
            "entry",
        }
        assert entry["actor"] == "anonymous@127.0.0.1"
        assert entry["source"] == "orders"
        assert entry["at"].endswith("Z")
    limited = await (await client.get("/admin/api/audit?source=orders&limit=1")).json()
    assert len(limited["entries"]) == 1
    for bad in ("limit=0", "limit=-1", "limit=abc", "limit=100000"):
        assert (await client.get(f"/admin/api/audit?{bad}")).status == 200, bad


async def test_openapi_lists_every_api_path(client) -> None:
    response = await client.get("/admin/api/openapi.json")
    assert response.status == 200
    document = json.loads(await response.text())
    assert document["openapi"].startswith("3.")
    paths = set(document["paths"])
    expected = {
        "/admin/api/openapi.json",
        "/admin/api/sources",
        "/admin/api/sources/{source}/snapshot",
        "/admin/api/sources/{source}/jobs/{id}",
        "/admin/api/sources/{source}/jobs/{id}/retry",
        "/admin/api/sources/{source}/jobs/{id}/discard",
        "/admin/api/sources/{source}/jobs/{id}/cancel",
        "/admin/api/counters",
        "/admin/api/audit",
        "/actuator/jobs",
        "/healthz",
        "/readyz",
        "/metrics",
    }
    assert expected <= paths
    # Every API route the app serves is documented.
    app_paths = {
        resource.canonical
        for resource in client.app.router.resources()
        if resource.canonical.startswith("/admin/api/")
    }
    normalised = {re.sub(r"\{action(:[^}]+)?\}", "retry", p) for p in app_paths}
    assert normalised <= paths
    description = document["paths"]["/actuator/jobs"]["get"]["description"]
    assert "approximate" in description and "sample_size" in description


async def test_healthz(client) -> None:
    response = await client.get("/healthz")
    assert response.status == 200
    assert await response.json() == {"status": "ok"}


async def test_readyz_ok(client) -> None:
    response = await client.get("/readyz")
    assert response.status == 200
    assert await response.json() == {
        "ready": True,
        "sources": {"orders": {"ready": True, "error": None}},
    }


async def test_metrics(client, autumn_emulator: Autumn) -> None:
    seed.fail(autumn_emulator)
    seed.enqueue(autumn_emulator, queue="critical")
    seed.enqueue(autumn_emulator)
    await client.get("/admin/jobs/orders")
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    text = await response.text()
    assert 'jobbridge_source_up{source="orders",system="autumn"} 1.0' in text
    assert 'jobbridge_jobs_enqueued{source="orders"}' in text
    assert 'jobbridge_jobs_failed_7d{source="orders"} 1.0' in text
    for name in ("scheduled", "running", "completed_24h", "blocked", "running_overdue"):
        assert f'jobbridge_jobs_{name}{{source="orders"}}' in text
    assert 'jobbridge_oldest_enqueued_age_seconds{source="orders"}' in text
    assert 'jobbridge_queue_jobs_enqueued{queue="default",source="orders"} 1.0' in text
    assert 'jobbridge_queue_oldest_enqueued_age_seconds{queue="default",source="orders"}' in text
    assert re.search(
        r'jobbridge_http_requests_total\{method="GET",route="source",status="200"\} 1\.0', text
    )
    assert (
        'jobbridge_http_request_duration_seconds_bucket{le="0.005",method="GET",route="source",status="200"}'
        in text
    )


async def test_metrics_registry_is_per_app(make_client) -> None:
    first = await make_client()
    second = await make_client()
    await first.get("/healthz")
    text = await (await second.get("/metrics")).text()
    assert 'route="healthz"' not in text


async def test_actuator_jobs(client, autumn_emulator: Autumn) -> None:
    seed.fail(autumn_emulator, "first failure")
    seed.fail(autumn_emulator, "second failure")
    seed.complete(autumn_emulator)
    seed.running(autumn_emulator, "resize")
    seed.enqueue(autumn_emulator, "send_email")
    seed.schedule(autumn_emulator, "send_email")
    response = await client.get("/actuator/jobs")
    assert response.status == 200
    body = await response.json()
    assert body["approximate"] is False and "sample_size" not in body
    jobs = body["jobs"]
    assert jobs["always_fail"]["dead_letter"] == 2
    assert jobs["always_fail"]["failure"] == 2
    assert jobs["always_fail"]["last_error"] == "second failure"
    assert jobs["always_fail"]["sources"]["orders"]["dead_letter"] == 2
    assert jobs["noop"]["success"] == 1
    assert jobs["send_email"]["queued"] == 2
    assert jobs["resize"]["in_flight"] == 1
    for entry in jobs.values():
        assert {
            "queued",
            "in_flight",
            "success",
            "failure",
            "dead_letter",
            "last_error",
            "sources",
        } <= set(entry)
        assert "approximate" not in entry
    assert body["sources"]["orders"]["up"] is True


async def test_actuator_jobs_marks_samples_approximate(client, autumn_emulator: Autumn) -> None:
    for _ in range(120):
        seed.enqueue(autumn_emulator, "bulk")
    body = await (await client.get("/actuator/jobs")).json()
    assert body["approximate"] is True
    assert body["sample_size"] == 100
    assert body["jobs"]["bulk"]["queued"] == 100
    assert body["jobs"]["bulk"]["approximate"] is True
    assert body["jobs"]["bulk"]["sample_size"] == 100
    assert body["sources"]["orders"]["truncated_lists"] == ["enqueued"]
    assert body["sources"]["orders"]["totals"]["enqueued"] == 120


async def test_actuator_counts_whole_histories_exactly(client, autumn_emulator: Autumn) -> None:
    for n in range(150):
        autumn_emulator.enqueue("report", {"n": n})
    Worker(autumn_emulator, handlers={"report": lambda record: None}).run(until_idle=True)
    body = await (await client.get("/actuator/jobs")).json()
    assert body["jobs"]["report"]["success"] == 150
    assert body["approximate"] is False
    assert "approximate" not in body["jobs"]["report"]
