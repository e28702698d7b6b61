"""What a census is: the plan a system gives for one queue, the counts of a page, and the
result a census keeps in Redis."""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from jobbridge.serialize import rfc3339

if TYPE_CHECKING:
    from redis.asyncio import Redis

#: elements read per step (one LRANGE, then one read of their records)
PAGE = 1000
#: names (and principals) kept in the stored result, most frequent first; the rest are
#: summed into ``other``
TOP = 200
#: distinct names a running census tallies at most; jobs of further names count as "other"
MAX_DISTINCT = 10_000
#: what a job whose name could not be read counts as
UNKNOWN_NAME = "(name not readable)"
#: what a job without a principal counts as
NO_PRINCIPAL = "(none)"


class CensusState(enum.StrEnum):
    """Where a census stands."""

    #: reading pages
    RUNNING = "running"
    #: read to the end (or to the length the queue had at the start)
    DONE = "done"
    #: stopped on an error (``error`` says which)
    FAILED = "failed"
    #: stored as running, but no replica holds its lease any more (the one running it stopped)
    INTERRUPTED = "interrupted"


class PageCount(NamedTuple):
    """The counts of one page of a queue (a plain value: the decoding process returns it)."""

    names: dict[str, int]
    #: None: the system records no principal
    principals: dict[str, int] | None
    #: ids whose record was gone when read (a worker took the job meanwhile)
    missing: int


@dataclass(frozen=True, slots=True)
class CensusPlan:
    """How one system's queue is read: its lists (in order) and how a page is counted."""

    client: Redis
    #: the list keys of the queue, read one after the other (Celery: one per priority step)
    lists: tuple[str, ...]
    #: the elements of one page (ids or messages as stored, or what ``read`` gives one per
    #: element) -> their counts
    count: Callable[[Sequence[Any]], Awaitable[PageCount]]
    #: whether the system records a principal per job (Autumn's payload ``principal_id``…)
    principals: bool = False
    #: elements read per step
    page: int = PAGE
    #: how a page is read: (list key, first index, last index) -> one item per element of
    #: the range; None: LRANGE
    read: Callable[[str, int, int], Awaitable[list[Any]]] | None = None


@dataclass(frozen=True, slots=True)
class Counted:
    """One name (or principal) and how many jobs carry it."""

    name: str
    count: int


@dataclass(frozen=True, slots=True, kw_only=True)
class CensusResult:
    """A census of one queue, as stored (or as far as it has read)."""

    source: str
    queue: str
    state: CensusState
    #: waiting jobs when the census started (the sum of its lists' lengths)
    total_at_start: int
    #: elements read so far
    read: int
    #: the most frequent names, most first (at most ``TOP``)
    names: tuple[Counted, ...]
    #: jobs whose names are not among ``names``
    other_names: int
    #: distinct names seen (at least: a census tallies at most ``MAX_DISTINCT``)
    distinct_names: int
    #: the same by principal; None when the system records none
    principals: tuple[Counted, ...] | None
    other_principals: int
    #: ids read from the list whose record was gone when its name was read
    missing: int
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime | None
    #: what the counts cover when it is not exactly the queue at the start
    note: str | None = None
    #: why a failed census stopped
    error: str | None = None

    @property
    def percent(self) -> int:
        """Progress, 0 to 100 (100 once done)."""
        if self.state is CensusState.DONE:
            return 100
        if self.total_at_start <= 0:
            return 0
        return min(100, self.read * 100 // self.total_at_start)


class CensusUnsupported(Exception):
    """The source's system has no census reader."""


class CensusBusy(Exception):
    """Too many censuses run in this process already."""


def counted_json(items: tuple[Counted, ...] | None) -> list[dict[str, Any]] | None:
    if items is None:
        return None
    return [{"name": c.name, "count": c.count} for c in items]


def census_json(result: CensusResult) -> dict[str, Any]:
    """A census as the API and ``jobbridge census --json`` give it."""
    return {
        "source": result.source,
        "queue": result.queue,
        "state": result.state.value,
        "total_at_start": result.total_at_start,
        "read": result.read,
        "percent": result.percent,
        "names": counted_json(result.names),
        "other_names": result.other_names,
        "distinct_names": result.distinct_names,
        "principals": counted_json(result.principals),
        "other_principals": result.other_principals,
        "missing": result.missing,
        "started_at": rfc3339(result.started_at),
        "finished_at": rfc3339(result.finished_at),
        "updated_at": rfc3339(result.updated_at),
        "note": result.note,
        "error": result.error,
    }
