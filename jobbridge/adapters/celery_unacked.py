"""What Celery's workers hold: the ``unacked`` hash, sorted into eta-held and reserved.

kombu writes every message a worker takes into ``unacked`` (delivery tag -> the message) and
``unacked_index`` (tag scored by when it was delivered) before Celery sees it, and removes it
on the acknowledgement (docs/celery.md §1.5). Nothing there says which worker holds a message
or why: a message with an ``eta`` is held until it is due (the scheduled list); any other is
prefetched, or running when the task acknowledges late (the running list).

Telling them apart takes decoding each message, so it is done here, in the background, once
per delivery tag: each :meth:`UnackedView.refresh` reads the tags by rank in chunks, decodes
only tags it has not seen, and forgets tags that left. Requests only slice what the last
refresh sorted and read the page's values by tag (``HMGET``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, NamedTuple, cast

from jobbridge import offload
from jobbridge.adapters.base import key_text
from jobbridge.adapters.celery_keys import CeleryKeys
from jobbridge.adapters.celery_messages import decode_unacked
from jobbridge.adapters.values import is_wrongtype, ok
from jobbridge.pacing import Pacer

if TYPE_CHECKING:
    from redis.asyncio import Redis

#: delivery tags followed at most; past it the counters say how many were left out
MAX_TRACKED = 100_000
#: tags read per ZRANGE, and values per HMGET, of one refresh
TAGS_PER_READ = 5_000
VALUES_PER_READ = 200
#: bytes of an unacked value decoded on the event loop; bigger ones in the decoding process
INLINE_BYTES = 64 * 1024


class Held(NamedTuple):
    """What one delivery tag holds, as far as sorting it needs."""

    task_id: str | None
    #: Unix ms of the message's eta; None when it has none (reserved, not scheduled)
    eta_ms: int | None
    #: Unix seconds it was delivered (the ``unacked_index`` score)
    delivered_s: float


@dataclass(frozen=True, slots=True)
class Sorted:
    """One refresh's result: tags by list, in display order."""

    #: eta-held tags, soonest due first
    scheduled: tuple[str, ...] = ()
    #: reserved tags, newest delivered first
    reserved: tuple[str, ...] = ()
    #: task ids held under any tag
    task_ids: frozenset[str] = frozenset()
    #: tags in ``unacked_index`` past MAX_TRACKED, not sorted
    left_out: int = 0
    #: what could not be read (a key of the wrong type)
    problem: str | None = None
    #: time.monotonic() of the refresh
    at: float = 0.0


def _held(raw: bytes, delivered_s: float) -> Held:
    entry = decode_unacked(raw)
    eta = entry.message.eta
    return Held(entry.message.task_id, _ms(eta), delivered_s)


def _ms(value: datetime | None) -> int | None:
    return None if value is None else int(value.timestamp() * 1000)


class UnackedView:
    """The ``unacked`` hash of one broker, sorted in the background."""

    def __init__(self, client: Redis, keys: CeleryKeys) -> None:
        self.client = client
        self.keys = keys
        self._held: dict[str, Held] = {}
        self.sorted = Sorted()
        self._by_task: dict[str, str] = {}
        #: values decoded so far (tests check that a refresh decodes only new tags)
        self.decoded = 0

    async def refresh(self) -> Sorted:
        """Read the tags, decode the new ones, sort. Bounded steps with yields between."""
        tags: list[tuple[str, float]] = []
        total = 0
        start = 0
        problem = None
        while len(tags) < MAX_TRACKED:
            stop = start + min(TAGS_PER_READ, MAX_TRACKED - len(tags)) - 1
            pipe = self.client.pipeline(transaction=False)
            pipe.zrange(self.keys.unacked_index, start, stop, withscores=True)
            pipe.zcard(self.keys.unacked_index)
            chunk, total = [ok(r) for r in await pipe.execute(raise_on_error=False)]
            if is_wrongtype(chunk) or is_wrongtype(total):
                problem = f"{key_text(self.keys.unacked_index)} is not a sorted set"
                chunk, total = [], 0
                break
            tags.extend((key_text(tag), float(score)) for tag, score in chunk)
            if len(chunk) <= stop - start:
                break
            start = stop + 1
        total = int(total)
        await self._decode_new(tags)
        present = {tag for tag, _ in tags}
        for gone in [t for t in self._held if t not in present]:
            del self._held[gone]
        self.sorted = self._sort(len(tags), total, problem)
        return self.sorted

    async def _decode_new(self, tags: Sequence[tuple[str, float]]) -> None:
        new = [(tag, score) for tag, score in tags if tag not in self._held]
        pacer = Pacer()
        for start in range(0, len(new), VALUES_PER_READ):
            batch = new[start : start + VALUES_PER_READ]
            values = cast(
                "list[bytes | None]",
                await self.client.hmget(self.keys.unacked, [tag for tag, _ in batch]),
            )
            for (tag, score), raw in zip(batch, values, strict=True):
                if raw is None:
                    continue  # acknowledged since the tags were read
                self._held[tag] = await offload.decode(_held, raw, score, inline_bytes=INLINE_BYTES)
                self.decoded += 1
                await pacer.tick()

    def _sort(self, tracked: int, total: int, problem: str | None) -> Sorted:
        scheduled = sorted(
            ((h.eta_ms, tag) for tag, h in self._held.items() if h.eta_ms is not None),
        )
        reserved = sorted(
            ((-h.delivered_s, tag) for tag, h in self._held.items() if h.eta_ms is None),
        )
        self._by_task = {h.task_id: tag for tag, h in self._held.items() if h.task_id}
        ids = frozenset(self._by_task)
        return Sorted(
            scheduled=tuple(tag for _, tag in scheduled),
            reserved=tuple(tag for _, tag in reserved),
            task_ids=ids,
            left_out=max(0, total - tracked),
            problem=problem,
            at=time.monotonic(),
        )

    def tag_of(self, task_id: str) -> str | None:
        """The delivery tag holding a task, as of the last refresh."""
        return self._by_task.get(task_id)

    def reserved_ids(self) -> list[str]:
        """Task ids of the reserved (not eta-held) tags, as of the last refresh."""
        held = (self._held.get(tag) for tag in self.sorted.reserved)
        return [h.task_id for h in held if h is not None and h.task_id]
