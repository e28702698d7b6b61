"""``/actuator/jobs``: Autumn's per-job-name counters, across sources, from bounded reads.

Autumn's own actuator keeps per-process counters in memory; a sidecar has none, so these are
computed from what one snapshot per source returns: the first 100 rows of the enqueued,
scheduled and running lists, and the whole completed (24 h) and failed (7 d) histories, which
the system bounds itself (Autumn: 1,000 entries each). Nothing else is read.

Per job name and source:

* ``queued``: rows on the first pages of the enqueued and scheduled lists (scheduled includes
  retry backoffs);
* ``in_flight``: rows on the first page of the running list;
* ``success``: rows of the completed list (last 24 h);
* ``failure``: rows whose latest attempt failed: retrying rows plus failed rows;
* ``dead_letter``: rows of the failed list (last 7 days);
* ``last_error``: the error of the newest such row (cut to 1,000 characters).

So the counts are exact for the histories and for a running set of up to 100 jobs. When a
list holds more entries than were read (a long queue), the counts are a sample: the source, and
every job name seen in it, is marked ``"approximate": true`` with ``"sample_size"`` = rows
read.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from jobbridge.errors import SourceTimedOut, SourceUnavailable
from jobbridge.model import (
    CORE_LISTS,
    MAX_HISTORY_PER_PAGE,
    JobRecord,
    JobStatus,
    ListName,
    Snapshot,
    SnapshotQuery,
)
from jobbridge.serialize import rfc3339
from jobbridge.service import JobService

log = logging.getLogger(__name__)

#: rows read per list and source
SAMPLE_PER_LIST = 100
#: longest last_error reported
MAX_LAST_ERROR = 1000
#: key of rows whose record could not be read (no name)
UNREADABLE = "(unreadable)"
_EPOCH = datetime.fromtimestamp(0, tz=UTC)
_COUNTS = ("queued", "in_flight", "success", "failure", "dead_letter")


@dataclass(slots=True)
class _Tally:
    queued: int = 0
    in_flight: int = 0
    success: int = 0
    failure: int = 0
    dead_letter: int = 0
    last_error: str | None = None
    last_error_at: datetime = field(default=_EPOCH)

    def add(self, list_name: ListName, job: JobRecord) -> None:
        if list_name in (ListName.ENQUEUED, ListName.SCHEDULED):
            self.queued += 1
        elif list_name is ListName.RUNNING:
            self.in_flight += 1
        elif list_name is ListName.COMPLETED:
            self.success += 1
        elif list_name is ListName.FAILED:
            self.dead_letter += 1
        if job.status in (JobStatus.RETRYING, JobStatus.FAILED):
            self.failure += 1
        when = job.sort_time or _EPOCH
        if job.last_error and (self.last_error is None or when > self.last_error_at):
            self.last_error = job.last_error[:MAX_LAST_ERROR]
            self.last_error_at = when

    def merge(self, other: _Tally) -> None:
        for name in _COUNTS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        if other.last_error is not None and (
            self.last_error is None or other.last_error_at > self.last_error_at
        ):
            self.last_error = other.last_error
            self.last_error_at = other.last_error_at

    def json(self) -> dict[str, Any]:
        data: dict[str, Any] = {name: getattr(self, name) for name in _COUNTS}
        data["last_error"] = self.last_error
        return data


async def actuator_jobs(service: JobService) -> dict[str, Any]:
    """The ``/actuator/jobs`` document (shape described in the module docstring)."""
    query = SnapshotQuery.build(
        per_page=SAMPLE_PER_LIST, history_per_page=MAX_HISTORY_PER_PAGE, only=CORE_LISTS
    )
    infos = service.sources()
    results = await asyncio.gather(
        *(service.snapshot(info.name, query) for info in infos), return_exceptions=True
    )
    sources: dict[str, Any] = {}
    per_name: dict[str, dict[str, _Tally]] = {}
    sampled: dict[str, int] = {}
    for info, result in zip(infos, results, strict=True):
        if isinstance(result, SourceUnavailable):
            # How long a slow Redis was given, but never Redis's own words.
            error = result.detail if isinstance(result, SourceTimedOut) else "unavailable"
            sources[info.name] = {"system": info.system, "up": False, "error": error}
            continue
        if isinstance(result, BaseException):  # one source's bug must not hide the others
            log.error("actuator read of source %s failed", info.name, exc_info=result)
            sources[info.name] = {"system": info.system, "up": False, "error": "internal"}
            continue
        summary = _read_source(result, per_name)
        sources[info.name] = {"system": info.system, "up": True, **summary}
        if summary["approximate"]:
            sampled[info.name] = summary["sample_size"]
    jobs: dict[str, Any] = {}
    for name in sorted(per_name):
        by_source = per_name[name]
        total = _Tally()
        for tally in by_source.values():
            total.merge(tally)
        entry = total.json()
        entry["sources"] = {src: tally.json() for src, tally in by_source.items()}
        approximate_in = [src for src in by_source if src in sampled]
        if approximate_in:
            entry["approximate"] = True
            entry["sample_size"] = sum(sampled[src] for src in approximate_in)
        jobs[name] = entry
    document: dict[str, Any] = {
        "taken_at": rfc3339(datetime.now(tz=UTC)),
        "jobs": jobs,
        "sources": sources,
        "approximate": bool(sampled),
    }
    if sampled:
        document["sample_size"] = sum(sampled.values())
    return document


def _read_source(snapshot: Snapshot, per_name: dict[str, dict[str, _Tally]]) -> dict[str, Any]:
    rows_read = 0
    truncated: list[str] = []
    totals: dict[str, int] = {}
    for list_name, page in snapshot.lists.items():
        rows_read += len(page.items)
        totals[list_name.value] = page.total
        if page.total > len(page.items):
            truncated.append(list_name.value)
        for job in page.items:
            name = job.name or UNREADABLE
            tally = per_name.setdefault(name, {}).setdefault(snapshot.source, _Tally())
            tally.add(list_name, job)
    return {
        "approximate": bool(truncated),
        "sample_size": rows_read,
        "truncated_lists": truncated,
        "totals": totals,
    }
