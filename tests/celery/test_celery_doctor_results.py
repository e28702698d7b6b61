"""``doctor`` says where a Celery source's results are when they are not where it looks, and
when they lack ``result_extended``: metas written by Celery's own result backend."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis
from click.testing import CliRunner

from jobbridge.cli import main
from tests.celery.celery_support import client_app

pytestmark = pytest.mark.redis


def doctor(*args: str) -> str:
    result = CliRunner().invoke(main, ["doctor", *args], catch_exceptions=False)
    out = result.stdout + result.stderr
    assert result.exit_code == 0, out
    return out


@pytest.fixture
def results_url(redis_server) -> Iterator[str]:
    """Another database of the same server (db 0: the rotating test databases start at 1)."""
    url = redis_server.url(0)
    redis.Redis.from_url(url).flushdb()
    yield url
    redis.Redis.from_url(url).flushdb()


def test_results_in_another_database_suggest_result_backend_url(
    celery_app, redis_url, results_url
) -> None:
    celery_app.conf.result_backend = results_url
    celery_app.backend.store_result(str(uuid.uuid4()), 3, "SUCCESS")
    # The broker's database holds Celery's bindings (a task was sent), no results.
    celery_app.send_task("examples.celery_app.add", args=(1, 2), ignore_result=True)
    out = doctor("--redis", redis_url)
    line = next(line for line in out.splitlines() if "result_backend_url" in line)
    assert line.startswith("⚠ source celery: no task results in " + redis_url), out
    assert f'"{results_url}"' in line


def test_results_without_result_extended_say_so(redis_url) -> None:
    with client_app(redis_url) as app:
        app.conf.result_extended = False
        app.backend.store_result(str(uuid.uuid4()), 3, "SUCCESS")
        app.send_task("examples.celery_app.add", args=(1, 2), ignore_result=True)
        out = doctor("--redis", redis_url)
    assert "set result_extended = True" in out, out
    assert "result_backend_url" not in out


def test_extended_results_in_place_need_no_advice(celery_app, redis_url) -> None:
    class Request:  # what a worker passes: the extended fields come from its request
        id, task, args, kwargs = str(uuid.uuid4()), "examples.celery_app.add", (1, 2), {}
        hostname, retries, delivery_info, ignore_result = "w1", 0, {"routing_key": "celery"}, False

    celery_app.backend.store_result(Request.id, 3, "SUCCESS", request=Request())
    celery_app.send_task("examples.celery_app.add", args=(1, 2), ignore_result=True)
    out = doctor("--redis", redis_url)
    assert "⚠" not in out, out
