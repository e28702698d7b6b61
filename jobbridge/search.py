"""One search across every source: a job id, a correlation id, a principal id or a job name.

Each source is read through the service, side by side, and within bounds: a look-up of the
query as a job id (one record, O(1)) plus the bounded pages its dashboard already reads (the
first ``SEARCH_PER_PAGE`` rows of each live list, the newest ``SEARCH_HISTORY_ROWS`` of the
histories), filtered in memory. Nothing is scanned, so a job beyond those pages is found by
its id only; ``Covered`` says exactly what was read, source by source, so a page or a script
can tell "not there" from "not looked at". How a system's rows match (which extras) and the
words for what its search reads come from its registry entry (``SystemSpec.search``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from jobbridge.adapters.registry import SearchSpec, systems
from jobbridge.model import (
    MAX_PER_PAGE,
    JobDetail,
    JobRecord,
    ListName,
    Snapshot,
    SnapshotQuery,
    System,
    reachable_id,
)
from jobbridge.pacing import Pacer
from jobbridge.service import JobService, SourceRead

#: longest query taken (longer ones are refused: no id, name or correlation id is longer)
MAX_QUERY_CHARS = 200
#: most matches returned across every source; ``Covered.capped`` says when there were more
MAX_RESULTS = 200
#: rows of each live list (waiting, scheduled, running, canceled) read per source
SEARCH_PER_PAGE = MAX_PER_PAGE
#: rows of each history (completed, failed) read per source: the newest ones. A whole Autumn
#: history (1,000 entries and their dead records) held the event loop ~100 ms per source
#: (benchmarks/bench_search.py); this many keep a source's read in steps of a few ms
SEARCH_HISTORY_ROWS = 250
#: what one source's search reads besides the id look-up: the dashboard's first pages, the
#: histories as far as the dashboard's history bound; every list, no workers
SEARCH_QUERY = SnapshotQuery.build(
    per_page=SEARCH_PER_PAGE,
    history_per_page=SEARCH_HISTORY_ROWS,
    only=frozenset(ListName),
)
#: the job record's own fields every system's rows match exactly, in the order a match names
ID_FIELDS = ("id", "correlation_id", "principal_id")


class BadQuery(ValueError):
    """The query is empty or too long; the message says which."""


def clean_query(raw: str | None) -> str:
    """The query, trimmed (it is pasted from log lines).

    Raises:
        BadQuery: empty, or longer than ``MAX_QUERY_CHARS``.
    """
    query = (raw or "").strip()
    if not query:
        raise BadQuery("Type a job id, a correlation id, a principal id or a job name.")
    if len(query) > MAX_QUERY_CHARS:
        raise BadQuery(f"A search is at most {MAX_QUERY_CHARS} characters.")
    return query


@dataclass(frozen=True, slots=True, kw_only=True)
class Match:
    """One job found: its row, and which of its fields matched."""

    job: JobRecord
    #: "id", "correlation_id", "principal_id", "name" or the key of a matching extra
    matched: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ListRead:
    """How much of one list a search read."""

    name: ListName
    #: rows read (and matched against)
    read: int
    #: entries the list holds (within its window), as its system counts them
    total: int

    @property
    def cut_short(self) -> bool:
        """Whether the list holds entries the search did not read."""
        return self.total > self.read


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceCovered:
    """What a search read of one source, or why it could not."""

    source: str
    system: System
    #: the system's words for what its search reads (``SearchSpec.covers``)
    covers: str
    #: whether the query was looked up as a job id (it is not when no route could name it)
    looked_up_id: bool
    lists: tuple[ListRead, ...] = ()
    #: why the source could not be read (then nothing of it was searched)
    error: str | None = None

    @property
    def cut_short(self) -> bool:
        return any(r.cut_short for r in self.lists)


@dataclass(frozen=True, slots=True, kw_only=True)
class Covered:
    """What a whole search read: per source, and whether the matches were capped."""

    sources: tuple[SourceCovered, ...]
    #: more than ``max_results`` jobs matched; the first ones (in source order) are returned
    capped: bool
    max_results: int = MAX_RESULTS


@dataclass(frozen=True, slots=True, kw_only=True)
class SearchResult:
    query: str
    matches: tuple[Match, ...]
    covered: Covered


def spec_of(system: str) -> SearchSpec:
    """A system's search entry; defaults for a system the registry does not know."""
    found = systems().get(system)
    return found.search if found is not None else SearchSpec()


def match(job: JobRecord, query: str, spec: SearchSpec) -> str | None:
    """Which field of ``job`` matches ``query``, or None: ids exactly, the name without case
    and as a part (a task's dotted path holds the function's name)."""
    for name in ID_FIELDS:
        if getattr(job, name) == query:
            return name
    for key in spec.extras:
        if job.extra.get(key) == query:
            return key
    if job.name and query.casefold() in job.name.casefold():
        return "name"
    return None


@dataclass(frozen=True, slots=True)
class _SourceFound:
    detail: JobDetail | None
    snapshot: Snapshot
    looked_up_id: bool


async def _read_source(service: JobService, source: str, query: str) -> _SourceFound:
    """The id look-up and the bounded pages of one source, side by side (both coalesced by the
    service with identical reads of other viewers)."""
    looked_up = reachable_id(query)
    if not looked_up:
        return _SourceFound(None, await service.snapshot(source, SEARCH_QUERY), looked_up)
    # Both to their end, so a failure of one leaves no task behind; the first failure is the
    # source's.
    detail, snapshot = await asyncio.gather(
        service.job(source, query), service.snapshot(source, SEARCH_QUERY), return_exceptions=True
    )
    for outcome in (detail, snapshot):
        if isinstance(outcome, BaseException):
            raise outcome
    assert not isinstance(detail, BaseException) and not isinstance(snapshot, BaseException)
    return _SourceFound(detail, snapshot, looked_up)


def _rows(found: _SourceFound) -> Iterable[JobRecord]:
    for name in ListName:
        page = found.snapshot.lists.get(name)
        if page is not None:
            yield from page.items


async def _source_matches(found: _SourceFound, query: str, spec: SearchSpec) -> list[Match]:
    """The matching rows of one source, each once; paced, since thousands of rows of many
    sources add up to more than the event loop may be kept. The looked-up job is added when
    no row of the pages already has its id (a row names its entry; the look-up may not)."""
    seen: set[tuple[str, str | None]] = set()
    out: list[Match] = []
    pacer = Pacer()
    for job in _rows(found):
        await pacer.tick()
        key = (job.id, job.entry)
        if key in seen:
            continue
        field = match(job, query, spec)
        if field is not None:
            seen.add(key)
            out.append(Match(job=job, matched=field))
    if found.detail is not None:
        job = found.detail.job
        if job.id not in {m.job.id for m in out}:
            out.insert(0, Match(job=job, matched="id"))
    return out


def _covered(read: SourceRead[_SourceFound], spec: SearchSpec) -> SourceCovered:
    found = read.value
    if found is None:
        return SourceCovered(
            source=read.name,
            system=read.system,
            covers=spec.covers,
            looked_up_id=False,
            error=read.error,
        )
    lists = tuple(
        ListRead(name=name, read=len(page.items), total=page.total)
        for name, page in found.snapshot.lists.items()
    )
    return SourceCovered(
        source=read.name,
        system=read.system,
        covers=spec.covers,
        looked_up_id=found.looked_up_id,
        lists=lists,
    )


async def search(service: JobService, raw_query: str | None) -> SearchResult:
    """Every job of every source that matches the query, within the bounds above.

    Raises:
        BadQuery: the query is empty or too long.
    """
    query = clean_query(raw_query)
    reads = await service.read_every_source(
        lambda name: _read_source(service, name, query), "search"
    )
    matches: list[Match] = []
    covered: list[SourceCovered] = []
    for read in reads:
        spec = spec_of(read.system)
        covered.append(_covered(read, spec))
        if read.value is not None:
            matches.extend(await _source_matches(read.value, query, spec))
    return SearchResult(
        query=query,
        matches=tuple(matches[:MAX_RESULTS]),
        covered=Covered(sources=tuple(covered), capped=len(matches) > MAX_RESULTS),
    )


def covered_json(covered: Covered) -> dict[str, Any]:
    """The API's and the CLI's ``covered``."""
    return {
        "capped": covered.capped,
        "max_results": covered.max_results,
        "sources": [
            {
                "source": c.source,
                "system": c.system,
                "covers": c.covers,
                "looked_up_id": c.looked_up_id,
                "error": c.error,
                "cut_short": c.cut_short,
                "lists": [
                    {
                        "list": r.name.value,
                        "read": r.read,
                        "total": r.total,
                        "cut_short": r.cut_short,
                    }
                    for r in c.lists
                ],
            }
            for c in covered.sources
        ],
    }


def match_json(found: Match, url: str) -> dict[str, Any]:
    """One item of the API's and the CLI's ``items``; ``url`` is the job page's."""
    job = found.job
    item: dict[str, Any] = {
        "source": job.source,
        "system": job.system,
        "id": job.id,
        "name": job.name,
        "status": job.status.value,
        "queue": job.queue,
        "matched": found.matched,
        "url": url,
    }
    if job.entry is not None:
        item["entry"] = job.entry
    return item


async def find_id(
    service: JobService, job_id: str, *, entry: str | None = None
) -> list[SourceRead[JobDetail | None]]:
    """The job ``job_id`` looked up in every source side by side (one record each): where it
    is, where it is not (``value`` None), and which sources could not be read."""
    return await service.read_every_source(
        lambda name: service.job(name, job_id, entry=entry), "job look-up"
    )
