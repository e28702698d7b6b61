"""Finished jobs, followed from a cursor: what a system's feed gives the chart series, and the
sorted-set follower that RQ's registries and Celery's index share.

A feed reads the jobs that finished since an opaque cursor, a bounded batch at a time, from
the finish times the system itself stores; jobbridge's series writer counts each once
(docs/operations.md, "Chart series").
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from redis.asyncio import Redis

#: finished jobs one feed step returns at most
BATCH = 500
#: how far back a first start reads: what a 24 h chart shows
BACKFILL_MS = 24 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class FinishedJob:
    """One job that finished, as its system recorded it."""

    job_id: str
    #: the finish time the system stored, ms since the epoch
    finished_ms: int
    #: failed terminally (else completed)
    failed: bool
    queue: str | None


@dataclass(frozen=True, slots=True)
class FinishedBatch:
    """What one feed step read: the jobs, the cursor to read on from, and whether more are
    already waiting (the follower then steps again at once)."""

    jobs: tuple[FinishedJob, ...]
    cursor: str
    more: bool = False


# ------------------------------------------------------------------ sorted-set cursors

#: a position in a sorted set: (score, member as hex); members are bytes of any kind
ZPos = tuple[float, str]


def load_positions(cursor: str | None) -> dict[str, ZPos]:
    """The per-key positions of a cursor made by :func:`dump_positions` ({} when none or
    unreadable: the feed then starts over, and the writer's seen set keeps counts exact)."""
    if not cursor:
        return {}
    try:
        raw = json.loads(cursor)
    except ValueError:
        return {}
    if not isinstance(raw, dict):
        return {}
    out: dict[str, ZPos] = {}
    for key, value in raw.items():
        if (
            isinstance(value, list)
            and len(value) == 2
            and isinstance(value[0], int | float)
            and isinstance(value[1], str)
        ):
            out[str(key)] = (float(value[0]), value[1])
    return out


def dump_positions(positions: dict[str, ZPos]) -> str:
    return json.dumps({k: [s, m] for k, (s, m) in sorted(positions.items())}, sort_keys=True)


def _after(item: tuple[bytes, float], pos: ZPos) -> bool:
    member, score = item
    return (score, member.hex()) > (pos[0], pos[1]) if score == pos[0] else score > pos[0]


async def follow_zsets(
    client: Redis,
    keys: Sequence[str],
    positions: dict[str, ZPos],
    start_score: float,
    limit: int,
) -> tuple[dict[str, list[tuple[bytes, float]]], bool]:
    """The members of each sorted set that sort after its position (by score, then member
    bytes), at most ``limit`` per key, and whether any key has more; ``positions`` is updated
    in place. A key without a position starts at ``start_score``.

    One pipeline of ``ZRANGE BYSCORE … LIMIT`` for every key; a key whose whole page sits at
    or before its position (more members share one score than a page holds) is read on by
    rank in a second round trip."""
    if not keys:
        return {}, False
    pipe = client.pipeline(transaction=False)
    for key in keys:
        low = positions[key][0] if key in positions else start_score
        pipe.zrangebyscore(key, low, "+inf", start=0, num=limit + 1, withscores=True)
    replies = await pipe.execute(raise_on_error=False)
    found: dict[str, list[tuple[bytes, float]]] = {}
    stalled: list[str] = []
    more = False
    for key, reply in zip(keys, replies, strict=True):
        if isinstance(reply, Exception):  # another type under the name: nothing to follow
            continue
        page = cast("list[tuple[bytes, float]]", reply)
        pos = positions.get(key)
        new = [item for item in page if pos is None or _after(item, pos)]
        if pos is not None and page and not new and len(page) > limit:
            stalled.append(key)
            continue
        more = more or len(new) > limit
        found[key] = new[:limit]
    for key in stalled:
        # Ties past a page: read on by rank from the position's member, if it is still there.
        _score, member = positions[key]
        rank = cast("int | None", await client.zrank(key, bytes.fromhex(member)))
        if rank is None:
            continue
        page = cast(
            "list[tuple[bytes, float]]",
            await client.zrange(key, rank + 1, rank + limit, withscores=True),
        )
        more = more or len(page) == limit
        found[key] = page
    for key, page in found.items():
        if page:
            last_member, last_score = page[-1]
            positions[key] = (last_score, last_member.hex())
    return found, more


#: the cursor entry that says when a sweep last ran (see :func:`sweep_zsets`)
SWEPT_AT = "~swept_at"


def sweep_key(key: str) -> str:
    """The cursor entry of a key's sweep position."""
    return "~sweep:" + key


async def sweep_zsets(
    client: Redis,
    keys: Sequence[str],
    positions: dict[str, ZPos],
    start_score: float,
    limit: int,
    *,
    every_s: float,
    now_s: float,
) -> dict[str, list[tuple[bytes, float]]]:
    """A slow second pass over what sorts *before* each key's head position (members added
    late with an old score), ``limit`` members per key at most once every ``every_s``: it
    walks from ``start_score`` to the head and starts over. What it returns was mostly
    counted already; the series writer's seen set counts each job once. One pipeline."""
    swept_at = positions.get(SWEPT_AT)
    if not keys or swept_at is None or now_s - swept_at[0] < every_s:
        # A cursor's first step only starts the clock: the head has just read everything.
        if swept_at is None:
            positions[SWEPT_AT] = (now_s, "")
        return {}
    positions[SWEPT_AT] = (now_s, "")
    walking = [k for k in keys if k in positions]
    pipe = client.pipeline(transaction=False)
    for key in walking:
        low = positions.get(sweep_key(key), (start_score, ""))[0]
        pipe.zrangebyscore(
            key, max(low, start_score), positions[key][0], start=0, num=limit + 1, withscores=True
        )
    replies = await pipe.execute(raise_on_error=False)
    found: dict[str, list[tuple[bytes, float]]] = {}
    for key, reply in zip(walking, replies, strict=True):
        if isinstance(reply, Exception):
            continue
        page = cast("list[tuple[bytes, float]]", reply)
        pos = positions.get(sweep_key(key))
        head = positions[key]
        new = [
            item for item in page if (pos is None or _after(item, pos)) and not _after(item, head)
        ][:limit]
        found[key] = new
        if len(new) < limit:
            positions.pop(sweep_key(key), None)  # reached the head: start over next time
        else:
            member, score = new[-1]
            positions[sweep_key(key)] = (score, member.hex())
    return found
