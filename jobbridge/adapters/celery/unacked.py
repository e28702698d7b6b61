"""What Celery's workers hold: the ``unacked`` hash (docs/celery.md §1.5), sorted in the
background into eta-held (scheduled) and reserved (running) messages, each delivery tag decoded
once (docs/celery.md §4.2). A refresh also records the priority of newly held messages for a
later retry (docs/celery.md §4.4, Retry priority); one run for a request does not.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, NamedTuple, cast, overload

from jobbridge import offload
from jobbridge.adapters.celery.keys import (
    JOBBRIDGE_PREFIX,
    CeleryKeys,
    JobbridgeKeys,
    clamp_priority,
)
from jobbridge.adapters.celery.messages import decode_unacked
from jobbridge.adapters.fields import key_text
from jobbridge.adapters.redis_errors import UNAVAILABLE_ERRORS
from jobbridge.adapters.values import is_wrongtype, ok
from jobbridge.pacing import Pacer

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger(__name__)

#: delivery tags followed at most; past it the counters say how many were left out
MAX_TRACKED = 100_000
#: tags read per ZRANGE, and values per HMGET, of one refresh
TAGS_PER_READ = 1_000
VALUES_PER_READ = 200
#: bytes of an unacked value decoded on the event loop; bigger ones in the decoding process
INLINE_BYTES = 64 * 1024
#: new tags sorted a chunk at a time (a few ms each) before they are merged in
SORT_CHUNK = 2_000
#: how long a recorded priority lasts, seconds: longer than the failed index keeps a task
#: (7 days, index_store.WINDOWS_S), so a failed task jobbridge lists can be retried at it
PRIORITY_SEEN_TTL_S = 8 * 86_400
#: recorded priorities written per pipeline; at most MAX_TRACKED wait to be written
PRIORITIES_PER_WRITE = 1_000


class Held(NamedTuple):
    """What one delivery tag holds, as far as sorting it needs."""

    task_id: str | None
    #: Unix ms of the message's eta; None when it has none (reserved, not scheduled)
    eta_ms: int | None
    #: Unix seconds it was delivered (the ``unacked_index`` score)
    delivered_s: float
    #: ``properties.priority`` as kombu reads it (clamped to 0..9); None when it has none
    priority: int | None = None


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
    message = decode_unacked(raw).message
    priority = None if message.priority is None else clamp_priority(message.priority)
    return Held(message.task_id, _ms(message.eta), delivered_s, priority)


def _ms(value: datetime | None) -> int | None:
    return None if value is None else int(value.timestamp() * 1000)


class UnackedView:
    """The ``unacked`` hash of one broker, sorted in the background."""

    def __init__(
        self, client: Redis, keys: CeleryKeys, *, jobbridge_prefix: str = JOBBRIDGE_PREFIX
    ) -> None:
        """Bind the view to a broker.

        Args:
            client: the broker's client (jobbridge's own keys live there too).
            keys: the broker's key names.
            jobbridge_prefix: where jobbridge keeps its keys (the recorded priorities).
        """
        self.client = client
        self.keys = keys
        self.own_keys = JobbridgeKeys(keys.global_keyprefix, jobbridge_prefix)
        #: (task id, priority) decoded and not yet recorded
        self._seen: list[tuple[str, int]] = []
        #: the step of a message without a priority: no record needed for it
        self._default_step = keys.step_of(None)
        self._record_failing = False
        self._held: dict[str, _Stored] = {}
        self._by_task: dict[str, str] = {}
        self.sorted = Sorted()
        #: values decoded so far (tests check that a refresh decodes only new tags)
        self.decoded = 0
        self._lock = asyncio.Lock()
        #: time.monotonic() when the latest refresh began
        self._began = float("-inf")

    async def refresh(self, *, record: bool = True) -> Sorted:
        """Read the tags, decode the new ones, merge the change in (bounded steps).

        Callers at the same moment (the background step, cancels racing each other) share
        one refresh: a caller that waited for one begun after it asked takes that one's
        result instead of reading everything again.

        Args:
            record: also write the priorities decoded so far (:meth:`priority_key`); a
                refresh made for a request passes False and leaves them to the background.
        """
        asked = time.monotonic()
        async with self._lock:
            if self._began > asked:
                result = self.sorted
            else:
                self._began = time.monotonic()
                result = await self._refresh()
        if record:
            await self._record_priorities()
        return result

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
            pipe = self.client.pipeline(transaction=False)
            pipe.hmget(self.keys.unacked, [tag for tag, _ in batch])
            (values,) = [ok(r) for r in await pipe.execute(raise_on_error=False)]
            if is_wrongtype(values):
                break  # named by the counters (``unacked`` is not a hash); nothing to sort
            for (tag, score), raw in zip(batch, values, strict=True):
                if raw is None:
                    continue  # acknowledged since the tags were read
                held = await offload.decode(_held, raw, score, inline_bytes=INLINE_BYTES)
                # Kept as a plain tuple: the collector stops tracking those, not named tuples.
                self._held[tag] = found[tag] = (held.task_id, held.eta_ms, held.delivered_s)
                self.decoded += 1
                if (
                    held.task_id
                    and held.priority is not None
                    and self.keys.step_of(held.priority) != self._default_step
                    and len(self._seen) < MAX_TRACKED
                ):
                    self._seen.append((held.task_id, held.priority))
                await pacer.tick()
        return found

    def priority_key(self, task_id: str) -> str:
        """The key a task's priority is recorded under, as seen while a worker held it."""
        return self.own_keys.priority_seen(task_id)

    async def _record_priorities(self) -> None:
        """Write the priorities decoded since the last call: ``SET … EX`` each, one pipeline
        per PRIORITIES_PER_WRITE, nothing read first. A Redis error drops that batch (their
        messages are not decoded again) and is logged once until writes succeed again."""
        seen, self._seen = self._seen, []
        pacer = Pacer()
        for start in range(0, len(seen), PRIORITIES_PER_WRITE):
            batch = seen[start : start + PRIORITIES_PER_WRITE]
            pipe = self.client.pipeline(transaction=False)
            for task_id, priority in batch:
                pipe.set(self.priority_key(task_id), priority, ex=PRIORITY_SEEN_TTL_S)
                await pacer.tick()
            try:
                replies = await pipe.execute(raise_on_error=False)
            except UNAVAILABLE_ERRORS as exc:
                self._record_failed(len(seen) - start, exc)
                return
            errors = [r for r in replies if isinstance(r, Exception)]
            if errors:
                self._record_failed(len(errors), errors[0])
            elif self._record_failing:
                self._record_failing = False
                log.warning("priorities of held tasks recorded again under %r", self._where)

    def _record_failed(self, count: int, exc: BaseException) -> None:
        if not self._record_failing:
            self._record_failing = True
            log.warning(
                "priorities of %d held tasks not recorded under %r (%s); a retry of those "
                "sends them at priority 0",
                count,
                self._where,
                exc,
            )

    @property
    def _where(self) -> str:
        return self.own_keys.priority_seen("*")

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
