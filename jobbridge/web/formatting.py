"""Formatting helpers shared by templates (as Jinja filters) and the JSON API.

Everything here returns plain text; Jinja's autoescaping makes it safe HTML. These helpers
only make attacker-controlled text *readable*: control characters and bidirectional overrides,
which could disguise a job name or error, become visible replacement marks.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from jobbridge.compare import QueueWorkers, worker_busy_of, workers_by_queue
from jobbridge.model import Page, Worker
from jobbridge.text import age, clean, clean_block, error_summary, show_time
from jobbridge.web.job_columns import Column, attempts_label, columns_for, duration

#: Autumn's table cut: 79 characters and an ellipsis
ERROR_CUT = 80
#: longest id a data attribute carries whole: a registry member may be a megabyte, and a
#: table repeats it per row (the text shows 200 characters; the job page shows it all)
ATTR_ID_CHARS = 1000
#: longest link a page renders: aiohttp reads request lines up to 8190 bytes, so a longer
#: URL could not be followed, and a megabyte id would make every row a megabyte
LINK_CHARS = 8000
#: the units of a relative time, largest first (app.js words them the same way)
_UNITS = ((86400, "d"), (3600, "h"), (60, "min"), (1, "s"))


def iso_seconds(value: datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def cut(value: object, limit: int = ERROR_CUT) -> str:
    """Autumn's error cut: at most ``limit`` characters, ``limit - 1`` plus "…" when longer."""
    return clean(value, limit)


def error_cut(value: object, limit: int = ERROR_CUT) -> str:
    """An error's summary line (:func:`jobbridge.text.error_summary`: a traceback's exception
    line), cut as Autumn's table cuts."""
    return error_summary(value, limit)


def attr_id(value: object) -> str:
    """An id for a ``data-`` attribute: exact up to ``ATTR_ID_CHARS``, cut past it."""
    text = "" if value is None else str(value)
    return text if len(text) <= ATTR_ID_CHARS else text[:ATTR_ID_CHARS] + "…"


def linkable(url: str) -> bool:
    """Whether a link is short enough to be followed (see ``LINK_CHARS``)."""
    return len(url) <= LINK_CHARS


def is_cut(value: object, limit: int = ERROR_CUT) -> bool:
    return value is not None and len(str(value)) > limit


def relative_time(value: datetime | None, now: datetime | None = None) -> str:
    """How long ago (or how soon) ``value`` is from ``now`` (default: the time of rendering),
    in the largest whole unit: "just now", "42 s ago", "3 min ago", "2 h ago", "5 d ago",
    "in 3 min"; past 60 days the UTC date. The exact time goes beside it (``show_time``)."""
    if value is None:
        return "—"
    seconds = ((now or datetime.now(UTC)) - value).total_seconds()
    whole = int(abs(seconds))
    if whole < 5:
        return "just now"
    if whole >= 60 * 86400:
        return value.astimezone(UTC).strftime("%Y-%m-%d")
    size, unit = next((size, unit) for size, unit in _UNITS if whole >= size)
    amount = f"{whole // size} {unit}"
    return f"{amount} ago" if seconds > 0 else f"in {amount}"


def list_columns(page: Page, system: str, now: datetime) -> tuple[Column, ...]:
    """A list page's columns (jobbridge.web.job_columns): ``page|list_columns(system, now)``."""
    return columns_for(system, page.items, now)


#: a row's call (its payload preview) is cut to this many characters; its title has it whole
CALL_CUT = 120


def call_cut(value: object, limit: int = CALL_CUT) -> str:
    """A call with its arguments on one line, cut (the full preview goes in its title)."""
    return clean(value, limit)


def age_at(value: datetime | None, at: datetime | None) -> str:
    """How long before ``at`` (a snapshot's time) ``value`` was: "12s"; "—" when either is
    unknown (a clock ahead of ``at`` reads as 0s)."""
    if value is None or at is None:
        return "—"
    return age((at - value).total_seconds())


def worker_busy(worker: Worker, system: str) -> bool | None:
    """Busy, idle or neither, by the worker's system's own rule (the comparison's)."""
    return worker_busy_of(system)(worker)


def queue_workers(workers: tuple[Worker, ...] | None, system: str) -> list[QueueWorkers]:
    """Per queue, its consumers and how many of them are busy (the comparison's counts)."""
    return workers_by_queue(workers or (), system)


FILTERS: dict[str, Callable[..., Any]] = {
    "relative_time": relative_time,
    "show_time": show_time,
    "iso_seconds": iso_seconds,
    "age": age,
    "clean": clean,
    "clean_block": clean_block,
    "cut": cut,
    "error_cut": error_cut,
    "is_cut": is_cut,
    "attr_id": attr_id,
    "linkable": linkable,
    "list_columns": list_columns,
    "duration": duration,
    "call_cut": call_cut,
    "attempts_label": attempts_label,
    "age_at": age_at,
    "worker_busy": worker_busy,
    "queue_workers": queue_workers,
}
