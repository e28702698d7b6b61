"""The search across sources in one app holding a source of every system (Autumn, RQ, Celery
and the toy plugin, each seeded by its own contract harness): one correlation id finds the
jobs of all of them; the page escapes what it shows; the header's box is on every page; a
source that fails is reported, not raised; and a search reads the same, bounded, however
deep the queues are."""

from __future__ import annotations

import asyncio
import html
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
import redis

from jobbridge.search import MAX_RESULTS, SEARCH_PER_PAGE, search
from jobbridge.service import JobService
from jobbridge.settings import ServerConfig, Settings, SourceConfig
from jobbridge.sources import build_adapters
from tests.autumn.harness import AutumnHarness
from tests.celery.harness import CeleryHarness
from tests.contract.harness import State, SystemHarness
from tests.rq.harness import RqHarness
from tests.toy_system.harness import ToyHarness
from tests.web.conftest import VIEWER_TOKEN, ClientFactory, auth_config, bearer

pytestmark = pytest.mark.redis

HOSTILE = '<img src=x onerror="alert(1)"><script>alert(2)</script>'


@pytest.fixture
def harnesses(redis_url: str) -> Iterator[dict[str, SystemHarness]]:
    """One harness of every system on the test's database (their keys do not overlap)."""
    made: dict[str, SystemHarness] = {}
    try:
        for name, make in (
            ("autumn-src", AutumnHarness),
            ("rq-src", RqHarness),
            ("celery-src", CeleryHarness),
            ("toy-src", ToyHarness),
        ):
            made[name] = make(redis_url)
        yield made
    finally:
        for harness in made.values():
            harness.close()


def settings_of(harnesses: dict[str, SystemHarness], *more: SourceConfig, **kw: Any) -> Settings:
    return Settings(
        server=ServerConfig(cache_ttl_s=0.0),
        sources=(*(h.source(name) for name, h in harnesses.items()), *more),
        **kw,
    )


def tag_everywhere(harnesses: dict[str, SystemHarness], correlation: str) -> set[tuple[str, str]]:
    """A waiting and a failed job of one request in every source; (source, id) of each."""
    made: set[tuple[str, str]] = set()
    for name, harness in harnesses.items():
        for state in (State.ENQUEUED, State.FAILED):
            for job_id in harness.seed_tagged(
                state, 1, correlation_id=correlation, principal_id="user-7"
            ):
                made.add((name, job_id))
    return made


async def test_one_correlation_id_finds_the_jobs_of_every_system(
    make_client: ClientFactory, harnesses: dict[str, SystemHarness]
) -> None:
    correlation = f"req-{uuid.uuid4().hex}"
    tagged = tag_everywhere(harnesses, correlation)
    for harness in harnesses.values():
        harness.seed({State.ENQUEUED: 1})
    client = await make_client(settings_of(harnesses, auth=auth_config()))
    # Celery's failed tasks come through jobbridge's result index, filled in the background.
    body: dict[str, Any] = {}
    for _ in range(100):
        response = await client.get(
            f"/admin/api/search?q={correlation}", headers=bearer(VIEWER_TOKEN)
        )
        assert response.status == 200
        body = await response.json()
        if len(body["items"]) >= len(tagged):
            break
        await asyncio.sleep(0.1)
    assert {(i["source"], i["id"]) for i in body["items"]} == tagged
    assert {i["system"] for i in body["items"]} == {"autumn", "rq", "celery", "toy"}
    assert [c["source"] for c in body["covered"]["sources"]] == list(harnesses)

    page = await client.get(f"/admin/search?q={correlation}", headers=bearer(VIEWER_TOKEN))
    text = await page.text()
    assert page.status == 200
    for source, job_id in tagged:
        assert f'data-source="{source}" data-job-id="{job_id}"' in text
    # Each row links to its job page.
    first = next(i for i in body["items"] if i["source"] == "rq-src")
    assert f'href="{html.escape(first["url"])}"' in text


async def test_hostile_queries_and_names_are_escaped(
    make_client: ClientFactory, redis_url: str, harnesses: dict[str, SystemHarness]
) -> None:
    autumn = harnesses["autumn-src"]
    assert isinstance(autumn, AutumnHarness)
    job_id = autumn.autumn.enqueue(HOSTILE, {"correlation_id": HOSTILE})
    client = await make_client(settings_of(harnesses))
    response = await client.get(f"/admin/search?q={quote(HOSTILE)}")
    text = await response.text()
    assert response.status == 200
    assert "<script>alert" not in text and "<img src=x" not in text
    # In the heading (the query) and in the row (the job's name), as text.
    assert text.count("&lt;script&gt;alert(2)&lt;/script&gt;") >= 2
    # The header's box keeps the query, as an attribute's text.
    assert 'value="&lt;img src=x onerror=&#34;alert(1)&#34;&gt;&lt;script&gt;' in text
    # Raw in the JSON: the API returns what the system stored.
    body = await (await client.get(f"/admin/api/search?q={quote(HOSTILE)}")).json()
    assert [(i["id"], i["name"]) for i in body["items"]] == [(job_id, HOSTILE)]


async def test_the_header_box_is_on_every_page(
    make_client: ClientFactory, harnesses: dict[str, SystemHarness]
) -> None:
    (job_id,) = harnesses["autumn-src"].seed({State.ENQUEUED: 1})[State.ENQUEUED]
    client = await make_client(settings_of(harnesses))
    for path in (
        "/admin/jobs",
        "/admin/jobs/autumn-src",
        f"/admin/jobs/autumn-src/{job_id}",
        "/admin/audit",
        "/admin/search",
        "/admin/search?q=nothing-here",
        "/admin/jobs/no-such-source",
    ):
        response = await client.get(path)
        text = await response.text()
        assert '<form class="search-box" method="get" action="/admin/search"' in text, path
        assert 'name="q"' in text


async def test_the_page_without_a_query_shows_the_box_and_no_results(
    make_client: ClientFactory, harnesses: dict[str, SystemHarness]
) -> None:
    client = await make_client(settings_of(harnesses))
    response = await client.get("/admin/search")
    text = await response.text()
    assert response.status == 200 and 'id="search-results"' not in text
    response = await client.get("/admin/search?q=" + "x" * 300)
    assert "at most 200 characters" in await response.text()


async def test_a_failing_source_is_reported_and_the_others_searched(
    make_client: ClientFactory, harnesses: dict[str, SystemHarness], dead_url: str
) -> None:
    correlation = f"req-{uuid.uuid4().hex}"
    (job_id,) = harnesses["rq-src"].seed_tagged(
        State.ENQUEUED, 1, correlation_id=correlation, principal_id="u"
    )
    down = SourceConfig(name="down", system="autumn", redis_url=dead_url, queues=("default",))
    client = await make_client(settings_of(harnesses, down))
    body = await (await client.get(f"/admin/api/search?q={correlation}")).json()
    assert [(i["source"], i["id"]) for i in body["items"]] == [("rq-src", job_id)]
    covered = {c["source"]: c for c in body["covered"]["sources"]}
    assert covered["down"]["error"] and "unavailable" in covered["down"]["error"]
    assert covered["down"]["lists"] == []
    assert all(c["error"] is None for name, c in covered.items() if name != "down")
    page = await client.get(f"/admin/search?q={correlation}")
    assert "not searched" in await page.text()


def commands(conn: redis.Redis) -> int:
    return int(conn.info("stats")["total_commands_processed"])


async def test_an_unknown_id_costs_the_same_however_deep_the_queues(
    redis_url: str, sync_redis: redis.Redis, harnesses: dict[str, SystemHarness]
) -> None:
    """Counted in Redis commands, not time: a search reads the id's record and the first
    pages, so ten times more waiting jobs cost no more; and it finds nothing."""
    for harness in harnesses.values():
        harness.seed({State.ENQUEUED: SEARCH_PER_PAGE + 10, State.FAILED: 2})
    service = JobService(build_adapters(settings_of(harnesses).sources), cache_ttl_s=0.0)
    try:
        unknown = f"no-such-job-{uuid.uuid4().hex}"

        async def cost() -> int:
            before = commands(sync_redis)
            result = await search(service, unknown)
            after = commands(sync_redis)
            assert result.matches == ()
            assert all(c.error is None and c.looked_up_id for c in result.covered.sources)
            return after - before - 1  # the INFO of ``before``

        await cost()  # the first read loads scripts and opens connections
        shallow = await cost()
        for harness in harnesses.values():
            harness.seed({State.ENQUEUED: 10 * SEARCH_PER_PAGE})
        deep = await cost()
    finally:
        await service.close()
    # A thousand more waiting jobs per source: at most a command more per source (a page read
    # in one more range at another depth), never one per job.
    assert deep <= shallow + len(harnesses), (shallow, deep)
    # One page of records per list and source, not one command per waiting job.
    assert shallow < 4 * (SEARCH_PER_PAGE + 100)


async def test_more_matches_than_the_cap_are_cut_and_said_so(
    make_client: ClientFactory, harnesses: dict[str, SystemHarness]
) -> None:
    correlation = f"req-{uuid.uuid4().hex}"
    per_source = MAX_RESULTS // len(harnesses) + 10
    for harness in harnesses.values():
        harness.seed_tagged(
            State.ENQUEUED, per_source, correlation_id=correlation, principal_id="u"
        )
    client = await make_client(settings_of(harnesses))
    body = await (await client.get(f"/admin/api/search?q={correlation}")).json()
    assert len(body["items"]) == MAX_RESULTS
    assert body["covered"]["capped"] is True
    # Every source was read in full (only the reply is cut).
    for covered in body["covered"]["sources"]:
        enqueued = next(r for r in covered["lists"] if r["list"] == "enqueued")
        assert enqueued["read"] == enqueued["total"] == per_source
    page = await (await client.get(f"/admin/search?q={correlation}")).text()
    assert f"the first {MAX_RESULTS}; more matched" in page


async def test_the_find_box_looks_in_every_source_when_its_own_lacks_the_id(
    make_client: ClientFactory, harnesses: dict[str, SystemHarness]
) -> None:
    """The source page's "find a job" box: an id of another source opens that job's page; an
    id no source has (or several have) opens the search, which says so; a link (``?id=``)
    still answers 404 in its own source."""
    (rq_job,) = harnesses["rq-src"].seed({State.ENQUEUED: 1})[State.ENQUEUED]
    (autumn_job,) = harnesses["autumn-src"].seed({State.ENQUEUED: 1})[State.ENQUEUED]
    client = await make_client(settings_of(harnesses))

    response = await client.get(
        f"/admin/jobs/autumn-src/job?find={quote(' ' + rq_job + ' ')}", allow_redirects=False
    )
    assert response.status == 302
    assert response.headers["Location"] == f"/admin/jobs/rq-src/{rq_job}"
    page = await client.get(response.headers["Location"])
    assert page.status == 200 and rq_job in await page.text()

    # its own source still opens at once
    response = await client.get(f"/admin/jobs/autumn-src/job?find={autumn_job}")
    assert response.status == 200 and autumn_job in await response.text()

    missing = f"nowhere-{uuid.uuid4().hex}"
    response = await client.get(f"/admin/jobs/rq-src/job?find={missing}", allow_redirects=False)
    assert response.status == 302
    assert response.headers["Location"] == f"/admin/search?q={missing}"
    found = await client.get(response.headers["Location"])
    assert found.status == 200 and "No job matches" in await found.text()

    # a link names its source: no look-up elsewhere
    response = await client.get(f"/admin/jobs/autumn-src/job?id={rq_job}", allow_redirects=False)
    assert response.status == 404
