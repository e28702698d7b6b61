"""The search across sources, for every registered system (jobbridge.search): a correlation id
or a principal id finds the system's jobs in every state it has, each linking to its job page;
an id finds its job even beyond the pages a search reads; an unknown id finds nothing; and
``covered`` says exactly how much of each list was read."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import quote

import pytest

from jobbridge.search import SEARCH_PER_PAGE
from tests.contract.conftest import PREFIX, SOURCE, VIEWER_TOKEN, Api
from tests.contract.harness import State, SystemHarness
from tests.contract.test_contract import eventually, listed

pytestmark = pytest.mark.redis


async def search(api: Api, query: str, token: str = VIEWER_TOKEN) -> dict[str, Any]:
    status, body = await api.get(f"/api/search?q={quote(query, safe='')}", token)
    assert status == 200, body
    return body  # type: ignore[no-any-return]


def covered_list(body: dict[str, Any], name: str) -> dict[str, Any]:
    (source,) = body["covered"]["sources"]
    return next(r for r in source["lists"] if r["list"] == name)


async def test_correlation_and_principal_ids_find_the_jobs_of_every_state(
    harness: SystemHarness, api: Api
) -> None:
    correlation, principal = f"req-{uuid.uuid4().hex}", f"user-{uuid.uuid4().hex[:8]}"
    tagged: dict[str, str] = {}
    for state in sorted(harness.states):
        for job_id in harness.seed_tagged(
            state, 1, correlation_id=correlation, principal_id=principal
        ):
            tagged[job_id] = state.value
    # Jobs of other requests in the same lists are not found.
    harness.seed({State.ENQUEUED: 2, State.FAILED: 1})

    async def found() -> dict[str, Any]:
        body = await search(api, correlation)
        assert {item["id"]: item["status"] for item in body["items"]}.keys() == tagged.keys()
        return body

    body = await eventually(found)
    for item in body["items"]:
        assert item["source"] == SOURCE and item["system"] == harness.system
        assert item["matched"] == "correlation_id"
        if tagged[item["id"]] in (State.ENQUEUED, State.FAILED):
            assert item["status"] == tagged[item["id"]]
        # Each links to its own job page, which a viewer can open.
        assert item["url"].startswith(f"{PREFIX}/jobs/{SOURCE}/"), item
        status, page = await api.get(item["url"].removeprefix(PREFIX), VIEWER_TOKEN)
        assert status == 200 and "<html" in page
    (covered,) = body["covered"]["sources"]
    assert covered["error"] is None and covered["looked_up_id"] is True
    assert covered["covers"]
    assert body["covered"]["capped"] is False

    by_principal = await search(api, principal)
    assert {item["id"] for item in by_principal["items"]} == tagged.keys()
    assert {item["matched"] for item in by_principal["items"]} == {"principal_id"}


async def test_an_unknown_id_finds_nothing_and_says_what_was_read(
    harness: SystemHarness, api: Api
) -> None:
    # a system that learns of finished jobs in the background (Celery's index) has them first
    await listed(api, harness.seed({State.ENQUEUED: 3, State.FAILED: 2}))
    flagged = harness.hostile()  # an unreadable entry is read (a flagged row), counted once
    body = await search(api, f"no-such-job-{uuid.uuid4().hex}")
    assert body["items"] == []
    (covered,) = body["covered"]["sources"]
    assert covered["error"] is None and covered["looked_up_id"] is True
    seeded = {"enqueued": 3, "failed": 2}
    for name, count in seeded.items():
        count += name == flagged.value
        assert covered_list(body, name) == {
            "list": name,
            "read": count,
            "total": count,
            "cut_short": False,
        }
    assert covered["cut_short"] is False


async def test_covered_is_true_to_what_was_read(harness: SystemHarness, api: Api) -> None:
    """More waiting jobs of one request than a search reads: every job read is found, the
    count found is the count ``covered`` says was read, and it says the list was cut short;
    a job beyond the read page is still found by its id."""
    correlation = f"req-{uuid.uuid4().hex}"
    extra = 5
    made = harness.seed_tagged(
        State.ENQUEUED, SEARCH_PER_PAGE + extra, correlation_id=correlation, principal_id="u"
    )
    body = await search(api, correlation)
    read = covered_list(body, "enqueued")
    assert read == {
        "list": "enqueued",
        "read": SEARCH_PER_PAGE,
        "total": SEARCH_PER_PAGE + extra,
        "cut_short": True,
    }
    found = {item["id"] for item in body["items"]}
    assert len(found) == read["read"] and found < set(made)
    assert body["covered"]["sources"][0]["cut_short"] is True

    (beyond, *_) = sorted(set(made) - found)
    by_id = await search(api, beyond)
    assert [(i["id"], i["matched"]) for i in by_id["items"]] == [(beyond, "id")]


async def test_a_query_must_be_given_and_short(api: Api) -> None:
    for query in ("", "%20%20", "x" * 201):
        status, body = await api.get(f"/api/search?q={query}", VIEWER_TOKEN)
        assert status == 400 and body["error"] == "bad_query", body
    status, body = await api.get("/api/search", VIEWER_TOKEN)
    assert status == 400
    # A read like any other: signed in, any role.
    status, body = await api.get("/api/search?q=x", "not-a-token")
    assert status == 401, body
