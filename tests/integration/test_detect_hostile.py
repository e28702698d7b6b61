"""``--redis`` detection when anyone may have written the key names: a bounded number of
sources, each with a valid, unique, stable name, and its exact key prefix."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from jobbridge import sources as detection
from jobbridge.acl import acl_setuser
from jobbridge.config import load_settings
from jobbridge.config_values import RESERVED_SOURCE_NAMES
from jobbridge.settings import Settings
from jobbridge.sources import resolve_sources

pytestmark = pytest.mark.redis

#: config_values.py's rule for source names
SOURCE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


async def detected(redis_url: str) -> tuple[dict[str, str], list[str]]:
    """Name -> key prefix of the detected sources, and the notes."""
    settings, notes = await resolve_sources(Settings(detect_url=redis_url))
    return {s.name: s.effective_key_prefix for s in settings.sources}, notes


def assert_valid_names(names: list[str]) -> None:
    assert len(set(names)) == len(names), names
    for name in names:
        assert SOURCE_NAME.fullmatch(name), name
        assert name not in RESERVED_SOURCE_NAMES


async def test_many_prefixes_are_capped_with_a_note(redis_client, redis_url) -> None:
    pipe = redis_client.pipeline(transaction=False)
    for n in range(400):
        pipe.zadd(f"tenant{n:03}:delayed", {"job": 1})
    await pipe.execute()
    sources, notes = await detected(redis_url)
    limit = detection.DETECT_SOURCE_LIMIT
    assert list(sources.values()) == [f"tenant{n:03}" for n in range(limit)]
    assert any(
        "found 400 Autumn prefixes" in note and f"first {limit}" in note and "config file" in note
        for note in notes
    ), notes
    assert (await detected(redis_url))[0] == sources  # the same names on every start


async def test_a_hostile_prefix_gets_a_valid_name_and_keeps_its_exact_prefix(
    redis_client, redis_url
) -> None:
    hostile = "a/b\u2039img\u202e\u2026>\x1b]0;t\x07"
    await redis_client.zadd(f"{hostile}:delayed", {"job": 1})
    await redis_client.zadd("billing:jobs:delayed", {"job": 1})
    await redis_client.set("not-a-zset:delayed", "x")
    sources, _ = await detected(redis_url)
    assert_valid_names(list(sources))
    assert sorted(sources.values()) == sorted(["billing:jobs", hostile])
    assert sources["autumn-billing-jobs"] == "billing:jobs"  # plain prefixes: names as before
    (name,) = [n for n, p in sources.items() if p == hostile]
    assert name.startswith("autumn-a-b-img")


async def test_long_prefixes_sharing_64_characters_get_distinct_names(
    redis_client, redis_url
) -> None:
    stem = "x" * 70
    for tail in ("one", "two"):
        await redis_client.zadd(f"{stem}{tail}:delayed", {"job": 1})
    sources, _ = await detected(redis_url)
    assert len(sources) == 2
    assert_valid_names(list(sources))
    assert sorted(sources.values()) == [f"{stem}one", f"{stem}two"]


async def test_names_that_would_collide_are_distinct_and_stable(redis_client, redis_url) -> None:
    for prefix in ("a:b", "a-b", "a/b", "a?b"):
        await redis_client.zadd(f"{prefix}:delayed", {"job": 1})
    sources, _ = await detected(redis_url)
    assert len(sources) == 4
    assert_valid_names(list(sources))
    assert sources["autumn-a-b"] == "a-b"  # the prefix its name copies exactly keeps it
    assert (await detected(redis_url))[0] == sources


async def test_prefixes_a_config_file_could_not_name_are_left_out(redis_client, redis_url) -> None:
    # Spaces would split the `jobbridge acl` line into rules of the attacker's choosing.
    await redis_client.zadd("x >hunter2 allkeys ~y:delayed", {"job": 1})
    await redis_client.zadd("ends-with-colon::delayed", {"job": 1})
    await redis_client.zadd("billing:jobs:delayed", {"job": 1})
    settings, notes = await resolve_sources(Settings(detect_url=redis_url))
    assert [s.effective_key_prefix for s in settings.sources] == ["billing:jobs"]
    assert any("2 Autumn prefixes" in note and "config file" in note for note in notes), notes
    assert "hunter2" not in acl_setuser("jobbridge", settings.sources, "operator")


async def test_detected_sources_pass_config_file_validation(
    redis_client, redis_url, tmp_path: Path
) -> None:
    prefixes = [
        "billing:jobs",
        "a/b\u2039img>\x1b[2J",
        "y" * 80 + "1",
        "y" * 80 + "2",
        "a-b",
        "a:b",
    ]
    for prefix in prefixes:
        await redis_client.zadd(f"{prefix}:delayed", {"job": 1})
    settings, _ = await resolve_sources(Settings(detect_url=redis_url))
    # The same sources written as a config file: json.dumps quotes are valid TOML strings.
    config = tmp_path / "jobbridge.toml"
    config.write_text(
        "".join(
            f"[[sources]]\nname = {json.dumps(s.name)}\nsystem = {json.dumps(s.system)}\n"
            f"redis_url = {json.dumps(s.redis_url)}\n"
            f"key_prefix = {json.dumps(s.effective_key_prefix)}\n"
            for s in settings.sources
        )
    )
    assert load_settings(config, env={}).sources == settings.sources


def test_the_docs_state_the_cap() -> None:
    page = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()
    assert f"at most {detection.DETECT_SOURCE_LIMIT} Autumn sources" in page
