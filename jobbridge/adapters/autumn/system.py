"""Autumn's entry in the registry of systems (jobbridge.adapters.registry)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from jobbridge.adapters.autumn import census
from jobbridge.adapters.autumn.keys import DEFAULT_KEY_PREFIX
from jobbridge.adapters.detection import DETECT_SCAN_LIMIT, probe, zsets
from jobbridge.adapters.fields import text
from jobbridge.adapters.registry import AttemptsSpec, Detected, SearchSpec, SystemSpec

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from jobbridge.adapters.contract import JobAdapter
    from jobbridge.settings import SourceConfig

#: Autumn zsets every runtime creates under its prefix.
AUTUMN_MARKERS = ("processing", "delayed", "completed", "dead", "queue")


def build(config: SourceConfig, client: Redis, results: Redis | None) -> JobAdapter:
    from jobbridge.adapters.autumn.adapter import AutumnAdapter

    return AutumnAdapter(
        client,
        source=config.name,
        key_prefix=config.effective_key_prefix,
        queues=config.queues,
        jobbridge_prefix=config.jobbridge_prefix,
    )


async def detect(client: Redis) -> list[Detected]:
    """The default prefix by its markers, then other prefixes: "<p>:delayed" zsets found by
    a bounded SCAN; the default prefix first, the others in sorted order."""
    prefixes: dict[str, str] = {}
    found = await probe(client, *(f"{DEFAULT_KEY_PREFIX}:{m}" for m in AUTUMN_MARKERS))
    hits = [m for m, hit in zip(AUTUMN_MARKERS, found, strict=True) if hit]
    if hits:
        prefixes[DEFAULT_KEY_PREFIX] = f"keys {DEFAULT_KEY_PREFIX}:{hits[0]}"
    scanned = 0
    cursor = 0
    while True:
        cursor, keys = await client.scan(cursor, match="*:delayed", count=1000)
        scanned += 1000
        for raw in keys:
            key = text(raw) or ""
            prefix = key.removesuffix(":delayed")
            # RQ keeps a "rq:..:delayed"-like key space of its own.
            if prefix and prefix not in prefixes and not prefix.startswith("rq:"):
                prefixes[prefix] = f"key {key}"
        if cursor == 0 or scanned >= DETECT_SCAN_LIMIT:
            break
    # Sorted, so that the same keys give the same sources (and names, and URLs) every time.
    ordered = sorted(prefixes, key=lambda p: (p != DEFAULT_KEY_PREFIX, p))
    # Prefixes found by name alone must hold a real zset (and be readable by us).
    unproven = [p for p in ordered if not (p == DEFAULT_KEY_PREFIX and hits)]
    real = await zsets(client, [f"{p}:delayed" for p in unproven])
    return [Detected("autumn", p, prefixes[p]) for p in ordered if real.get(f"{p}:delayed", True)]


SYSTEM = SystemSpec(
    name="autumn",
    title="Autumn",
    default_key_prefix=DEFAULT_KEY_PREFIX,
    build=build,
    detect=detect,
    columns=(
        "id",
        "name",
        "queue",
        "status",
        "raw_status",
        "attempt",
        "max_attempts",
        "enqueued_at",
        "scheduled_for",
        "started_at",
        "finished_at",
        "worker",
        "last_error",
        "payload_preview",
        "extra",
        "principal_id",
        "correlation_id",
    ),
    # list_columns: every one (Autumn's admin page has them all)
    attempts=AttemptsSpec(
        label="Attempts",
        means="the attempt the job is on, of its max_attempts (Autumn's record keeps both)",
    ),
    # where Autumn holds the job (docs/autumn.md), beside jobbridge's status for it
    status_words=(
        ("queue", "enqueued"),
        ("delayed", "scheduled"),
        ("delayed", "retrying"),
        ("blocked", "blocked"),
        ("processing", "running"),
        ("completed", "completed"),
        ("dead", "failed"),
    ),
    search=SearchSpec(
        # unique_key and concurrency_key name a group of jobs, as a correlation id does
        extras=("unique_key", "concurrency_key"),
        covers="the first 100 waiting jobs across its queues, 100 delayed and 100 "
        "processing, the newest 250 completed jobs of the last 24 h and 250 dead of the last "
        "7 days (Autumn keeps at most 1,000 of each list), and the id's own record",
    ),
    census=census.plan,
)
