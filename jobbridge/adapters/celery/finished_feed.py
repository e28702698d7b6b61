"""Celery's finished jobs for the chart series: the entries newly added to jobbridge's own
result index (``index_store``), whose COMPLETED and FAILED buckets are scored by Celery's
``date_done``.

The index is followed by position, as RQ's registries are (``adapters.finished``): the
cursor keeps the (score, member) last read of each bucket. A first start reads from 24 h ago.
The index learns of most tasks as they finish (its subscription), so new entries sort after
the position; a task the backfill finds later with an older ``date_done`` sorts before it
and is counted only when the series starts (or restarts) from its 24 h backfill.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from jobbridge.adapters.celery.index_summary import Bucket, read_row
from jobbridge.adapters.fields import key_text
from jobbridge.adapters.finished import (
    BACKFILL_MS,
    FinishedBatch,
    FinishedJob,
    dump_positions,
    follow_zsets,
    load_positions,
)
from jobbridge.pacing import Pacer

if TYPE_CHECKING:
    from jobbridge.adapters.celery.index_store import IndexStore


async def finished_since(store: IndexStore, cursor: str | None, limit: int) -> FinishedBatch:
    """Index entries added to COMPLETED and FAILED since ``cursor``, with their queues."""
    buckets = {store.key(Bucket.COMPLETED): False, store.key(Bucket.FAILED): True}
    positions = {k: v for k, v in load_positions(cursor).items() if k in buckets}
    now_ms = store.now_ms()
    found, more = await follow_zsets(
        store.broker, list(buckets), positions, now_ms - BACKFILL_MS, max(1, limit // 2)
    )
    scored = [(m, s, buckets[key]) for key, page in found.items() for m, s in page]
    if not scored:
        return FinishedBatch((), dump_positions(positions), more)
    rows = cast(
        "list[bytes | None]", await store.broker.hmget(store.rows, [m for m, _, _ in scored])
    )
    pacer = Pacer()
    jobs: list[FinishedJob] = []
    for (member, score, failed), raw in zip(scored, rows, strict=True):
        bucket = Bucket.FAILED if failed else Bucket.COMPLETED
        task = read_row(member, raw if isinstance(raw, bytes) else None, bucket, score)
        jobs.append(FinishedJob(key_text(member), int(score), failed, task.queue))
        await pacer.tick()
    return FinishedBatch(tuple(jobs), dump_positions(positions), more)
