"""The series a chart draws and the comparison reads: one point per time step."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

from jobbridge.model import api


class Window(enum.StrEnum):
    """The windows a series covers."""

    HOUR = "1h"
    DAY = "24h"


#: seconds per point of each window
STEP_S = {Window.HOUR: 60, Window.DAY: 900}
#: points of each window (the step that holds "now" is the last)
POINTS = {Window.HOUR: 60, Window.DAY: 96}


@dataclass(frozen=True, slots=True, kw_only=True)
class SeriesPoint:
    """One time step of a source (or of one of its queues)."""

    at: datetime = field(metadata=api("start of the step (UTC)"))
    completed: int = field(metadata=api("jobs that completed in the step, by their finish time"))
    failed: int = field(metadata=api("jobs that failed terminally in the step, by finish time"))
    enqueued: int | None = field(
        default=None,
        metadata=api("waiting jobs at the step's last depth sample (null: not sampled)"),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Series:
    """A window of points, oldest first, one per ``step_s`` seconds, ending with the step
    that holds now."""

    source: str
    window: Window
    step_s: int
    points: tuple[SeriesPoint, ...]
    #: the queue the points count, or None for the whole source
    queue: str | None = None
    #: when jobbridge began following this source (counts before it are what the system
    #: still kept then); None: not followed yet
    since: datetime | None = None
