"""A fourth system from outside jobbridge/: the toy distribution in tests/toy_system/ is found
through the real ``jobbridge.systems`` entry point (importlib.metadata reads its dist-info) and
shows up everywhere a built-in system does, with no line of jobbridge/ naming it."""

from __future__ import annotations

import importlib.metadata
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner

from jobbridge.adapters import registry
from jobbridge.cli import main
from jobbridge.config import load_settings
from jobbridge.errors import ConfigError
from jobbridge.settings import ServerConfig, Settings, SourceConfig
from jobbridge.web.app import create_app
from tests.toy_system.install import installed


@pytest.fixture
def toy() -> Iterator[None]:
    """The toy distribution on sys.path, as an installed one would be; gone afterwards."""
    with installed():
        yield


def job(job_id: str, name: str, **extra: Any) -> str:
    return json.dumps(
        {"id": job_id, "name": name, "queue": "default", "args": [1, 2], "enqueued_at": 1.7e9}
        | extra
    )


@pytest.fixture
def toy_jobs(redis_url: str) -> Iterator[redis.Redis]:
    """Two waiting jobs, one failed job and one entry that is not a toy job."""
    client = redis.Redis.from_url(redis_url)
    client.lpush("toy:queue:default", job("w1", "send_mail"), job("w2", "resize"))
    client.rpush(
        "toy:failed",
        job("f1", "charge_card", error="card declined", failed_at=1.7e9 + 5),
        b"\xff not json",
    )
    yield client
    client.close()


@pytest.fixture
def config(tmp_path: Path, redis_url: str) -> Path:
    path = tmp_path / "jobbridge.toml"
    path.write_text(
        f'[[sources]]\nname = "play"\nsystem = "toy"\nredis_url = "{redis_url}"\ncolour = "green"\n'
    )
    return path


def run(*args: str) -> Any:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_the_toy_comes_from_the_entry_point_only(toy: None) -> None:
    points = importlib.metadata.entry_points(group=registry.ENTRY_POINT_GROUP)
    assert [p.value for p in points if p.name == "toy"] == ["toy_jobbridge.system:SYSTEM"]
    assert registry.names() == ("autumn", "rq", "celery", "toy")
    assert registry.title("toy") == "Toy"


def test_without_the_distribution_there_is_no_toy() -> None:
    registry.reload()
    assert "toy" not in registry.names()


def test_config_validation_takes_the_toys_own_keys(toy: None, config: Path) -> None:
    (source,) = load_settings(config, env={}).sources
    assert (source.system, source.effective_key_prefix) == ("toy", "toy")
    assert source.option("colour") == "green"
    config.write_text(config.read_text().replace("green", "pink"))
    with pytest.raises(ConfigError, match=r"sources\[0\]\.colour: must be red, green or blue"):
        load_settings(config, env={})
    config.write_text(
        config.read_text().replace('system = "toy"', 'system = "autumn"').replace("pink", "red")
    )
    with pytest.raises(ConfigError, match=r"colour: only applies to toy sources \(this is autumn"):
        load_settings(config, env={})
    config.write_text(config.read_text().replace('system = "autumn"', 'system = "toys"'))
    with pytest.raises(ConfigError, match="must be one of autumn, rq, celery, toy"):
        load_settings(config, env={})


def test_snapshot_and_retry_from_the_cli(toy: None, toy_jobs: redis.Redis, config: Path) -> None:
    result = run("snapshot", "--config", str(config), "--json")
    assert result.exit_code == 0, result.output
    (snapshot,) = json.loads(result.output)["snapshots"]
    assert snapshot["system"] == "toy"
    assert snapshot["counters"]["enqueued"] == 2
    text = run("snapshot", "--config", str(config)).output
    assert "send_mail" in text and "charge_card" in text and "not a toy job" in text

    # The retry is the toy's Lua script, run after jobbridge's shared prelude.
    retried = run("retry", "--config", str(config), "--actor", "ann", "f1")
    assert retried.exit_code == 0, retried.output
    assert retried.output.startswith("done: Retried job f1 as ")
    assert toy_jobs.llen("toy:queue:default") == 3
    assert toy_jobs.llen("toy:failed") == 1
    again = run("retry", "--config", str(config), "f1")
    assert again.exit_code == 1
    assert "already retried" in again.output, again.output
    refused = run("cancel", "--config", str(config), "--json", "f1x", "w1")
    replies = [json.loads(line) for line in refused.output.splitlines()]
    assert [r.get("error") or r["outcome"] for r in replies] == ["not_found", "canceled"]
    assert toy_jobs.llen("toy:queue:default") == 2
    audit = run("audit", "--config", str(config)).output
    assert "play  ann  retry f1 -> " in audit and ": done" in audit, audit


def test_a_forged_queue_never_names_the_key_a_retry_writes(
    toy: None, toy_jobs: redis.Redis, config: Path
) -> None:
    toy_jobs.rpush("toy:failed", job("f2", "x", queue="a\x00b", error="e"))
    result = run("retry", "--config", str(config), "f2")
    assert result.exit_code == 1
    assert result.output.startswith("corrupt: The stored queue 'a\\x00b' cannot name a queue")
    wrong = run("discard", "--config", str(config), "w1")
    assert wrong.output.startswith("not_found: Job w1 is not in the failed list"), wrong.output
    assert [k for k in toy_jobs.keys("toy:queue:*")] == [b"toy:queue:default"]


def test_doctor_and_acl(toy: None, toy_jobs: redis.Redis, redis_url: str, config: Path) -> None:
    doctor = run("doctor", "--redis", redis_url)
    assert "toy (prefix 'toy', keys toy:queue:*): supported" in doctor.output, doctor.output
    acl = run("acl", "--config", str(config), "--redis-version", "7.0", "--role", "operator")
    line = acl.output.splitlines()[-1]
    assert "~toy:* ~jobbridge:*" in line and "+evalsha" in line, acl.output


async def test_pages_api_and_openapi(
    toy: None, toy_jobs: redis.Redis, redis_url: str, aiohttp_client: Any
) -> None:
    settings = Settings(
        server=ServerConfig(cache_ttl_s=0.0),
        sources=(SourceConfig(name="play", system="toy", redis_url=redis_url),),
    )
    client = await aiohttp_client(create_app(settings))
    overview = await (await client.get("/admin/jobs")).text()
    assert ">play<" in overview and "toy" in overview
    source = await (await client.get("/admin/jobs/play")).text()
    assert "send_mail" in source and "charge_card" in source and "card declined" in source
    page = await client.get("/admin/jobs/play/f1")
    assert page.status == 200 and "charge_card" in await page.text()
    sources = await (await client.get("/admin/api/sources")).json()
    assert [(s["name"], s["system"]) for s in sources["sources"]] == [("play", "toy")]
    snapshot = await (await client.get("/admin/api/sources/play/snapshot")).json()
    assert snapshot["counters"]["enqueued"] == 2
    document = await (await client.get("/admin/api/openapi.json")).json()
    enum = document["components"]["schemas"]["Job"]["properties"]["system"]["enum"]
    assert enum == ["autumn", "rq", "celery", "toy"]
