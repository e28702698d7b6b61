"""What Celery's workers hold: the ``unacked`` hash, sorted into eta-held and reserved.

kombu writes every message a worker takes into ``unacked`` (delivery tag -> the message) and
``unacked_index`` (tag scored by when it was delivered) before Celery sees it, and removes it
on the acknowledgement (docs/celery.md §1.5). Nothing there says which worker holds a message
or why: a message with an ``eta`` is held until it is due (the scheduled list); any other is
prefetched, or running when the task acknowledges late (the running list).

Telling them apart takes decoding each message, so it is done here, in the background, once
per delivery tag: each :meth:`UnackedView.refresh` reads the tags by rank in chunks, decodes
only tags it has not seen, forgets tags that left, and merges the change into the sorted
lists a pair at a time (yielding to the loop: one sort of 100,000 tags takes a quarter of a
second). Requests only slice what the last refresh sorted and read the page's values by tag
(``HMGET``).
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, NamedTuple, cast, overload

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
TAGS_PER_READ = 1_000
VALUES_PER_READ = 200
#: bytes of an unacked value decoded on the event loop; bigger ones in the decoding process
INLINE_BYTES = 64 * 1024
#: new tags sorted a chunk at a time (a few ms each) before they are merged in
SORT_CHUNK = 2_000


class Held(NamedTuple):
    """What one delivery tag holds, as far as sorting it needs."""

    task_id: str | None
    #: Unix ms of the message's eta; None when it has none (reserved, not scheduled)
    eta_ms: int | None
    #: Unix seconds it was delivered (the ``unacked_index`` score)
    delivered_s: float


#: a Held as stored: (task id, eta ms, delivered s)
_Stored = tuple[str | None, int | None, float]


class Tags(Sequence[str]):
    """Delivery tags in display order, kept as sorted ``(key, tag)`` pairs."""

    __slots__ = ("pairs",)

    def __init__(self, pairs: list[tuple[float, str]] | None = None) -> None:
        self.pairs = pairs if pairs is not None else []

    def __len__(self) -> int:
        return len(self.pairs)

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> list[str]: ...

    def __getitem__(self, index: int | slice) -> str | list[str]:
        if isinstance(index, slice):
            return [tag for _, tag in self.pairs[index]]
        return self.pairs[index][1]


@dataclass(frozen=True, slots=True)
class Sorted:
    """One refresh's result: tags by list, in display order."""

    #: eta-held tags, soonest due first
    scheduled: Tags = field(default_factory=Tags)
    #: reserved tags, newest delivered first
    reserved: Tags = field(default_factory=Tags)
    #: task ids held under any tag
    task_ids: Collection[str] = frozenset()
    #: tags in ``unacked_index`` past MAX_TRACKED, not sorted
    left_out: int = 0
    #: what could not be read (a key of the wrong type)
    problem: str | None = None
    #: time.monotonic() of the refresh
    at: float = 0.0


def _held(raw: bytes, delivered_s: float) -> Held:
    entry = decode_unacked(raw)
    return Held(entry.message.task_id, _ms(entry.message.eta), delivered_s)


def _ms(value: datetime | None) -> int | None:
    return None if value is None else int(value.timestamp() * 1000)


class UnackedView:
    """The ``unacked`` hash of one broker, sorted in the background."""

    def __init__(self, client: Redis, keys: CeleryKeys) -> None:
        self.client = client
        self.keys = keys
        self._held: dict[str, _Stored] = {}
        self._by_task: dict[str, str] = {}
        self.sorted = Sorted()
        #: values decoded so far (tests check that a refresh decodes only new tags)
        self.decoded = 0
        self._lock = asyncio.Lock()
        #: time.monotonic() when the latest refresh began
        self._began = float("-inf")

    async def refresh(self) -> Sorted:
        """Read the tags, decode the new ones, merge the change in (bounded steps).

        Callers at the same moment (the background step, cancels racing each other) share
        one refresh: a caller that waited for one begun after it asked takes that one's
        result instead of reading everything again.
        """
        asked = time.monotonic()
        async with self._lock:
            if self._began > asked:
                return self.sorted
            self._began = time.monotonic()
            return await self._refresh()

    async def _refresh(self) -> Sorted:
        tags, total, problem = await self._read_tags()
        pacer = Pacer()
        present: set[str] = set()
        for tag, _ in tags:
            present.add(tag)
            await pacer.tick()
        new = await self._decode_new(tags)
        gone: dict[str, _Stored] = {}
        for tag in list(self._held):
            if tag not in present:
                gone[tag] = self._held.pop(tag)
            await pacer.tick()
        for tag, held in gone.items():
            if held[0] and self._by_task.get(held[0]) == tag:
                del self._by_task[held[0]]
        scheduled, reserved = self.sorted.scheduled, self.sorted.reserved
        if new or gone:
            timed: list[tuple[float, str]] = []
            untimed: list[tuple[float, str]] = []
            for tag, (task_id, eta_ms, delivered_s) in new.items():
                if task_id:
                    self._by_task[task_id] = tag
                if eta_ms is None:
                    untimed.append((-delivered_s, tag))
                else:
                    timed.append((eta_ms, tag))
                await pacer.tick()
            scheduled = Tags(await _merged(scheduled.pairs, timed, gone))
            reserved = Tags(await _merged(reserved.pairs, untimed, gone))
        self.sorted = Sorted(
            scheduled=scheduled,
            reserved=reserved,
            task_ids=self._by_task.keys(),
            left_out=max(0, total - len(tags)),
            problem=problem,
            at=time.monotonic(),
        )
        return self.sorted

    async def _read_tags(self) -> tuple[list[tuple[str, float]], int, str | None]:
        """The first MAX_TRACKED tags by rank with their scores, the total, a problem."""
        tags: list[tuple[str, float]] = []
        total: object = 0
        start = 0
        while len(tags) < MAX_TRACKED:
            stop = start + min(TAGS_PER_READ, MAX_TRACKED - len(tags)) - 1
            pipe = self.client.pipeline(transaction=False)
            pipe.zrange(self.keys.unacked_index, start, stop, withscores=True)
            pipe.zcard(self.keys.unacked_index)
            chunk, total = [ok(r) for r in await pipe.execute(raise_on_error=False)]
            if is_wrongtype(chunk) or is_wrongtype(total):
                return [], 0, f"{key_text(self.keys.unacked_index)} is not a sorted set"
            tags.extend((key_text(tag), float(score)) for tag, score in chunk)
            if len(chunk) <= stop - start:
                break
            start = stop + 1
        return tags, int(cast("int", total)), None

    async def _decode_new(self, tags: Sequence[tuple[str, float]]) -> dict[str, _Stored]:
        pacer = Pacer()
        new: list[tuple[str, float]] = []
        for tag, score in tags:
            if tag not in self._held:
                new.append((tag, score))
            await pacer.tick()
        found: dict[str, _Stored] = {}
        for start in range(0, len(new), VALUES_PER_READ):
            batch = new[start : start + VALUES_PER_READ]
            values = cast(
                "list[bytes | None]",
                await self.client.hmget(self.keys.unacked, [tag for tag, _ in batch]),
            )
            for (tag, score), raw in zip(batch, values, strict=True):
                if raw is None:
                    continue  # acknowledged since the tags were read
                held = await offload.decode(_held, raw, score, inline_bytes=INLINE_BYTES)
                # Kept as a plain tuple: the collector stops tracking those, not named tuples.
                self._held[tag] = found[tag] = (held.task_id, held.eta_ms, held.delivered_s)
                self.decoded += 1
                await pacer.tick()
        return found

    def tag_of(self, task_id: str) -> str | None:
        """The delivery tag holding a task, as of the last refresh."""
        return self._by_task.get(task_id)

    def reserved_ids(self) -> list[str]:
        """Task ids of the reserved (not eta-held) tags, as of the last refresh."""
        held = (self._held.get(tag) for _, tag in self.sorted.reserved.pairs)
        return [h[0] for h in held if h is not None and h[0]]


async def _merged(
    old: list[tuple[float, str]], new: list[tuple[float, str]], gone: Collection[str]
) -> list[tuple[float, str]]:
    """``old`` without the ``gone`` tags, with ``new`` merged in, in order: the new pairs are
    sorted a chunk at a time, then all are merged a pair at a time, yielding as it goes."""
    pacer = Pacer()
    runs = [old]
    for start in range(0, len(new), SORT_CHUNK):
        runs.append(sorted(new[start : start + SORT_CHUNK]))
        await pacer.tick()
    out: list[tuple[float, str]] = []
    for pair in heapq.merge(*runs):
        if pair[1] not in gone:
            out.append(pair)
        await pacer.tick()
    return out
