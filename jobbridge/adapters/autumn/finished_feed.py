"""Autumn's finished jobs for the chart series: the entries newly pushed to its completed and
dead lists (newest at the head, trimmed to 1,000), counted by their ``finished_at_ms``.

The cursor names the newest entry already read of each list by the digest of its bytes. A
step reads the list from its head until it meets that entry (at most the 1,000 Autumn keeps)
and returns the *oldest* new entries first, so a burst bigger than one batch is read on from
where the step stopped; an entry that was trimmed or discarded before it was met makes the
step read what is left, and the series writer's seen set keeps counts exact.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, cast

import redis.exceptions

from jobbridge import offload
from jobbridge.adapters.autumn import records
from jobbridge.adapters.autumn.history import HISTORY_LIMIT
from jobbridge.adapters.finished import BACKFILL_MS, FinishedBatch, FinishedJob
from jobbridge.adapters.values import is_wrongtype
from jobbridge.pacing import Pacer

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from jobbridge.adapters.autumn.keys import AutumnKeys

#: entries one LRANGE reads while looking for the cursor's entry
PAGE = 100


def entry_fact(raw: bytes) -> tuple[str | None, int | None, str]:
    """(recorded id, finished_at_ms, queue) of one history entry; None where it has none
    (Autumn's entries for records it could not decode carry no time: they are not counted).
    Module-level, so big entries decode in jobbridge.offload's worker."""
    decoded = records.decode(raw)
    data = decoded.data or {}
    finished = data.get("finished_at_ms")
    ms = finished if isinstance(finished, int) and not isinstance(finished, bool) else None
    return records.usable_id(data.get("id")), ms, records.queue_of(decoded.data)


async def _new_entries(
    client: Redis, key: str, head: str | None
) -> tuple[list[tuple[bytes, str]], bool]:
    """The entries before ``head`` (by digest), newest first, and whether ``head`` was met."""
    entries: list[tuple[bytes, str]] = []
    pacer = Pacer()
    start, size = 0, 1
    while start < HISTORY_LIMIT + PAGE:
        # The head alone first: an idle step reads one entry, not a page.
        try:
            page = cast("list[bytes]", await client.lrange(key, start, start + size - 1))
        except redis.exceptions.ResponseError as exc:
            if is_wrongtype(exc):  # not a list (someone broke it): nothing to follow there
                return entries, False
            raise
        for raw in page:
            digest = (await offload.digest(raw)).hex()
            if digest == head:
                return entries, True
            entries.append((raw, digest))
            await pacer.tick()
        if len(page) < size:
            break
        start += size
        size = PAGE
    return entries, False


async def finished_since(
    client: Redis, keys: AutumnKeys, cursor: str | None, limit: int
) -> FinishedBatch:
    """The entries pushed to completed and dead since ``cursor``: at most ``limit`` of each
    list, oldest first."""
    heads: dict[str, str] = {}
    if cursor:
        try:
            loaded = json.loads(cursor)
            heads = {k: v for k, v in loaded.items() if isinstance(v, str)}
        except (ValueError, AttributeError):
            heads = {}
    not_before = int(time.time() * 1000) - BACKFILL_MS
    jobs: list[FinishedJob] = []
    more = False
    pacer = Pacer()
    for name, key, failed in (("c", keys.completed, False), ("d", keys.dead, True)):
        new, _met = await _new_entries(client, key, heads.get(name))
        taken = new[-limit:] if limit > 0 else []
        more = more or len(new) > len(taken)
        if taken:
            heads[name] = taken[0][1]
        for raw, _digest in reversed(taken):
            job_id, finished_ms, queue = await offload.decode(entry_fact, raw)
            if job_id is not None and finished_ms is not None and finished_ms >= not_before:
                jobs.append(FinishedJob(job_id, finished_ms, failed, queue))
            await pacer.tick()
    return FinishedBatch(tuple(jobs), json.dumps(heads, sort_keys=True), more)
