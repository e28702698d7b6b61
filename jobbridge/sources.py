"""Builds the adapters for the configured sources; the one place that knows every system.

Also detects which systems keep keys in a Redis (``serve --redis URL`` and ``doctor``), with a
handful of EXISTS checks plus one bounded SCAN, run once at start-up, never per request.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import redis.asyncio
import redis.exceptions

from jobbridge.adapters.autumn import DEFAULT_KEY_PREFIX as AUTUMN_DEFAULT_PREFIX
from jobbridge.adapters.autumn import AutumnAdapter
from jobbridge.adapters.base import JobAdapter, redis_errors, text
from jobbridge.config import Settings, SourceConfig, redact_url
from jobbridge.errors import ConfigError, SourceUnavailable
from jobbridge.model import System

if TYPE_CHECKING:
    from redis.asyncio import Redis

#: Systems jobbridge can read and act on today.
SUPPORTED: tuple[System, ...] = ("autumn",)
#: Keys looked at by detection's SCAN at the most.
DETECT_SCAN_LIMIT = 20_000
#: Autumn zsets every runtime creates under its prefix.
AUTUMN_MARKERS = ("processing", "delayed", "completed", "dead", "queue")


def connect(url: str) -> Redis:
    """An asyncio client with timeouts, so a dead Redis fails fast instead of hanging a page."""
    return redis.asyncio.Redis.from_url(
        url,
        socket_connect_timeout=3,
        socket_timeout=5,
        health_check_interval=30,
        retry_on_timeout=False,
    )


def build_adapter(config: SourceConfig, client: Redis) -> JobAdapter:
    """The adapter of one configured source."""
    if config.system == "autumn":
        return AutumnAdapter(
            client,
            source=config.name,
            key_prefix=config.effective_key_prefix,
            queues=config.queues,
            jobbridge_prefix=config.jobbridge_prefix,
        )
    raise ConfigError(
        f"sources: system {config.system!r} of source {config.name!r} is not supported yet "
        f"(supported: {', '.join(SUPPORTED)})"
    )


def build_adapters(configs: Sequence[SourceConfig]) -> dict[str, JobAdapter]:
    """Adapters for all sources; sources on the same Redis URL share one client."""
    clients: dict[str, Redis] = {}
    adapters: dict[str, JobAdapter] = {}
    for config in configs:
        client = clients.get(config.redis_url)
        if client is None:
            client = clients[config.redis_url] = connect(config.redis_url)
        adapters[config.name] = build_adapter(config, client)
    return adapters


@dataclass(frozen=True, slots=True)
class Detected:
    """A system found in a Redis, with the key prefix it uses."""

    system: System
    key_prefix: str
    #: why we think so, for doctor's report
    evidence: str

    @property
    def supported(self) -> bool:
        return self.system in SUPPORTED


async def detect(url: str) -> list[Detected]:
    """Which systems keep keys in this Redis.

    Raises:
        SourceUnavailable: the Redis could not be reached.
    """
    client = connect(url)
    try:
        async with redis_errors("detect"):
            return await _detect(client)
    finally:
        await client.aclose()


async def _detect(client: Redis) -> list[Detected]:
    found: list[Detected] = []
    autumn_prefixes: dict[str, str] = {}
    pipe = client.pipeline(transaction=False)
    for marker in AUTUMN_MARKERS:
        pipe.exists(f"{AUTUMN_DEFAULT_PREFIX}:{marker}")
    pipe.exists("rq:queues")
    pipe.exists("_kombu.binding.celery")
    # A least-privilege user (jobbridge acl) may not read every probed key: NOPERM there
    # means "not ours to look at", not "Redis is unusable".
    replies = [_unless_refused(r) for r in await pipe.execute(raise_on_error=False)]
    hits = [m for m, r in zip(AUTUMN_MARKERS, replies, strict=False) if r]
    if hits:
        autumn_prefixes[AUTUMN_DEFAULT_PREFIX] = f"keys {AUTUMN_DEFAULT_PREFIX}:{hits[0]}"
    rq_found, celery_found = bool(replies[-2]), bool(replies[-1])

    # Other Autumn prefixes: "<p>:processing" / "<p>:delayed" zsets beside "<p>:record:*".
    scanned = 0
    cursor = 0
    while True:
        cursor, keys = await client.scan(cursor, match="*:delayed", count=1000)
        scanned += 1000
        for raw in keys:
            key = text(raw) or ""
            prefix = key.removesuffix(":delayed")
            if prefix and prefix not in autumn_prefixes and not prefix.startswith("rq:"):
                autumn_prefixes[prefix] = f"key {key}"
        if cursor == 0 or scanned >= DETECT_SCAN_LIMIT:
            break
    for prefix, evidence in autumn_prefixes.items():
        # Prefixes found by name alone must hold a real zset (and be readable by us).
        by_marker = prefix == AUTUMN_DEFAULT_PREFIX and bool(hits)
        if by_marker or await _type_or_none(client, f"{prefix}:delayed") == b"zset":
            found.append(Detected("autumn", prefix, evidence))
    if rq_found:
        found.append(Detected("rq", "rq", "key rq:queues"))
    if celery_found:
        found.append(Detected("celery", "", "key _kombu.binding.celery"))
    return found


def _unless_refused(reply: object) -> object:
    """A probe's reply; None where ACLs refused it; any other error is raised."""
    if isinstance(reply, redis.exceptions.NoPermissionError):
        return None
    if isinstance(reply, Exception):
        raise reply
    return reply


async def _type_or_none(client: Redis, key: str) -> bytes | str | None:
    try:
        return await client.type(key)
    except redis.exceptions.NoPermissionError:
        return None


def detected_sources(url: str, detected: Sequence[Detected]) -> list[SourceConfig]:
    """Source configs for the supported systems detection found (named after the system)."""
    configs: list[SourceConfig] = []
    for item in detected:
        if not item.supported:
            continue
        name = (
            item.system
            if item.key_prefix == AUTUMN_DEFAULT_PREFIX
            else (f"{item.system}-{item.key_prefix.replace(':', '-')}")
        )
        configs.append(
            SourceConfig(
                name=name[:64], system=item.system, redis_url=url, key_prefix=item.key_prefix
            )
        )
    return configs


async def resolve_sources(settings: Settings) -> tuple[Settings, list[str]]:
    """Settings whose sources are configured: detection fills them in for ``--redis URL``.

    A Redis that is down or holds nothing recognisable is not fatal: jobbridge then watches
    Autumn's default prefix there, and the pages say when Redis is unreachable.

    Returns:
        The settings to serve, and notes for the operator about what detection decided.
    """
    url = settings.detect_url
    if settings.sources or not url:
        return settings, []
    notes: list[str] = []
    try:
        found = await detect(url)
    except SourceUnavailable as exc:
        found = []
        notes.append(
            f"{redact_url(url)} is unreachable ({exc.detail}); watching Autumn's default "
            f"prefix {AUTUMN_DEFAULT_PREFIX!r} until it answers"
        )
    for item in found:
        if not item.supported:
            notes.append(
                f"found {item.system} keys ({item.evidence}), which jobbridge does not read yet"
            )
    configs = detected_sources(url, found)
    if not configs:
        if found or not notes:
            notes.append(
                f"no Autumn keys found; watching the default prefix {AUTUMN_DEFAULT_PREFIX!r}"
            )
        configs = [SourceConfig(name="autumn", system="autumn", redis_url=url)]
    for config in configs:
        notes.append(
            f"source {config.name}: {config.system} at prefix {config.effective_key_prefix!r}"
        )
    return replace(settings, sources=tuple(configs)), notes
