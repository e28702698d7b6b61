"""Per-job-name counters across sources, from one bounded snapshot per source.

The aggregation behind ``/actuator/jobs`` (its document is described in
``jobbridge.web.actuator``), kept beside the service so the CLI can compute it too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

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

#: rows read per list and source
SAMPLE_PER_LIST = 100
#: longest last_error reported
MAX_LAST_ERROR = 1000
#: key of rows whose record could not be read (no name)
UNREADABLE = "(unreadable)"
#: what one source's snapshot reads: the first rows of the live lists, the whole histories
TALLY_QUERY = SnapshotQuery.build(
    per_page=SAMPLE_PER_LIST, history_per_page=MAX_HISTORY_PER_PAGE, only=CORE_LISTS
)
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


@dataclass(frozen=True, slots=True)
class SourceSample:
    """One source's part of the tally: its snapshot, or what probes may know of its failure."""

    name: str
    system: str
    snapshot: Snapshot | None
    #: "unavailable", "internal" or how long a slow Redis was given; None when read
    error: str | None


def tally_document(samples: Sequence[SourceSample]) -> dict[str, Any]:
    """The ``/actuator/jobs`` document of the sources' samples, in their order."""
    sources: dict[str, Any] = {}
    per_name: dict[str, dict[str, _Tally]] = {}
    sampled: dict[str, int] = {}
    for sample in samples:
        if sample.snapshot is None:
            sources[sample.name] = {"system": sample.system, "up": False, "error": sample.error}
            continue
        summary = _read_source(sample.snapshot, per_name)
        sources[sample.name] = {"system": sample.system, "up": True, **summary}
        if summary["approximate"]:
            sampled[sample.name] = summary["sample_size"]
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
