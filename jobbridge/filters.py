"""Filters of a job list: the rows an operator narrows a list to, and that a bulk action takes.

A filter is matched in memory against the rows every system maps onto (``JobRecord``), so one
filter means the same on every system; a system adds exact matches on its own extras (Celery's
``root_id``, RQ's ``group``) through its registry entry's ``SearchSpec.extras``. Nothing here
reads Redis: callers hand it the bounded pages they read (a page of a list, or a background
walk of a whole list, a page at a time).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta

from jobbridge.adapters.registry import systems
from jobbridge.model import JobRecord, ListName, api

#: the lists a filter (and a bulk action) applies to
FILTERABLE = (ListName.FAILED, ListName.ENQUEUED, ListName.SCHEDULED)
#: longest text of one filter field
MAX_FILTER_CHARS = 200
#: a relative time: a number and a unit (``90s``, ``15m``, ``1h``, ``7d``)
_RELATIVE = re.compile(r"^(\d{1,6})([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class FilterError(ValueError):
    """A filter field that cannot be read; its message names the field and says why."""


class TimeField(enum.StrEnum):
    """Which time of a row a time range is on."""

    #: finished_at for the failed list, else enqueued_at
    DEFAULT = "default"
    FINISHED = "finished"
    ENQUEUED = "enqueued"


@dataclass(frozen=True, slots=True, kw_only=True)
class JobFilter:
    """What a row must be to match: every field set must hold (an empty filter matches all)."""

    name: str | None = field(
        default=None, metadata=api("part of the job / task name (case-insensitive)")
    )
    queue: str | None = field(default=None, metadata=api("the queue, exactly"))
    error_contains: str | None = field(
        default=None, metadata=api("part of the last error (case-insensitive)")
    )
    since: datetime | None = field(
        default=None,
        metadata=api("the row's time is at or after this (failed: finished, else enqueued)"),
    )
    until: datetime | None = field(
        default=None, metadata=api("the row's time is before this (as `since`)")
    )
    principal_id: str | None = field(default=None, metadata=api("the principal id, exactly"))
    correlation_id: str | None = field(
        default=None,
        metadata=api("the correlation id, exactly (or a system's group extra: root_id, group)"),
    )
    worker: str | None = field(default=None, metadata=api("part of the worker's name"))

    @property
    def empty(self) -> bool:
        return all(getattr(self, f.name) is None for f in fields(self))

    def describe(self) -> str:
        """The filter in words, for pages, the CLI and the audit log: ``name~send_email,
        error~ConnectionError, since 2026-12-04 21:00:00Z``; "every job" when empty."""
        words = []
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            if isinstance(value, datetime):
                words.append(f"{f.name} {value.astimezone(UTC):%Y-%m-%d %H:%M:%S}Z")
            elif f.name in ("name", "error_contains", "worker"):
                words.append(f"{f.name.removesuffix('_contains')}~{value}")
            else:
                words.append(f"{f.name}={value}")
        return ", ".join(words) or "every job"

    def matches(self, row: JobRecord, which: ListName) -> bool:
        """Whether a row of list ``which`` matches."""
        if self.queue is not None and row.queue != self.queue:
            return False
        if self.name is not None and not _contains(row.name, self.name):
            return False
        if self.error_contains is not None and not _contains(row.last_error, self.error_contains):
            return False
        if self.principal_id is not None and row.principal_id != self.principal_id:
            return False
        if self.correlation_id is not None and not _correlated(row, self.correlation_id):
            return False
        if self.worker is not None and not _contains(row.worker, self.worker):
            return False
        if self.since is not None or self.until is not None:
            at = row_time(row, which)
            if at is None:
                return False
            if self.since is not None and at < self.since:
                return False
            if self.until is not None and at >= self.until:
                return False
        return True


def row_time(row: JobRecord, which: ListName) -> datetime | None:
    """The time a range is on: the finish time of a failed row, else its enqueue time (a
    scheduled row without one: its due time)."""
    if which is ListName.FAILED:
        return row.finished_at or row.sort_time
    return row.enqueued_at or row.scheduled_for


def _contains(text: str | None, part: str) -> bool:
    return text is not None and part.casefold() in text.casefold()


def _correlated(row: JobRecord, value: str) -> bool:
    if row.correlation_id == value:
        return True
    spec = systems().get(row.system)
    extras = spec.search.extras if spec is not None else ()
    return any(row.extra.get(key) == value for key in extras)


#: the query / form / JSON names of the fields, and the CLI's flags (``--error-contains``)
FIELD_NAMES = tuple(f.name for f in fields(JobFilter))


def parse_time(value: str, name: str, now: datetime | None = None) -> datetime:
    """A time field: relative to now (``15m``, ``1h``, ``7d``: that long ago) or an ISO 8601
    time (without a zone: UTC).

    Raises:
        FilterError: neither.
    """
    text = value.strip()
    relative = _RELATIVE.match(text)
    if relative:
        amount, unit = int(relative.group(1)), relative.group(2)
        return (now or datetime.now(UTC)) - timedelta(seconds=amount * _UNITS[unit])
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise FilterError(
            f"{name}: {text[:40]!r} is not a time: give 15m, 1h, 7d (that long ago) or an ISO "
            "8601 time such as 2026-12-04T21:00:00Z"
        ) from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def parse_filter(values: Mapping[str, str], now: datetime | None = None) -> JobFilter:
    """A filter from query, form or JSON fields (every value text; empty ones are unset).

    Raises:
        FilterError: a value too long, or a time that is not one.
    """
    taken: dict[str, object] = {}
    for name in FIELD_NAMES:
        raw = values.get(name)
        if raw is None or not str(raw).strip():
            continue
        text = str(raw).strip()
        if len(text) > MAX_FILTER_CHARS:
            raise FilterError(f"{name}: longer than {MAX_FILTER_CHARS} characters")
        taken[name] = parse_time(text, name, now) if name in ("since", "until") else text
    return JobFilter(**taken)  # type: ignore[arg-type]


def filter_query(job_filter: JobFilter) -> dict[str, str]:
    """The filter as query / form fields (times as ISO 8601 UTC): what parse_filter reads."""
    out: dict[str, str] = {}
    for name in FIELD_NAMES:
        value = getattr(job_filter, name)
        if value is None:
            continue
        if isinstance(value, datetime):
            out[name] = value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        else:
            out[name] = value
    return out
