"""Celery's finished jobs for the chart series: the entries newly added to jobbridge's own
result index (``index_store``), whose COMPLETED and FAILED buckets are scored by Celery's
``date_done``.

The index is followed by position, as RQ's registries are (``adapters.finished``): the
cursor keeps the (score, member) last read of each bucket. A first start reads from 24 h ago.
The index learns of most tasks as they finish (its subscription), after the position; a task
the backfill finds only later (it finished while jobbridge was down, or its message was
missed) has an older ``date_done`` and sorts before it: a slow sweep walks the last 24 h
(``SWEEP`` entries of each bucket every ``SWEEP_EVERY_S``) and the series writer's seen set
counts only what it had not counted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import redis.exceptions

from jobbridge.adapters.celery.index_summary import Bucket, read_row
from jobbridge.adapters.fields import key_text
from jobbridge.adapters.finished import (
    BACKFILL_MS,
    SWEPT_AT,
    FinishedBatch,
    FinishedJob,
    dump_positions,
    follow_zsets,
    load_positions,
    sweep_key,
    sweep_zsets,
)
from jobbridge.adapters.values import is_wrongtype
from jobbridge.pacing import Pacer

if TYPE_CHECKING:
    from jobbridge.adapters.celery.index_store import IndexStore

#: members of each bucket the sweep reads per pass step, and how often it steps: a task the
#: backfill indexes after newer ones (jobbridge was down while it finished) sorts before the
#: head's position; the sweep walks the last 24 h to find it
SWEEP = 200
SWEEP_EVERY_S = 10.0


async def finished_since(store: IndexStore, cursor: str | None, limit: int) -> FinishedBatch:
    """Index entries added to COMPLETED and FAILED since ``cursor``, with their queues."""
    buckets = {store.key(Bucket.COMPLETED): False, store.key(Bucket.FAILED): True}
    kept = set(buckets) | {sweep_key(k) for k in buckets} | {SWEPT_AT}
    positions = {k: v for k, v in load_positions(cursor).items() if k in kept}
    now_ms = store.now_ms()
    start = now_ms - BACKFILL_MS
    found, more = await follow_zsets(
        store.broker, list(buckets), positions, start, max(1, limit // 2)
    )
    swept = await sweep_zsets(
        store.broker,
        list(buckets),
        positions,
        start,
        SWEEP,
        every_s=SWEEP_EVERY_S,
        now_s=now_ms / 1000,
    )
    scored = [(m, s, buckets[key]) for key, page in found.items() for m, s in page]
    scored += [(m, s, buckets[key]) for key, page in swept.items() for m, s in page]
    if not scored:
        return FinishedBatch((), dump_positions(positions), more)
    try:
        rows = cast(
            "list[bytes | None]",
            await store.broker.hmget(store.rows, [m for m, _, _ in scored]),
        )
    except redis.exceptions.ResponseError as exc:
        if not is_wrongtype(exc):
            raise
        rows = [None] * len(scored)  # no summaries to read: counted without their queues
    pacer = Pacer()
    jobs: list[FinishedJob] = []
    for (member, score, failed), raw in zip(scored, rows, strict=True):
        bucket = Bucket.FAILED if failed else Bucket.COMPLETED
        task = read_row(member, raw if isinstance(raw, bytes) else None, bucket, score)
        jobs.append(FinishedJob(key_text(member), int(score), failed, task.queue))
        await pacer.tick()
    return FinishedBatch(tuple(jobs), dump_positions(positions), more)
