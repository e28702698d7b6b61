"""RQ's finished jobs for the chart series: the members newly added to each queue's finished
and failed registries, counted by the ``ended_at`` of their job hashes.

RQ scores those registries by expiry (``ended_at`` + the result or failure TTL), not by end
time, so they are followed by position: the cursor keeps, per registry, the (score, member)
last read, and a step reads the members after it (``adapters.finished.follow_zsets``). A
first start reads from 24 h ago, since a member that ended since then expires later. A member
whose job hash is gone (deleted, or expired with its result) has no ``ended_at`` and is not
counted. A job added with a shorter TTL than members already read sorts before the position
and is not seen (docs/rq.md, "How finished jobs are counted").
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, cast

from jobbridge.adapters.fields import key_text
from jobbridge.adapters.finished import (
    BACKFILL_MS,
    FinishedBatch,
    FinishedJob,
    dump_positions,
    follow_zsets,
    load_positions,
)
from jobbridge.adapters.rq.hashes import parse_timestamp

if TYPE_CHECKING:
    from collections.abc import Sequence

    from redis.asyncio import Redis

    from jobbridge.adapters.rq.keys import RqKeys

#: queues whose registries are followed, at most: every queue the adapter shows (its own
#: cap, 100), so a source's totals miss no queue the dashboard lists
MAX_QUEUES = 100
#: members one registry gives a step at least, however many registries share the batch
MIN_PER_KEY = 20


async def finished_since(
    client: Redis, keys: RqKeys, queues: Sequence[str], cursor: str | None, limit: int
) -> FinishedBatch:
    """Members added to the finished and failed registries of ``queues`` since ``cursor``."""
    followed = list(queues)[:MAX_QUEUES]
    registries = [(keys.finished(q), q, False) for q in followed]
    registries += [(keys.failed(q), q, True) for q in followed]
    positions = load_positions(cursor)
    # Registries no longer followed drop out of the cursor, so it stays bounded.
    positions = {k: v for k, v in positions.items() if k in {r[0] for r in registries}}
    now = time.time()
    per_key = max(MIN_PER_KEY, limit // max(1, len(registries)))
    found, more = await follow_zsets(
        client, [r[0] for r in registries], positions, now - BACKFILL_MS / 1000, per_key
    )
    members: list[tuple[bytes, str, bool]] = []
    for key, queue, failed in registries:
        members += [(member, queue, failed) for member, _score in found.get(key, [])]
    if not members:
        return FinishedBatch((), dump_positions(positions), more)
    pipe = client.pipeline(transaction=False)
    for member, _queue, _failed in members:
        pipe.hget(keys.job(key_text(member)), "ended_at")
    ended = await pipe.execute(raise_on_error=False)
    not_before = int(now * 1000) - BACKFILL_MS
    jobs: list[FinishedJob] = []
    for (member, queue, failed), raw in zip(members, ended, strict=True):
        if isinstance(raw, Exception) or raw is None:
            continue  # no job hash (or not a hash): no end time to count by
        try:
            at = parse_timestamp(cast("bytes", raw))
        except (ValueError, UnicodeDecodeError):
            continue
        if at is None:
            continue
        ms = int(at.timestamp() * 1000)
        if ms >= not_before:
            jobs.append(FinishedJob(key_text(member), ms, failed, queue))
    return FinishedBatch(tuple(jobs), dump_positions(positions), more)
