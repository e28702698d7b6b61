"""The comparison (jobbridge.compare) of Autumn, RQ and Celery sources on one private Redis,
with real data: the overview's table, ``GET /api/compare`` and ``jobbridge compare --json``
agree with each source's own counters and workers; sorting; a source that cannot be read; a
hostile queue name."""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
from celery import Celery  # type: ignore[import-untyped]
from click.testing import CliRunner
from markupsafe import escape

from jobbridge.cli import main
from jobbridge.dev.autumn_emulator import Autumn
from jobbridge.settings import AuthConfig, ServerConfig, Settings, SourceConfig
from tests.celery.celery_support import CeleryWorkerPool, send
from tests.rq import tasks as rq_tasks
from tests.rq.rq_support import WorkerPool, enqueue
from tests.web import seed

pytestmark = pytest.mark.redis

HOSTILE_QUEUE = '<img src=x onerror="alert(1)">&q'
AUTUMN_QUEUES = ("default", HOSTILE_QUEUE)
RQ_QUEUES = ("default", "low")
CELERY_QUEUES = ("celery", "mail")


def sources(redis_url: str, dead_url: str | None = None) -> tuple[SourceConfig, ...]:
    made = (
        SourceConfig(name="orders", system="autumn", redis_url=redis_url, queues=AUTUMN_QUEUES),
        SourceConfig(name="rqjobs", system="rq", redis_url=redis_url, queues=RQ_QUEUES),
        SourceConfig(name="tasks", system="celery", redis_url=redis_url, queues=CELERY_QUEUES),
    )
    if dead_url is not None:
        made += (SourceConfig(name="gone", system="autumn", redis_url=dead_url),)
    return made


def toml(path: Path, redis_url: str) -> Path:
    lines = []
    for source in sources(redis_url):
        queues = ", ".join(json.dumps(q) for q in source.queues or ())
        lines += [
            "[[sources]]",
            f'name = "{source.name}"',
            f'system = "{source.system}"',
            f'redis_url = "{source.redis_url}"',
            f"queues = [{queues}]",
            "",
        ]
    path.write_text("\n".join(lines))
    return path


def wait_until(check: Any, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout}s")
        time.sleep(0.1)


@pytest.fixture
def three_systems(
    redis_url: str,
    sync_redis,
    autumn_emulator: Autumn,
    rq_workers: WorkerPool,
    celery_app: Celery,
    celery_workers: CeleryWorkerPool,
) -> dict[str, Any]:
    """Real data in all three: waiting jobs on two queues each, an overdue Autumn job, a busy
    RQ worker (a long job on "low"), an idle Celery worker (on a queue of its own)."""
    seed.fail(autumn_emulator, "disk full")  # its worker would recover a stuck job: first
    seed.stuck(autumn_emulator)
    seed.enqueue(autumn_emulator, "send_email", {"user_id": 1})
    seed.enqueue(autumn_emulator, "send_email", {"user_id": 2})
    seed.enqueue(autumn_emulator, "resize", queue=HOSTILE_QUEUE)
    for n in range(3):
        enqueue(sync_redis, rq_tasks.add, n, 1)
    long = enqueue(sync_redis, rq_tasks.sleep, 120, queue="low")
    busy = rq_workers.start(["low"])
    wait_until(
        lambda: long.get_status(refresh=True) == "started", "the RQ worker took the long job"
    )
    busy.wait_registered(sync_redis)
    for n in range(2):
        send(celery_app, "add", n, 1)
    send(celery_app, "send_email", "a@example.com", queue="mail")
    celery_workers.start(("elsewhere",))
    return {"rq_worker": busy.name}


async def read(client, path: str) -> Any:
    response = await client.get(path)
    assert response.status == 200, await response.text()
    return await response.json()


async def settled(client) -> dict[str, Any]:
    """/api/compare once the Celery worker's heartbeat has been heard."""
    deadline = time.monotonic() + 30
    while True:
        body = await read(client, "/admin/api/compare")
        row = next(r for r in body["rows"] if r["source"] == "tasks" and r["kind"] == "source")
        if row["workers_idle"] == 1 or time.monotonic() > deadline:
            return body  # type: ignore[no-any-return]
        await asyncio.sleep(0.3)


def rows_of(body: dict[str, Any], source: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    mine = [r for r in body["rows"] if r["source"] == source]
    assert mine[0]["kind"] == "source" and all(r["kind"] == "queue" for r in mine[1:])
    return mine[0], mine[1:]


def agree(row: dict[str, Any], queues: list[dict[str, Any]], counters: dict[str, Any]) -> None:
    """A source's rows say what its own counters say."""
    assert row["depth"] == counters["enqueued"]
    assert row["running_overdue"] == counters["running_overdue"]
    if counters["oldest_enqueued_age_s"] is None:
        assert row["oldest_enqueued_age_s"] is None
    else:
        assert row["oldest_enqueued_age_s"] == pytest.approx(
            counters["oldest_enqueued_age_s"], abs=5
        )
    by_name = {q["queue"]: q for q in queues}
    assert set(by_name) == {q["name"] for q in counters["queues"]}
    for queue in counters["queues"]:
        assert by_name[queue["name"]]["depth"] == queue["enqueued"]
        assert by_name[queue["name"]]["running_overdue"] is None


async def test_compare_agrees_with_each_sources_counters(
    make_client, redis_url: str, three_systems: dict[str, Any], tmp_path: Path
) -> None:
    client = await make_client(
        Settings(server=ServerConfig(cache_ttl_s=0.0), sources=sources(redis_url))
    )
    body = await settled(client)
    counters = {
        s["name"]: s["counters"] for s in (await read(client, "/admin/api/counters"))["sources"]
    }
    for name in ("orders", "rqjobs", "tasks"):
        row, queues = rows_of(body, name)
        agree(row, queues, counters[name])
        snapshot = await read(client, f"/admin/api/sources/{name}/snapshot?per_page=1")
        workers = snapshot["workers"]
        if workers is None:
            assert (row["workers_busy"], row["workers_idle"]) == (None, None)
        else:
            assert row["workers_busy"] + row["workers_idle"] + row["workers_away"] == len(workers)

    autumn, autumn_queues = rows_of(body, "orders")
    assert (autumn["depth"], autumn["running_overdue"]) == (3, 1)
    assert {q["queue"]: q["depth"] for q in autumn_queues} == {"default": 2, HOSTILE_QUEUE: 1}
    # Autumn registers no workers
    assert autumn["workers_busy"] is None and autumn["workers_away"] is None
    rq, rq_queues = rows_of(body, "rqjobs")
    assert rq["depth"] == 3
    assert (rq["workers_busy"], rq["workers_idle"]) == (1, 0)
    by_queue = {q["queue"]: q for q in rq_queues}
    assert (by_queue["low"]["workers_busy"], by_queue["low"]["depth"]) == (1, 0)
    assert (by_queue["default"]["workers_busy"], by_queue["default"]["workers_idle"]) == (0, 0)
    celery, celery_queues = rows_of(body, "tasks")
    assert celery["depth"] == 3
    assert (celery["workers_busy"], celery["workers_idle"]) == (0, 1)
    assert {q["queue"]: q["depth"] for q in celery_queues} == {"celery": 2, "mail": 1}
    for row in body["rows"]:
        # the rates come from the chart series: each window's counts, a rate or null
        for window, minutes in (("last_5m", 5), ("last_60m", 60)):
            rates = row[window]
            assert rates["minutes"] == minutes
            finished = rates["completed"] + rates["failed"]
            assert rates["per_minute"] == pytest.approx(finished / minutes)
            assert (rates["failure_rate"] is None) == (finished == 0)

    # The page shows the same numbers, escaped.
    html = await (await client.get("/admin/jobs")).text()
    assert HOSTILE_QUEUE not in html
    assert escape(HOSTILE_QUEUE) in html
    for row in body["rows"]:
        selector = f'data-kind="{row["kind"]}" data-source="{row["source"]}"'
        if row["queue"] is not None:
            selector += f' data-queue="{escape(row["queue"])}"'
        start = html.index(selector)
        cells = html[start : html.index("</tr>", start)]
        assert f'data-cell="depth">{row["depth"]}</td>' in cells, selector
    # The fragment that refreshes it holds the same table.
    fragment = await (await client.get("/admin/jobs/counters")).text()
    assert 'data-kind="queue" data-source="rqjobs" data-queue="low"' in fragment

    # The CLI's --json says the same (its own service, a one-shot read).
    config = toml(tmp_path / "jobbridge.toml", redis_url)
    result = await asyncio.to_thread(
        CliRunner().invoke, main, ["compare", "--json", "--config", str(config)]
    )
    assert result.exit_code == 0, result.output
    cli = json.loads(result.stdout)
    assert cli["sort"] == "worst" and cli["dir"] == "desc"
    for name in ("orders", "rqjobs", "tasks"):
        row, queues = rows_of(cli, name)
        agree(row, queues, counters[name])
    rq_cli, _ = rows_of(cli, "rqjobs")
    assert (rq_cli["workers_busy"], rq_cli["workers_idle"]) == (1, 0)
    table = await asyncio.to_thread(
        CliRunner().invoke, main, ["compare", "--config", str(config), "--sort", "depth"]
    )
    assert table.exit_code == 0, table.output
    assert "by depth desc" in table.stdout
    assert "<img src=x" in table.stdout  # a terminal shows text as text, control marks aside
    lines = [line.split()[0] for line in table.stdout.splitlines()[2:] if line.strip()]
    assert lines.index("orders") < lines.index("rqjobs")


async def test_sorting_and_an_unreadable_source(
    make_client, redis_url: str, dead_url: str, autumn_emulator: Autumn, tmp_path: Path
) -> None:
    for n in range(3):
        seed.enqueue(autumn_emulator, queue="default", payload={"n": n})
    client = await make_client(
        Settings(
            server=ServerConfig(cache_ttl_s=0.0),
            sources=(
                SourceConfig(
                    name="orders", system="autumn", redis_url=redis_url, queues=("default",)
                ),
                SourceConfig(
                    name="billing",
                    system="autumn",
                    redis_url=redis_url,
                    key_prefix="billing:jobs",
                    queues=("default",),
                ),
                SourceConfig(name="gone", system="autumn", redis_url=dead_url),
            ),
            auth=AuthConfig(),
        )
    )
    body = await read(client, "/admin/api/compare")
    order = [(r["source"], r["queue"]) for r in body["rows"]]
    # worst first: the source that cannot be read, then the oldest waiting job
    assert order == [
        ("gone", None),
        ("orders", None),
        ("orders", "default"),
        ("billing", None),
        ("billing", "default"),
    ]
    gone = body["rows"][0]
    assert gone["error"].startswith("Redis unavailable") and gone["depth"] is None

    ascending = await read(client, "/admin/api/compare?sort=depth&dir=asc")
    assert [r["source"] for r in ascending["rows"] if r["kind"] == "source"] == [
        "billing",
        "orders",
        "gone",  # unknown sorts last either way
    ]
    assert (ascending["sort"], ascending["dir"]) == ("depth", "asc")
    by_name = await read(client, "/admin/api/compare?sort=name")
    assert [r["source"] for r in by_name["rows"] if r["kind"] == "source"] == [
        "billing",
        "gone",
        "orders",
    ]
    bad = await client.get("/admin/api/compare?sort=%3Cscript%3E")
    assert bad.status == 400
    assert "<script>" not in (await bad.json())["message"]

    html = await (await client.get("/admin/jobs?sort=depth&dir=asc")).text()
    assert 'hx-get="/admin/jobs/counters?sort=depth&amp;dir=asc"' in html
    sorted_by = r'<th class="num" aria-sort="ascending" data-column="depth">(.*?)</th>'
    header = re.search(sorted_by, html)
    assert header and 'href="/admin/jobs?sort=depth&amp;dir=desc"' in header.group(1)
    table = html[html.index('<table class="jobs compare"') :]
    shown = re.findall(r'data-kind="source" data-source="([^"]+)"', table)
    assert shown == ["billing", "orders", "gone"]
    assert "Redis unavailable" in table
    fragment = await (await client.get("/admin/jobs/counters?sort=depth&dir=asc")).text()
    assert 'hx-get="/admin/jobs/counters?sort=depth&amp;dir=asc"' in fragment
    # a sort that names nothing shows the default order, never an error page
    page = await client.get("/admin/jobs?sort=%22%3E%3Cscript%3E&dir=sideways")
    assert page.status == 200
    text = await page.text()
    assert "<script>alert" not in text and 'hx-get="/admin/jobs/counters"' in text

    # The CLI: the same order, the unreadable source's row says so and why.
    config = tmp_path / "jobbridge.toml"
    config.write_text(
        f'[[sources]]\nname = "orders"\nsystem = "autumn"\nredis_url = "{redis_url}"\n'
        'queues = ["default"]\n\n'
        f'[[sources]]\nname = "billing"\nsystem = "autumn"\nredis_url = "{redis_url}"\n'
        'key_prefix = "billing:jobs"\nqueues = ["default"]\n\n'
        f'[[sources]]\nname = "gone"\nsystem = "autumn"\nredis_url = "{dead_url}"\n'
    )
    result = await asyncio.to_thread(
        CliRunner().invoke, main, ["compare", "--json", "--config", str(config)]
    )
    # the JSON is whole, and the exit code says a source could not be read
    assert result.exit_code == 3, result.output
    cli = json.loads(result.stdout)
    assert [(r["source"], r["queue"]) for r in cli["rows"]] == order
    text = await asyncio.to_thread(
        CliRunner().invoke, main, ["compare", "--config", str(config), "--sort", "depth"]
    )
    assert text.exit_code == 3, text.output
    shown = [line.split() for line in text.stdout.splitlines()[2:7]]
    assert [(cells[0], cells[2]) for cells in shown] == [
        ("orders", "3"),
        ("default", "3"),
        ("billing", "0"),
        ("default", "0"),
        ("gone", "down"),
    ]
    assert "gone: Redis unavailable" in text.stdout
