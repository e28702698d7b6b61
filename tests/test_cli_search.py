"""``jobbridge search`` and ``jobbridge show`` without ``--source``, over a config of several
sources (Autumn, RQ and Celery on one test database, seeded by their contract harnesses)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from click.testing import CliRunner

from jobbridge.cli import main
from tests.autumn.harness import AutumnHarness
from tests.celery.harness import CeleryHarness
from tests.contract.harness import State
from tests.rq.harness import RqHarness

pytestmark = pytest.mark.redis


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout + result.stderr


@pytest.fixture
def harnesses(redis_url: str) -> Iterator[tuple[AutumnHarness, RqHarness, CeleryHarness]]:
    autumn, rq, celery = AutumnHarness(redis_url), RqHarness(redis_url), CeleryHarness(redis_url)
    try:
        yield autumn, rq, celery
    finally:
        for harness in (autumn, rq, celery):
            harness.close()


def config(tmp_path: Path, redis_url: str, *extra: str) -> str:
    """A config naming one source of each system (and ``extra`` TOML tables)."""
    path = tmp_path / "jobbridge.toml"
    tables = [
        f'[[sources]]\nname = "{name}"\nsystem = "{system}"\nredis_url = "{redis_url}"\n'
        f"queues = {json.dumps(list(queues))}\n"
        for name, system, queues in (
            ("orders", "autumn", ("default", "work")),
            ("mail", "rq", ("default", "work")),
            ("tasks", "celery", ("celery",)),
        )
    ]
    path.write_text("\n".join([*tables, *extra]))
    return str(path)


def test_search_finds_a_request_in_every_source(harnesses, redis_url, tmp_path) -> None:
    autumn, rq, celery = harnesses
    correlation = f"req-{uuid.uuid4().hex}"
    tagged = {
        ("orders", job_id)
        for job_id in autumn.seed_tagged(
            State.FAILED, 1, correlation_id=correlation, principal_id="u"
        )
    }
    tagged |= {
        ("mail", job_id)
        for job_id in rq.seed_tagged(
            State.ENQUEUED, 2, correlation_id=correlation, principal_id="u"
        )
    }
    tagged |= {
        ("tasks", job_id)
        for job_id in celery.seed_tagged(
            State.ENQUEUED, 1, correlation_id=correlation, principal_id="u"
        )
    }
    rq.seed({State.ENQUEUED: 3})
    path = config(tmp_path, redis_url)

    code, out = run("search", "--config", path, "--json", correlation)
    assert code == 0, out
    body = json.loads(out)
    assert {(i["source"], i["id"]) for i in body["items"]} == tagged
    for item in body["items"]:
        url = f"/admin/jobs/{item['source']}/job?id={item['id']}"
        if "entry" in item:  # a Celery message names its entry
            url += "&entry=" + quote(item["entry"], safe="")
        assert item["url"] == url
    assert [c["source"] for c in body["covered"]["sources"]] == ["orders", "mail", "tasks"]
    mail = body["covered"]["sources"][1]
    assert {"list": "enqueued", "read": 5, "total": 5, "cut_short": False} in mail["lists"]

    code, out = run("search", "--config", path, correlation)
    assert code == 0, out
    assert out.startswith("SOURCE  SYSTEM")
    for source, job_id in tagged:
        assert job_id in out and source in out
    assert "searched:" in out and "mail (rq): the id looked up; enqueued 5" in out


def test_search_nothing_found_exits_1_and_a_bad_query_2(harnesses, redis_url, tmp_path) -> None:
    path = config(tmp_path, redis_url)
    code, out = run("search", "--config", path, "no-such-thing")
    assert code == 1 and "no job matches no-such-thing" in out, out
    code, out = run("search", "--config", path, "  ")
    assert code == 2 and "Type a job id" in out, out
    code, out = run("search", "--config", path, "x" * 201)
    assert code == 2 and "at most 200 characters" in out, out


def test_show_finds_an_id_in_any_source(harnesses, redis_url, tmp_path) -> None:
    autumn, rq, _celery = harnesses
    (autumn_id,) = autumn.seed({State.ENQUEUED: 1})[State.ENQUEUED]
    (rq_id,) = rq.seed({State.FAILED: 1})[State.FAILED]
    path = config(tmp_path, redis_url)

    code, out = run("show", "--config", path, rq_id)
    assert code == 0, out
    assert rq_id in out and "tests.rq.tasks.fail" in out
    code, out = run("show", "--config", path, "--json", autumn_id)
    assert code == 0, out
    assert json.loads(out)["source"] == "orders"

    code, out = run("show", "--config", path, "no-such-job")
    assert code == 1 and "not found in any source" in out, out


def test_show_names_the_sources_that_share_an_id(harnesses, redis_url, tmp_path) -> None:
    autumn, _rq, _celery = harnesses
    (job_id,) = autumn.seed({State.ENQUEUED: 1})[State.ENQUEUED]
    twin = f'[[sources]]\nname = "orders-again"\nsystem = "autumn"\nredis_url = "{redis_url}"\n'
    path = config(tmp_path, redis_url, twin)
    code, out = run("show", "--config", path, job_id)
    assert code == 1, out
    assert "is in 2 sources (orders, orders-again)" in out and "--source" in out
    code, out = run("show", "--config", path, "--source", "orders-again", job_id)
    assert code == 0 and job_id in out
