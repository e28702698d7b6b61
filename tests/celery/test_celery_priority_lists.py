"""The priority lists a Celery broker holds are found from its keys: a source without
``priority_steps`` reads every step found; one configured with other steps than the app's says
so in doctor, in the log (once) and in its counters' problems, instead of counting its waiting
messages silently wrong."""

from __future__ import annotations

import json
import logging

import pytest
from click.testing import CliRunner

from jobbridge.adapters.celery.adapter import CeleryAdapter
from jobbridge.cli import main
from jobbridge.model import ListName, SnapshotQuery
from jobbridge.sources import connect
from tests.celery.celery_support import send

pytestmark = pytest.mark.redis

STEPS = tuple(range(10))


@pytest.fixture
def ten_steps(celery_app, sync_redis):
    """Twenty real messages on ``celery``, priorities 0-9, by an app whose kombu transport
    has the priority steps 0-9 (kombu's lists ``celery\\x06\\x16<n>``)."""
    celery_app.conf.broker_transport_options = {"priority_steps": list(STEPS)}
    for n in range(20):
        send(celery_app, "add", n, n, queue="celery", priority=n % 10)
    lists = [
        k for k in sync_redis.scan_iter(match="celery\x06\x16*") if sync_redis.type(k) == b"list"
    ]
    # kombu's steps other than 0 and the default ones are there: 1, 2, 4, 5, 7, 8
    assert {int(k.rpartition(b"\x16")[2]) for k in lists} - {0, 3, 6, 9}, lists
    return sum(sync_redis.llen(k) for k in lists) + sync_redis.llen("celery")


def doctor(redis_url: str, tmp_path, steps: list[int] | None) -> tuple[int, str]:
    config = tmp_path / "jb.toml"
    config.write_text(
        f'[[sources]]\nname = "celery"\nsystem = "celery"\nredis_url = "{redis_url}"\n'
        + (f"priority_steps = {steps}\n" if steps is not None else "")
    )
    result = CliRunner().invoke(main, ["doctor", "--config", str(config)], catch_exceptions=False)
    return result.exit_code, result.stdout + result.stderr


def test_doctor_says_configured_steps_miss_lists(ten_steps, redis_url, tmp_path) -> None:
    assert ten_steps == 20
    code, out = doctor(redis_url, tmp_path, [0, 3, 6, 9])
    assert code == 0, out
    line = next(line for line in out.splitlines() if "priority lists" in line)
    assert line.startswith("⚠ source celery:"), out
    assert "priority_steps [0, 3, 6, 9]" in line and "'celery' steps 1, 2, 4, 5, 7, 8" in line
    assert "at least [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]" in line


@pytest.mark.parametrize("steps", [list(STEPS), None], ids=["matching", "not-configured"])
def test_doctor_is_quiet_when_the_steps_match_or_are_found(
    ten_steps, redis_url, tmp_path, steps
) -> None:
    code, out = doctor(redis_url, tmp_path, steps)
    assert code == 0 and "priority lists" not in out, out
    result = CliRunner().invoke(main, ["doctor", "--redis", redis_url], catch_exceptions=False)
    out = result.stdout + result.stderr
    assert result.exit_code == 0 and "priority lists" not in out, out


def test_snapshot_without_configured_steps_counts_and_lists_every_message(
    ten_steps, redis_url
) -> None:
    result = CliRunner().invoke(
        main,
        ["snapshot", "--redis", redis_url, "--json", "--per-page", "100"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.stdout + result.stderr
    snapshot = json.loads(result.stdout)["snapshots"][0]
    assert snapshot["counters"]["enqueued"] == ten_steps == 20
    assert snapshot["lists"]["enqueued"]["total"] == 20


async def test_counters_and_log_say_so_once(ten_steps, redis_url, caplog) -> None:
    caplog.set_level(logging.WARNING)
    wrong = CeleryAdapter(connect(redis_url), source="c", priority_steps=(0, 3, 6, 9))
    right = CeleryAdapter(connect(redis_url), source="r", priority_steps=STEPS)
    found = CeleryAdapter(connect(redis_url), source="f")
    try:
        # The background steps (refresh_queues), until one pass over the keys is done.
        for adapter in (wrong, right, found):
            while adapter.priority_lists.passes < 1:
                await adapter.refresh_queues()
        counters = await wrong.counters()
        problem = next(p for p in counters.problems if "priority lists" in p)
        assert "'celery' steps 1, 2, 4, 5, 7, 8" in problem
        assert counters.enqueued < ten_steps  # what the warning is about
        counted = await right.counters()
        assert not [p for p in counted.problems if "priority lists" in p]
        assert counted.enqueued == ten_steps
        # Not configured: the steps found are read, and nothing is wrong.
        assert found.keys.priority_steps == STEPS
        read = await found.counters()
        assert read.enqueued == ten_steps and not read.problems, read.problems
        page = await found.snapshot(SnapshotQuery.build(per_page=100))
        assert len(page.lists[ListName.ENQUEUED].items) == ten_steps
        # Another pass finds the same lists: the log has said it once.
        await wrong.priority_lists.run()
        said = [r for r in caplog.records if "priority lists" in r.getMessage()]
        assert len(said) == 1 and "source c:" in said[0].getMessage()
    finally:
        await wrong.close()
        await right.close()
        await found.close()
