"""``jobbridge census SOURCE QUEUE``: progress on stderr, the counts as a table or JSON, the
result stored where the dashboard reads it, and a queue the source lacks refused."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from jobbridge.cli import main
from tests.census.seed import seed_rq_queue, truth

pytestmark = pytest.mark.redis


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_census_prints_progress_then_the_counts(redis_url, sync_redis) -> None:
    seed_rq_queue(sync_redis, 4_000, queue="deep")
    code, out, err = run("census", "--redis", redis_url, "rq", "deep", "--top", "2")
    assert code == 0, out + err
    assert "census: read 0 of 4,000 (0%)" in err and "census: read 4,000 of 4,000 (100%)" in err
    assert "== Census of queue deep of rq: done, 4,000 jobs read of 4,000" in out
    assert "app.tasks.send_email    2,000  50.0%" in out
    assert "(other)                 800    20.0%" in out
    assert "(other)" in out and "app.tasks.charge_card" not in out  # --top 2
    assert sync_redis.exists("jobbridge:census:rq:deep:result")  # the dashboard shows it too

    code, out, err = run("census", "--redis", redis_url, "rq", "deep", "--json", "-q")
    assert code == 0 and err.count("census:") == 0
    body = json.loads(out)
    assert {n["name"]: n["count"] for n in body["names"]} == truth(4_000)
    assert body["state"] == "done" and body["principals"] is None

    code, out, err = run("census", "--redis", redis_url, "rq", "nope")
    assert code == 2 and "has no queue nope (deep)" in err
