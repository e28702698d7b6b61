"""The geometry of the server-rendered SVG charts (``templates/_charts.html``): completed and
failed jobs per step as stacked bars, queue depth as a line, in a fixed view box.

Pure arithmetic on a :class:`~jobbridge.series.model.Series`; the template escapes every text
(source and queue names are data), and the SVG uses presentation attributes only, so the
strict Content-Security-Policy (no inline script or style) holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from jobbridge.series.model import Series, Window

#: the view box of a chart: width and height, in user units
WIDTH = 300
HEIGHT = 80
#: room kept at the top so the tallest bar does not touch the frame
HEADROOM = 4
#: how each window names its step in words
STEP_WORDS = {Window.HOUR: "per minute", Window.DAY: "per 15 minutes"}
WINDOW_WORDS = {Window.HOUR: "last hour", Window.DAY: "last 24 hours"}


@dataclass(frozen=True, slots=True)
class Bar:
    """One step's bar: completed stacked on failed, in view-box units."""

    x: float
    width: float
    completed_y: float
    completed_h: float
    failed_y: float
    failed_h: float
    #: the tooltip (``<title>``): the step's time and its numbers
    title: str


@dataclass(frozen=True, slots=True)
class Chart:
    """Everything ``_charts.html`` draws for one series."""

    source: str
    queue: str | None
    window: Window
    bars: tuple[Bar, ...]
    #: the depth line's ``points`` attribute ("" when depth was never sampled)
    depth_points: str
    completed: int
    failed: int
    peak: int
    depth_now: int | None
    depth_peak: int
    since: datetime | None
    width: int = WIDTH
    height: int = HEIGHT

    @property
    def label(self) -> str:
        """What the chart shows, in words, for screen readers (``aria-label``)."""
        depth = "not sampled" if self.depth_now is None else f"{self.depth_now} now"
        return (
            f"{self.source}{' queue ' + self.queue if self.queue else ''}, "
            f"{WINDOW_WORDS[self.window]}: {self.completed} completed, {self.failed} failed "
            f"(at most {self.peak} {STEP_WORDS[self.window]}); queue depth {depth}, "
            f"at most {self.depth_peak}"
        )


def _y(value: int, top: int) -> float:
    """The y of ``value`` on a scale whose ``top`` reaches the headroom line."""
    usable = HEIGHT - HEADROOM
    return round(HEIGHT - (value / top) * usable, 2) if top > 0 else float(HEIGHT)


def chart(series: Series) -> Chart:
    """The bars and depth line of a series, scaled to its own peaks."""
    points = series.points
    count = max(1, len(points))
    slot = WIDTH / count
    gap = min(1.0, slot / 4)
    peak = max((p.completed + p.failed for p in points), default=0)
    depths = [p.enqueued for p in points]
    depth_peak = max((d for d in depths if d is not None), default=0)
    bars = []
    line: list[str] = []
    for i, p in enumerate(points):
        x = round(i * slot + gap / 2, 2)
        failed_y = _y(p.failed, peak)
        completed_y = _y(p.failed + p.completed, peak)
        stamp = p.at.strftime("%H:%M")
        depth = "" if p.enqueued is None else f", {p.enqueued} waiting"
        bars.append(
            Bar(
                x=x,
                width=round(slot - gap, 2),
                completed_y=completed_y,
                completed_h=round(failed_y - completed_y, 2),
                failed_y=failed_y,
                failed_h=round(HEIGHT - failed_y, 2),
                title=f"{stamp} UTC: {p.completed} completed, {p.failed} failed{depth}",
            )
        )
        if p.enqueued is not None:
            cx = round(i * slot + slot / 2, 2)
            line.append(f"{cx},{_y(p.enqueued, depth_peak) if depth_peak else HEIGHT - 1:g}")
    return Chart(
        source=series.source,
        queue=series.queue,
        window=series.window,
        bars=tuple(bars),
        depth_points=" ".join(line),
        completed=sum(p.completed for p in points),
        failed=sum(p.failed for p in points),
        peak=peak,
        depth_now=next((d for d in reversed(depths) if d is not None), None),
        depth_peak=depth_peak,
        since=series.since,
    )
