"""History lists read by what changed: newest-first Redis lists that a system pushes at the
head and trims at the tail (Autumn's completed and dead lists). How a read decides what
changed is :class:`ListHistory`'s docstring.
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, TypeVar, cast, overload

from jobbridge import offload
from jobbridge.pacing import Pacer

if TYPE_CHECKING:
    from redis.asyncio import Redis

S = TypeVar("S")
R = TypeVar("R")

#: head entries read first when looking for where the known head went
FIRST_WINDOW = 16
#: effective time of an entry that sorts as the newest: it has no time of its own and no
#: newer neighbour to borrow one from
NEWEST = 2**62


class Entry(NamedTuple, Generic[S]):
    """One known entry: the digest of its exact bytes, its size and its summary."""

    digest: bytes
    size: int
    summary: S


#: an entry as stored: plain tuples of plain values only
_Row = tuple[bytes, int, tuple[Any, ...]]


class Entries(Sequence[Entry[S]]):
    """The known entries of a list, read as :class:`Entry`.

    Stored as plain tuples of plain values: the garbage collector stops tracking exact tuples
    of untracked values, and a process following a hundred sources holds two hundred thousand
    entries, which every full collection would otherwise walk while the event loop waits.
    (It does not do that for named tuples or dataclasses.)
    """

    __slots__ = ("_make", "rows")

    def __init__(self, rows: tuple[_Row, ...], make: Callable[[tuple[Any, ...]], S]) -> None:
        self.rows = rows
        self._make = make

    def __len__(self) -> int:
        return len(self.rows)

    @overload
    def __getitem__(self, index: int) -> Entry[S]: ...

    @overload
    def __getitem__(self, index: slice) -> list[Entry[S]]: ...

    def __getitem__(self, index: int | slice) -> Entry[S] | list[Entry[S]]:
        if isinstance(index, slice):
            return [self._entry(row) for row in self.rows[index]]
        return self._entry(self.rows[index])

    def _entry(self, row: _Row) -> Entry[S]:
        return Entry(row[0], row[1], self._make(row[2]))

    def digest(self, index: int) -> bytes:
        return self.rows[index][0]


class ListChanged(Exception):
    """The list moved between the probe and a read by position; sync again."""


Summarize = Callable[[bytes], Awaitable[S]]


class ListHistory(Generic[S]):
    """The known state of the first ``limit`` entries of one list.

    It remembers a digest of each entry's exact bytes and a small summary (its time, the id it
    records), never the bytes. Each read starts from three cheap probes taken with the
    counters (``LLEN``, the head and the tail) and then costs what changed: nothing, when
    length, head and tail are what was known; the new entries only, when the known head is
    found further down and the list is exactly the new entries followed by what was known, cut
    at the new length (checked on the tail); otherwise one read of the whole bounded list (an
    entry removed from the middle, the list rewritten, deleted or trimmed past what was known),
    decoding only entries not seen before.

    Two byte-identical entries are indistinguishable here, as they are to the ``LREM`` that
    removes them, so a change that only swaps identical copies goes unnoticed. The reads are
    plain pipelines, not MULTI (a read-only ACL user built from ``+@read`` has no MULTI): each
    check compares only what one pipeline returned, so a list that changed while it was read
    fails a check and is read in full, or is known as it was a moment earlier and corrected by
    the next probes. Rows for a page are read by position (``LRANGE`` / ``LINDEX``) and checked
    against the digests, so a list that moves between the probe and the page read is read again.
    """

    def __init__(
        self,
        key: str,
        limit: int,
        summarize: Summarize[S],
        make: Callable[[tuple[Any, ...]], S],
    ) -> None:
        """Args:
        key: the list's key.
        limit: how many of its first entries to follow (the system's trim).
        summarize: the summary of an entry's bytes (a named tuple of plain values).
        make: that summary again from the plain tuple it is stored as (``_make``).
        """
        self.key = key
        self.limit = limit
        self._summarize = summarize
        self._make = make
        self.entries: Entries[S] = Entries((), make)
        #: bumps whenever ``entries`` changes
        self.version = 0
        #: entries transferred from Redis so far, and full reads (for tests and benchmarks)
        self.transferred = 0
        self.full_reads = 0

    # ------------------------------------------------------------------ sync

    @staticmethod
    def probe(pipe: Any, key: str) -> None:
        """Queue the three probes on a pipeline (its replies go to :meth:`update`)."""
        pipe.llen(key)
        pipe.lindex(key, 0)
        pipe.lindex(key, -1)

    async def update(
        self, client: Redis, length: int, head: bytes | None, tail: bytes | None
    ) -> None:
        """Bring the known entries up to date, given the probes' replies."""
        view = min(length, self.limit)
        if view == 0 or head is None:
            self._set(())
            return
        known = self.entries
        if known and length <= self.limit and tail is not None:
            if (
                view == len(known)
                and await offload.digest(head) == known.digest(0)
                and await offload.digest(tail) == known.digest(-1)
            ):
                return
        if known:
            if await self._read_new_head(client):
                return
        await self.read_all(client)

    async def _read_new_head(self, client: Redis) -> bool:
        """Read head windows until the known head shows up; False when a full read is due."""
        known = self.entries
        wanted = known.digest(0)
        window = FIRST_WINDOW
        while True:
            # Range first, length last: an entry removed or pushed while these run makes the
            # length disagree with the range, and the checks below fall back to a full read.
            pipe = client.pipeline(transaction=False)
            pipe.lrange(self.key, 0, window - 1)
            pipe.lindex(self.key, -1)
            pipe.llen(self.key)
            chunk, tail, length = await pipe.execute()
            self.transferred += len(chunk)
            if int(length) > self.limit:
                return False
            view = int(length)
            digests = await _digests(chunk)
            if wanted in digests:
                fresh = digests.index(wanted)
                kept = view - fresh
                if not 1 <= kept <= len(known) or tail is None:
                    return False
                if await offload.digest(tail) != known.digest(kept - 1):
                    return False
                new = await self._rows(chunk[:fresh], digests[:fresh])
                self._set((*new, *known.rows[:kept]))
                return True
            if window >= view:
                # The whole bounded list is in hand: none of it was known at the head.
                self.full_reads += 1
                self._set(tuple(await self._rows(chunk[:view], digests[:view])))
                return True
            window = min(view, window * 8)

    async def read_all(self, client: Redis) -> None:
        """Read the whole bounded list, decoding only entries not seen before."""
        raws = cast("list[bytes]", await client.lrange(self.key, 0, self.limit - 1))
        self.transferred += len(raws)
        self.full_reads += 1
        digests = await _digests(raws)
        self._set(tuple(await self._rows(raws, digests)))

    async def _rows(self, raws: Sequence[bytes], digests: Sequence[bytes]) -> list[_Row]:
        """Stored rows of these entries, summarizing only those not known already."""
        reuse = {row[0]: row for row in self.entries.rows}
        out: list[_Row] = []
        pacer = Pacer()
        for raw, digest in zip(raws, digests, strict=True):
            row = reuse.get(digest)
            if row is None:
                summary = cast("tuple[Any, ...]", await self._summarize(raw))
                row = (digest, len(raw), tuple(summary))
            out.append(row)
            await pacer.tick()
        return out

    def _set(self, rows: tuple[_Row, ...]) -> None:
        if rows != self.entries.rows:
            self.entries = Entries(rows, self._make)
            self.version += 1

    def forget(self) -> None:
        """Drop what is known (the next update reads the list in full)."""
        self._set(())

    # ------------------------------------------------------------------ reading by position

    async def read_at(
        self,
        client: Redis,
        positions: Sequence[int],
        extra: Callable[[Any], None] | None = None,
    ) -> tuple[list[bytes], list[Any]]:
        """The exact bytes of the entries at these positions, checked against their digests.

        Args:
            client: the source's client.
            positions: indexes into ``entries`` (any order).
            extra: queues more commands on the same pipeline; their replies are returned.

        Raises:
            ListChanged: an entry read is not the one known at its position.
        """
        pipe = client.pipeline(transaction=False)
        spans = _spans(sorted(set(positions)))
        for start, stop in spans:
            pipe.lrange(self.key, start, stop)
        if extra is not None:
            extra(pipe)
        replies = await pipe.execute()
        found: dict[int, bytes] = {}
        for (start, _), chunk in zip(spans, replies[: len(spans)], strict=True):
            for offset, raw in enumerate(chunk):
                found[start + offset] = raw
        self.transferred += len(found)
        out: list[bytes] = []
        for position in positions:
            raw = found.get(position)
            if raw is None or await offload.digest(raw) != self.entries.digest(position):
                raise ListChanged(self.key)
            out.append(raw)
        return out, list(replies[len(spans) :])


async def _digests(raws: Sequence[bytes]) -> list[bytes]:
    out = []
    pacer = Pacer()
    for raw in raws:
        out.append(await offload.digest(raw))
        await pacer.tick()
    return out


def _spans(positions: Sequence[int]) -> list[tuple[int, int]]:
    """Sorted positions as inclusive (start, stop) runs, so contiguous rows are one LRANGE."""
    spans: list[tuple[int, int]] = []
    for position in positions:
        if spans and spans[-1][1] == position - 1:
            spans[-1] = (spans[-1][0], position)
        else:
            spans.append((position, position))
    return spans


@dataclass(frozen=True, slots=True)
class Window:
    """A history's entries ordered newest first by effective time, for one version."""

    #: positions into the entries, newest first (stable: equal times keep list order)
    order: tuple[int, ...]
    #: the effective time of each, in the same order (descending), negated for bisect
    negated_times: tuple[int, ...]

    def count_since(self, cutoff_ms: int) -> int:
        """How many entries have an effective time at or after ``cutoff_ms``."""
        return bisect.bisect_right(self.negated_times, -cutoff_ms)


def window_of(times: Sequence[int | None], flagged: Sequence[bool]) -> Window:
    """Order entries as Autumn's admin sorts a history (newest first by sort time).

    An entry with no time of its own sorts as time 0, as Autumn does, except a flagged one
    (a malformed entry has no time at all): it takes the time of its newer neighbour, since
    entries are pushed newest first, so the operator still sees it where it was pushed.
    """
    effective: list[int] = []
    newer = NEWEST
    for own, bad in zip(times, flagged, strict=True):
        value = own if own is not None else (newer if bad else 0)
        effective.append(value)
        newer = value
    order = sorted(range(len(effective)), key=lambda i: effective[i], reverse=True)
    return Window(tuple(order), tuple(-effective[i] for i in order))


class RowCache(Generic[R]):
    """Decoded rows by the digest of their bytes, bounded by an estimate of their size."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._rows: OrderedDict[Any, tuple[R, int]] = OrderedDict()
        self._bytes = 0

    def get(self, key: Any) -> R | None:
        hit = self._rows.get(key)
        if hit is None:
            return None
        self._rows.move_to_end(key)
        return hit[0]

    def put(self, key: Any, row: R, size: int) -> None:
        old = self._rows.pop(key, None)
        if old is not None:
            self._bytes -= old[1]
        self._rows[key] = (row, size)
        self._bytes += size
        while self._bytes > self.max_bytes and self._rows:
            _, (_, dropped) = self._rows.popitem(last=False)
            self._bytes -= dropped

    @property
    def size(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._rows)
