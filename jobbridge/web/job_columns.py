"""Which columns a job list shows: those its system declares (its entry in the registry of
systems, ``SystemSpec.list_columns``) that a row of the page fills. A column empty for every
row is left out: a waiting list has no finish time, a source whose producers pass no
principal has no Principal column.

Pure: rows in, columns out (docs/api.md "Pages").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from jobbridge.adapters.registry import LIST_COLUMNS, AttemptsSpec, systems
from jobbridge.model import JobRecord


@dataclass(frozen=True, slots=True)
class Column:
    """One column of a job list."""

    #: one of ``LIST_COLUMNS``, or "actions"
    key: str
    #: its heading
    title: str
    #: the heading's hover text ("" for none)
    hint: str = ""


#: whether a row fills a column: (row, the snapshot's time) -> bool
_FILLS: Mapping[str, Callable[[JobRecord, datetime], bool]] = {
    "enqueued": lambda j, now: j.enqueued_at is not None,
    "started": lambda j, now: j.started_at is not None,
    "finished": lambda j, now: j.finished_at is not None,
    "runtime": lambda j, now: j.runtime(now) is not None,
    "wait": lambda j, now: j.wait is not None,
    "attempts": lambda j, now: bool(j.attempts_text),
    "worker": lambda j, now: bool(j.worker),
    "principal": lambda j, now: bool(j.principal_id),
    "correlation": lambda j, now: bool(j.correlation_id),
    "error": lambda j, now: bool(j.last_error),
    "actions": lambda j, now: bool(j.actions),
}

_TITLES: Mapping[str, str] = {
    "enqueued": "Enqueued At",
    "started": "Started At",
    "finished": "Finished At",
    "runtime": "Runtime",
    "wait": "Wait",
    "worker": "Worker",
    "principal": "Principal",
    "correlation": "Correlation",
    "error": "Last Error",
    "actions": "Actions",
}

_HINTS: Mapping[str, str] = {
    "runtime": "finished - started; for a running job, how long it has run so far",
    "wait": "how long it waited for a worker: started - (scheduled for, else enqueued at)",
    "worker": "the worker that runs or ran it",
}


def columns_for(system: str, rows: Iterable[JobRecord], now: datetime) -> tuple[Column, ...]:
    """The columns of one page of a list, between its Job column and (when a row has an
    action) its Actions column: the system's declared list columns (every one for a system
    the registry does not know) that at least one row fills."""
    spec = systems().get(system)
    declared = spec.shown_columns() if spec is not None else LIST_COLUMNS
    attempts = spec.attempts if spec is not None else AttemptsSpec()
    items = list(rows)
    out = []
    for key in (*declared, "actions"):
        if not any(_FILLS[key](job, now) for job in items):
            continue
        if key == "attempts":
            out.append(Column(key, attempts.label, attempts.means))
        else:
            out.append(Column(key, _TITLES[key], _HINTS.get(key, "")))
    return tuple(out)


def attempts_label(system: str) -> str:
    """What the system calls its attempts ("Attempts", "Retries", "Attempt")."""
    spec = systems().get(system)
    return (spec.attempts if spec is not None else AttemptsSpec()).label


def duration(value: timedelta | None) -> str:
    """A duration as an operator reads it: "850 ms", "12.3 s", "4 min 05 s", "2 h 03 min",
    "3 d 04 h"; "—" for none."""
    if value is None:
        return "—"
    seconds = value.total_seconds()
    if seconds < 1:
        return f"{round(seconds * 1000)} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    if whole < 86400:
        return f"{whole // 3600} h {whole % 3600 // 60:02d} min"
    return f"{whole // 86400} d {whole % 86400 // 3600:02d} h"
