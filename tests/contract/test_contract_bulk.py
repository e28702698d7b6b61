"""Bulk actions (issue 19) on every registered system, over the HTTP API: a dry run matches
exactly the jobs of a filter and changes nothing; a confirmed run acts on exactly those, once
each, through the per-job scripts, and counts each outcome; a canceled run leaves the rest
untouched; viewers and read-only mode are refused the real run; session POSTs need CSRF.

The jobs are seeded by each system's harness (tests/contract/harness.py); runs with real
workers racing them are per system (tests/bulk/).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from jobbridge.bulk import runner
from jobbridge.settings import AuthConfig, ServerConfig, Settings
from jobbridge.web.app import create_app
from jobbridge.web.sessions import CSRF_HEADER
from tests.contract.conftest import (
    OPERATOR_TOKEN,
    PREFIX,
    SOURCE,
    VIEWER_TOKEN,
    Api,
    token,
)
from tests.contract.harness import State, SystemHarness
from tests.contract.test_contract import eventually
from tests.integration.processes import scaled

pytestmark = pytest.mark.redis

BULK = f"/api/sources/{SOURCE}/bulk"
#: the correlation id of the jobs a filter takes
TAG = "outage-2026-12-04"


async def post(
    api: Api, path: str, body: dict[str, Any] | None = None, token: str = OPERATOR_TOKEN
) -> tuple[int, Any]:
    response = await api.client.post(
        f"{PREFIX}{path}", json=body or {}, headers={"Authorization": f"Bearer {token}"}
    )
    return response.status, await response.json()


async def until(api: Api, run_id: str, *states: str, timeout: float = 60.0) -> dict[str, Any]:
    """The run once it is in one of ``states``."""
    deadline = time.monotonic() + scaled(timeout)
    while True:
        status, body = await api.get(f"{BULK}/{run_id}")
        assert status == 200, body
        if body["state"] in states:
            return body  # type: ignore[no-any-return]
        assert body["state"] not in ("failed",), body
        assert time.monotonic() < deadline, body
        await asyncio.sleep(0.05)


async def failed_total(api: Api, total: int) -> None:
    async def check() -> None:
        body = await api.snapshot()
        assert body["lists"]["failed"]["total"] == total, body["lists"]["failed"]["total"]

    await eventually(check, timeout=30.0)


async def dry_run(api: Api, body: dict[str, Any], token: str = OPERATOR_TOKEN) -> dict[str, Any]:
    status, run = await post(api, BULK, body, token=token)
    assert status == 202, run
    assert run["state"] == "matching", run
    return await until(api, run["id"], "matched")


async def test_a_bulk_retry_takes_exactly_the_jobs_its_filter_matches(
    harness: SystemHarness, api: Api
) -> None:
    harness.seed({State.FAILED: 200})
    tagged = harness.seed_tagged(State.FAILED, 300, correlation_id=TAG, principal_id="ops")
    await failed_total(api, 500)
    before = harness.counts()

    matched = await dry_run(
        api, {"action": "retry", "list": "failed", "filter": {"correlation_id": TAG}}
    )
    assert (matched["matched"], matched["looked_at"], matched["capped"]) == (300, 500, False)
    assert len(matched["sample"]) == 20
    assert {row["id"] for row in matched["sample"]} <= set(tagged)
    assert matched["acted"] == 0 and matched["outcomes"] == {}
    # The dry run changed nothing.
    assert harness.counts() == before

    status, body = await post(api, f"{BULK}/{matched['id']}/confirm", {"count": 300})
    assert status == 202, body
    done = await until(api, matched["id"], "done")
    assert (done["acted"], done["outcomes"], done["skipped"]) == (300, {"done": 300}, [])
    assert done["progress"] == 1.0
    after = harness.counts()
    assert after[State.ENQUEUED] == before[State.ENQUEUED] + 300

    # Each tagged job was retried once: its own lifecycle says so, and a second bulk retry
    # of the same filter finds nothing left to retry.
    status, detail = await api.job(tagged[0])
    assert status == 200, detail
    assert [e["status"] for e in detail["lifecycle"]].count("retried") == 1, detail
    await failed_total(api, 200)
    again = await dry_run(
        api, {"action": "retry", "list": "failed", "filter": {"correlation_id": TAG}}
    )
    assert again["matched"] == 0, again
    untouched = (await api.snapshot())["lists"]["failed"]["items"]
    assert untouched and not {row["id"] for row in untouched} & set(tagged)

    # One audit entry for the run, one per job.
    status, audit = await api.get("/api/audit?limit=1000")
    assert status == 200, audit
    entries = audit["entries"]
    runs = [e for e in entries if e["job_id"] == f"bulk:{matched['id']}"]
    assert len(runs) == 1, runs
    assert runs[0]["outcome"] == "done" and "done 300" in runs[0]["message"], runs
    assert f"correlation_id={TAG}" in runs[0]["message"], runs
    per_job = [e for e in entries if e["action"] == "retry" and e["job_id"] in set(tagged)]
    assert len(per_job) == 300


async def test_a_dry_run_changes_nothing_and_a_viewer_cannot_confirm(
    harness: SystemHarness, api: Api
) -> None:
    harness.seed({State.FAILED: 5, State.ENQUEUED: 5})
    await failed_total(api, 5)
    before = harness.counts()
    # A viewer may look (a dry run), not act.
    run = await dry_run(api, {"action": "discard", "list": "failed"}, token=VIEWER_TOKEN)
    assert run["matched"] == 5 and run["actor"] == "token:contract-viewer", run
    status, body = await post(api, f"{BULK}/{run['id']}/confirm", {"count": 5}, VIEWER_TOKEN)
    assert (status, body["error"]) == (403, "forbidden"), body
    status, body = await post(api, f"{BULK}/{run['id']}/cancel", {}, VIEWER_TOKEN)
    assert (status, body["error"]) == (403, "forbidden"), body
    # The count confirmed must be the count matched.
    status, body = await post(api, f"{BULK}/{run['id']}/confirm", {"count": 4})
    assert (status, body["error"]) == (409, "count_mismatch"), body
    assert harness.counts() == before
    status, body = await api.get(f"{BULK}/{run['id']}")
    assert (status, body["state"], body["acted"]) == (200, "matched", 0), body
    # Canceling the dry run ends it; it can no longer be confirmed.
    status, body = await post(api, f"{BULK}/{run['id']}/cancel")
    assert (status, body["state"]) == (200, "canceled"), body
    status, body = await post(api, f"{BULK}/{run['id']}/confirm", {"count": 5})
    assert (status, body["error"]) == (409, "wrong_state"), body
    assert harness.counts() == before
    # Bad requests say what is wrong.
    for bad, code in (
        ({"action": "stop"}, "bad_action"),
        ({"action": "retry", "list": "running"}, "bad_list"),
        ({"action": "retry", "filter": {"since": "yesterday"}}, "bad_filter"),
        ({"action": "retry", "filter": {"colour": "red"}}, "bad_filter"),
    ):
        status, body = await post(api, BULK, bad)
        assert (status, body["error"]) == (400, code), (bad, body)
    status, body = await api.get(f"{BULK}/0123456789abcdef")
    assert status == 404, body


async def test_canceling_a_bulk_run_midway_leaves_the_rest_untouched(
    harness: SystemHarness, api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = harness.seed({State.ENQUEUED: 200})[State.ENQUEUED]
    before = harness.counts()[State.ENQUEUED]
    assert before == 200

    async def listed() -> None:
        assert (await api.snapshot())["lists"]["enqueued"]["total"] == 200

    await eventually(listed)
    run = await dry_run(api, {"action": "cancel", "list": "enqueued"})
    assert run["matched"] == 200, run
    # Small batches with long pauses, so the cancel lands midway.
    monkeypatch.setattr(runner, "BATCH", 5)
    monkeypatch.setattr(runner, "PAUSE_MIN_S", 0.25)
    status, body = await post(api, f"{BULK}/{run['id']}/confirm", {"count": 200})
    assert status == 202, body
    await until(api, run["id"], "running")
    status, body = await post(api, f"{BULK}/{run['id']}/cancel")
    assert status == 200, body
    ended = await until(api, run["id"], "canceled")
    assert ended["canceled_by"] == "token:contract-ops", ended
    done = ended["outcomes"].get("done", 0)
    assert 0 < done < 200 and ended["acted"] == done, ended
    assert 0 < ended["progress"] < 1
    # Exactly the jobs it did are gone; the rest wait as they were.
    assert harness.counts()[State.ENQUEUED] == before - done
    status, audit = await api.get("/api/audit?limit=1000")
    canceled = [e for e in audit["entries"] if e["action"] == "cancel" and e["job_id"] in made]
    assert len(canceled) == done
    runs = [e for e in audit["entries"] if e["job_id"] == f"bulk:{run['id']}"]
    assert [e["outcome"] for e in runs] == ["canceled"], runs


@pytest.fixture
async def read_only_api(harness: SystemHarness) -> AsyncIterator[Api]:
    settings = Settings(
        server=ServerConfig(prefix=PREFIX, cache_ttl_s=0.0, read_only=True),
        sources=(harness.source(SOURCE),),
        auth=AuthConfig(
            tokens=(token("contract-ops", "operator", OPERATOR_TOKEN),),
            session_secret="contract-test-session-secret-0123456789",
        ),
    )
    client = TestClient(TestServer(create_app(settings)))
    await client.start_server()
    try:
        yield Api(client)
    finally:
        await client.close()


async def test_read_only_mode_refuses_the_real_run(
    harness: SystemHarness, read_only_api: Api
) -> None:
    api = read_only_api
    harness.seed({State.FAILED: 3})
    await failed_total(api, 3)
    before = harness.counts()
    run = await dry_run(api, {"action": "retry"})
    assert run["matched"] == 3
    status, body = await post(api, f"{BULK}/{run['id']}/confirm", {"count": 3})
    assert (status, body["error"]) == (403, "forbidden"), body
    assert "read-only" in body["message"]
    assert harness.counts() == before


async def test_session_posts_need_the_csrf_token(harness: SystemHarness, api: Api) -> None:
    harness.seed({State.FAILED: 2})
    await failed_total(api, 2)
    client = api.client
    page = await client.get(f"{PREFIX}/login")
    html = await page.text()
    marker = 'name="_csrf" value="'
    start = html.index(marker) + len(marker)
    login_csrf = html[start : html.index('"', start)]
    response = await client.post(
        f"{PREFIX}/login",
        data={"_csrf": login_csrf, "token": OPERATOR_TOKEN},
        allow_redirects=False,
    )
    assert response.status == 303, await response.text()
    page = await client.get(f"{PREFIX}/jobs")
    html = await page.text()
    marker = '<meta name="csrf-token" content="'
    start = html.index(marker) + len(marker)
    csrf = html[start : html.index('"', start)]
    body = {"action": "retry", "list": "failed"}
    refused = await client.post(f"{PREFIX}{BULK}", json=body)
    assert refused.status == 403, await refused.text()
    assert (await refused.json())["error"] == "csrf"
    taken = await client.post(f"{PREFIX}{BULK}", json=body, headers={CSRF_HEADER: csrf})
    assert taken.status == 202, await taken.text()
    run = await taken.json()
    matched = await until(api, run["id"], "matched")
    refused = await client.post(f"{PREFIX}{BULK}/{run['id']}/confirm", json={"count": 2})
    assert refused.status == 403, await refused.text()
    confirmed = await client.post(
        f"{PREFIX}{BULK}/{run['id']}/confirm",
        json={"count": matched["matched"]},
        headers={CSRF_HEADER: csrf},
    )
    assert confirmed.status == 202, await confirmed.text()
    done = await until(api, run["id"], "done")
    assert done["outcomes"] == {"done": 2} and done["actor"].startswith("token:"), done
