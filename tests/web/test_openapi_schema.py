"""Real API responses of every system, validated against the published OpenAPI document.

The document is made strict for the check (an object may hold no key it does not list), so a
field the API returns that the document lacks, a missing field, a wrong type, or a status the
document does not list fails here. Autumn runs on the emulator, RQ and Celery on real workers.
"""

from __future__ import annotations

import asyncio
import copy
import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp.test_utils import TestClient
from jsonschema import Draft202012Validator, FormatChecker
from rq import Queue

from examples.celery_app import MAIL_QUEUE
from jobbridge.dev.autumn_emulator import Autumn
from jobbridge.web.openapi import RECORDS, build_openapi
from tests.celery.celery_jobbridge import celery_api, wait_row
from tests.celery.celery_support import send, wait_for_state
from tests.rq import tasks as rq_tasks
from tests.rq.rq_support import async_wait_for, enqueue, make_failed, rq_api
from tests.web import seed
from tests.web.conftest import OPERATOR_TOKEN, ClientFactory, auth_config, bearer

pytestmark = pytest.mark.redis

PREFIX = "/admin"
HOUR = timedelta(hours=1)
RFC3339_Z = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
FORMATS = FormatChecker(formats=())
FORMATS.checks("date-time")(lambda value: not isinstance(value, str) or RFC3339_Z.fullmatch(value))


def walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def strict(document: dict[str, Any]) -> dict[str, Any]:
    """The document where every object schema that lists its keys allows no other."""
    document = copy.deepcopy(document)
    for node in walk(document):
        if isinstance(node.get("properties"), dict):
            node.setdefault("additionalProperties", False)
    return document


class Checker:
    """Validates responses against the document served by the app, and counts what it saw."""

    def __init__(self, client: TestClient, headers: dict[str, str], source: str) -> None:
        self.client, self.headers, self.source = client, headers, source
        self.document: dict[str, Any] = {}
        self.checked: list[str] = []

    async def load(self) -> None:
        response = await self.client.get(f"{PREFIX}/api/openapi.json", headers=self.headers)
        assert response.status == 200
        self.document = strict(await response.json())
        for schema in self.document["components"]["schemas"].values():
            Draft202012Validator.check_schema(schema)

    async def call(
        self,
        method: str,
        path: str,
        template: str,
        params: dict[str, str] | None = None,
        body: Any = None,
    ) -> tuple[int, Any]:
        """Send the request (``body`` as JSON); check its status and body against
        ``template``'s operation."""
        send = self.client.post if method == "post" else self.client.get
        response = await send(path, headers=self.headers, params=params or {}, json=body)
        operation = self.document["paths"][template][method]
        status = str(response.status)
        assert status in operation["responses"], f"{method} {path}: {status} not documented"
        documented = operation["responses"][status].get("content", {})
        if response.content_type != "application/json":
            assert "application/json" not in documented, f"{method} {path}: not JSON"
            return response.status, await response.text()
        body = await response.json()
        assert "application/json" in documented, f"{method} {path} {status}: no schema"
        schema = {
            **documented["application/json"]["schema"],
            "components": self.document["components"],
        }
        validator = Draft202012Validator(schema, format_checker=FORMATS)
        errors = [
            f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator.iter_errors(body)
        ]
        assert not errors, f"{method} {path} {status}:\n" + "\n".join(errors)
        self.checked.append(f"{method} {template} {status}")
        return response.status, body

    async def job(self, job_id: str, entry: str | None = None) -> tuple[int, Any]:
        path = f"{PREFIX}/api/sources/{self.source}/jobs/{quote(job_id, safe='')}"
        params = {"entry": entry} if entry else None
        return await self.call("get", path, f"{PREFIX}/api/sources/{{source}}/jobs/{{id}}", params)

    async def act(self, job_id: str, action: str) -> tuple[int, Any]:
        path = f"{PREFIX}/api/sources/{self.source}/jobs/{quote(job_id, safe='')}/{action}"
        template = f"{PREFIX}/api/sources/{{source}}/jobs/{{id}}/{action}"
        return await self.call("post", path, template)

    async def snapshot(self, **params: str) -> dict[str, Any]:
        path = f"{PREFIX}/api/sources/{self.source}/snapshot"
        status, body = await self.call(
            "get", path, f"{PREFIX}/api/sources/{{source}}/snapshot", params
        )
        assert status == 200, body
        return body  # type: ignore[no-any-return]

    async def everything(self) -> dict[str, Any]:
        """Every read endpoint, every job of the snapshot's pages, an unknown job; the
        snapshot returned."""
        api = f"{PREFIX}/api"
        assert self.document == strict(build_openapi(PREFIX))
        await self.call("get", f"{api}/sources", f"{api}/sources")
        await self.snapshot(only="failed,enqueued")
        body = await self.snapshot(per_page="100")
        for page in body["lists"].values():
            for item in page["items"]:
                await self.job(item["id"], item["entry"])
        status, _ = await self.job("no-such-job")
        assert status == 404
        await self.call("get", f"{api}/counters", f"{api}/counters")
        await self.call("get", f"{api}/compare", f"{api}/compare")
        status, _ = await self.call("get", f"{api}/compare", f"{api}/compare", {"sort": "x"})
        assert status == 400
        found = [item for page in body["lists"].values() for item in page["items"]]
        for query in [item["id"] for item in found[:3]] + ["no-such-job"]:
            status, reply = await self.call("get", f"{api}/search", f"{api}/search", {"q": query})
            assert status == 200 and (reply["items"] or query == "no-such-job"), reply
        status, _ = await self.call("get", f"{api}/search", f"{api}/search", {"q": " "})
        assert status == 400
        series = f"{api}/sources/{{source}}/series"
        for params in ({}, {"window": "24h"}, {"window": "1h", "queue": "default"}):
            status, _ = await self.call(
                "get", f"{api}/sources/{self.source}/series", series, params
            )
            assert status == 200
        status, _ = await self.call(
            "get", f"{api}/sources/{self.source}/series", series, {"window": "7d"}
        )
        assert status == 400
        status, _ = await self.call("get", f"{api}/sources/nope/series", series)
        assert status == 404
        await self.call("get", f"{api}/audit", f"{api}/audit", {"source": self.source})
        status, _ = await self.call("get", f"{api}/audit", f"{api}/audit", {"source": "nope"})
        assert status == 404
        for root in ("/healthz", "/readyz", "/actuator/jobs", "/metrics"):
            await self.call("get", root, root)
        return body


def records_seen(body: dict[str, Any]) -> set[str]:
    """Which of the snapshot's nested records held at least one entry."""
    seen = {"Counters", "Snapshot"}
    if body["counters"]["queues"]:
        seen.add("QueueCounters")
    if body["workers"]:
        seen.add("Worker")
    if body["schedules"]:
        seen.add("Schedule")
    if any(page["items"] for page in body["lists"].values()):
        seen |= {"Page", "Job"}
    return seen


async def lifecycle_of(checker: Checker, job_id: str) -> list[Any]:
    status, detail = await checker.job(job_id)
    assert status == 200, detail
    return detail["lifecycle"]  # type: ignore[no-any-return]


# ---------------------------------------------------------------------------- Autumn


async def test_autumn_responses_match_the_document(
    make_client: ClientFactory, autumn_emulator: Autumn
) -> None:
    mix = seed.mix(autumn_emulator)
    seed.stuck(autumn_emulator, "resize", queue="slow")
    unique = seed.enqueue(autumn_emulator, "send_email", {"user_id": 7}, unique_by=["user_id"])
    client = await make_client(auth=auth_config())
    checker = Checker(client, bearer(OPERATOR_TOKEN), "orders")
    await checker.load()

    status, done = await checker.act(mix.failed, "retry")
    assert status == 200 and done["new_id"], done
    status, _ = await checker.act(mix.running, "cancel")
    assert status == 409
    status, _ = await checker.act("no-such-job", "discard")
    assert status == 404
    status, _ = await checker.act(unique, "cancel")
    assert status == 200
    assert await lifecycle_of(checker, mix.failed)

    body = await checker.everything()
    assert body["counters"]["running_overdue"] == 1
    assert any(item["overdue_since"] for item in body["lists"]["running"]["items"])
    assert {"Snapshot", "Counters", "QueueCounters", "Page", "Job"} <= records_seen(body)
    assert "post /admin/api/sources/{source}/jobs/{id}/retry 200" in checker.checked


# ---------------------------------------------------------------------------- RQ


async def test_rq_responses_match_the_document(sync_redis, rq_workers, redis_url) -> None:
    (failed, other) = make_failed(sync_redis, rq_workers, 2)
    done = enqueue(sync_redis, rq_tasks.add, 1, 2)
    rq_workers.run_burst()
    worker = rq_workers.start()
    worker.wait_registered(sync_redis)
    running = enqueue(sync_redis, rq_tasks.sleep, 30)
    waiting = enqueue(sync_redis, rq_tasks.add, 3, 4, queue="low")
    later = Queue("default", connection=sync_redis).enqueue_in(HOUR, rq_tasks.add, 5, 6).id
    async with rq_api(redis_url, queues=None) as api:
        checker = Checker(api.client, api.headers, api.source)
        await checker.load()

        async def started() -> bool:
            body = await checker.snapshot(only="running")
            return any(i["id"] == running.id for i in body["lists"]["running"]["items"])

        await async_wait_for(started, "the sleeping job to start", 20)
        status, body = await checker.act(failed, "retry")
        assert status == 200 and body["new_id"], body
        status, _ = await checker.act(other, "discard")
        assert status == 200
        status, _ = await checker.act(waiting.id, "cancel")
        assert status == 200
        status, _ = await checker.act(done.id, "retry")
        assert status in (404, 409)  # refused: the Error shape
        status, _ = await checker.act("no-such-job", "cancel")
        assert status == 404
        assert await lifecycle_of(checker, failed)

        body = await checker.everything()
        assert body["lists"]["scheduled"]["items"][0]["id"] == later
        assert body["lists"]["canceled"]["items"]
        assert {"Snapshot", "Counters", "QueueCounters", "Page", "Job", "Worker"} <= (
            records_seen(body)
        )
        status, _ = await checker.act(running.id, "stop")
        assert status == 200


# ---------------------------------------------------------------------------- Celery


async def test_celery_responses_match_the_document(celery_app, celery_workers, redis_url) -> None:
    celery_workers.start(pool="prefork", concurrency=2, queues=("celery",))
    # No worker consumes "mail": the message waits. (Queues are found when the app starts.)
    waiting = send(celery_app, "record", "wait", queue=MAIL_QUEUE)
    async with celery_api(redis_url) as api:
        checker = Checker(api.client, api.headers, api.source)
        await checker.load()
        done = send(celery_app, "add", 2, 3)
        failed = send(celery_app, "fail", "kaboom")
        other = send(celery_app, "fail", "kaboom again")
        wait_for_state(celery_app, done.id, "SUCCESS", workers=celery_workers)
        wait_for_state(celery_app, failed.id, "FAILURE", workers=celery_workers)
        wait_for_state(celery_app, other.id, "FAILURE", workers=celery_workers)
        long = send(celery_app, "sleep", 20)
        wait_for_state(celery_app, long.id, "STARTED", workers=celery_workers)
        held = send(celery_app, "add", 1, 1, countdown=120)
        await wait_row(api, "failed", failed.id)
        await wait_row(api, "failed", other.id)
        await wait_row(api, "completed", done.id)
        await wait_row(api, "running", long.id)
        await wait_row(api, "scheduled", held.id)
        await wait_row(api, "enqueued", waiting.id)

        status, body = await checker.act(failed.id, "retry")
        assert status == 200 and body["new_id"], body
        status, _ = await checker.act(other.id, "discard")
        assert status == 200
        status, _ = await checker.act(waiting.id, "cancel")
        assert status == 200
        status, _ = await checker.act(done.id, "cancel")
        assert status == 409
        status, _ = await checker.act(held.id, "revoke")
        assert status == 200
        assert await lifecycle_of(checker, failed.id)

        body = await checker.everything()
        assert {"Snapshot", "Counters", "QueueCounters", "Page", "Job", "Worker"} <= (
            records_seen(body)
        )


def test_every_record_is_a_component() -> None:
    """Every record the API encodes has its schema, and every schema is valid JSON Schema."""
    schemas = build_openapi(PREFIX)["components"]["schemas"]
    assert set(RECORDS) <= set(schemas)
    for schema in schemas.values():
        Draft202012Validator.check_schema(schema)


# ---------------------------------------------------------------------------- queue census


async def test_census_responses_match_the_document(sync_redis, redis_url) -> None:
    from tests.census.seed import seed_rq_queue

    seed_rq_queue(sync_redis, 2_500, queue="default")
    async with rq_api(redis_url) as api:
        checker = Checker(api.client, api.headers, api.source)
        await checker.load()
        template = f"{PREFIX}/api/sources/{{source}}/queues/{{queue}}/census"
        path = f"{PREFIX}/api/sources/{api.source}/queues/default/census"
        status, _ = await checker.call("get", path, template)
        assert status == 404
        status, body = await checker.call("post", path, template)
        assert status == 202 and body["state"] == "running", body
        for _ in range(600):
            status, body = await checker.call("get", path, template)
            if body["state"] != "running":
                break
            await asyncio.sleep(0.05)
        assert status == 200 and body["state"] == "done" and body["read"] == 2_500, body
        status, _ = await checker.call("post", path.replace("default", "nope"), template)
        assert status == 404


# ---------------------------------------------------------------------------- bulk runs


async def test_bulk_responses_match_the_document(sync_redis, redis_url) -> None:
    queue = Queue("default", connection=sync_redis)
    queue.enqueue_many([Queue.prepare_data(rq_tasks.record) for _ in range(3)])
    async with rq_api(redis_url) as api:
        checker = Checker(api.client, api.headers, api.source)
        await checker.load()
        base = f"{PREFIX}/api/sources/{{source}}/bulk"
        path = f"{PREFIX}/api/sources/{api.source}/bulk"
        status, run = await checker.call(
            "post", path, base, body={"action": "cancel", "filter": {"queue": "default"}}
        )
        assert status == 202 and run["state"] == "matching", run
        status, bad = await checker.call("post", path, base, body={"action": "stop"})
        assert status == 400, bad
        one = f"{path}/{run['id']}"
        for _ in range(600):
            status, run = await checker.call("get", one, f"{base}/{{run}}")
            if run["state"] != "matching":
                break
            await asyncio.sleep(0.05)
        assert (status, run["state"], run["matched"]) == (200, "matched", 3), run
        assert len(run["sample"]) == 3
        status, _ = await checker.call(
            "post", f"{one}/confirm", f"{base}/{{run}}/confirm", body={"count": 2}
        )
        assert status == 409
        status, run = await checker.call(
            "post", f"{one}/confirm", f"{base}/{{run}}/confirm", body={"count": 3}
        )
        assert status == 202, run
        for _ in range(600):
            status, run = await checker.call("get", one, f"{base}/{{run}}")
            if run["state"] == "done":
                break
            await asyncio.sleep(0.05)
        assert run["outcomes"] == {"done": 3} and run["progress"] == 1, run
        status, run = await checker.call("post", f"{one}/cancel", f"{base}/{{run}}/cancel")
        assert (status, run["state"]) == (200, "done"), run
        status, _ = await checker.call("get", f"{path}/0123abcd", f"{base}/{{run}}")
        assert status == 404
