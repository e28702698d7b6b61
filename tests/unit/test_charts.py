"""The chart geometry (jobbridge.web.charts) and the series Lua files' headers."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from jobbridge import leases
from jobbridge.series.model import Series, SeriesPoint, Window
from jobbridge.series.store import script
from jobbridge.web.charts import HEADROOM, HEIGHT, WIDTH, chart


def series(values: list[tuple[int, int, int | None]], window: Window = Window.HOUR) -> Series:
    step = 60 if window is Window.HOUR else 900
    points = tuple(
        SeriesPoint(
            at=datetime.fromtimestamp(1_800_000_000 + i * step, tz=UTC),
            completed=c,
            failed=f,
            enqueued=e,
        )
        for i, (c, f, e) in enumerate(values)
    )
    return Series(source="s<b>", window=window, step_s=step, points=points, queue="q&")


def test_bars_stack_failed_under_completed_and_fill_the_width() -> None:
    c = chart(series([(0, 0, None), (3, 1, 4), (1, 0, 8), (0, 0, None)]))
    assert len(c.bars) == 4
    assert c.peak == 4 and c.completed == 4 and c.failed == 1
    tall = c.bars[1]
    assert tall.completed_y == HEADROOM  # the peak reaches the headroom line
    assert tall.failed_y + tall.failed_h == HEIGHT
    assert tall.completed_y + tall.completed_h == tall.failed_y
    assert tall.failed_h == pytest.approx((HEIGHT - HEADROOM) / 4, abs=0.01)
    assert c.bars[0].completed_h == 0 and c.bars[0].failed_h == 0
    assert c.bars[-1].x + c.bars[-1].width <= WIDTH
    assert all(b.width > 0 for b in c.bars)


def test_depth_line_skips_unsampled_steps_and_scales_to_its_peak() -> None:
    c = chart(series([(0, 0, None), (0, 0, 4), (0, 0, 8), (0, 0, None)]))
    points = [tuple(map(float, p.split(","))) for p in c.depth_points.split()]
    assert len(points) == 2
    assert points[1][1] == HEADROOM and points[0][1] == pytest.approx(HEIGHT - 38, abs=0.01)
    assert c.depth_now == 8 and c.depth_peak == 8


def test_an_empty_series_draws_flat() -> None:
    c = chart(series([(0, 0, None)] * 60))
    assert c.peak == 0 and c.depth_points == "" and c.depth_now is None
    assert all(b.completed_y == HEIGHT for b in c.bars)
    assert "not sampled" in c.label


def test_label_and_titles_say_the_numbers() -> None:
    c = chart(series([(2, 1, 5)], Window.DAY))
    assert c.label == (
        "s<b> queue q&, last 24 hours: 2 completed, 1 failed (at most 3 per 15 minutes); "
        "queue depth 5 now, at most 5"
    )
    assert c.bars[0].title.endswith("UTC: 2 completed, 1 failed, 5 waiting")


@pytest.mark.parametrize("name", ["write", "lease"])
def test_series_scripts_declare_keys_argv_and_returns(name: str) -> None:
    # the lease script is shared with the census (jobbridge/leases.py)
    text = leases.script_text() if name == "lease" else script(name)
    body = text.split("-- Returns:")[1]
    used_keys = {int(n) for n in re.findall(r"KEYS\[(\d+)\]", body)}
    declared_keys = {int(n) for n in re.findall(r"^-- KEYS\[(\d+)\]", text, re.M)}
    used_argv = {int(n) for n in re.findall(r"ARGV\[(\d+)\]", body)}
    declared_argv = {int(n) for n in re.findall(r"^-- ARGV\[(\d+)\]", text, re.M)}
    assert used_keys <= declared_keys and used_argv <= declared_argv
    # Every key goes through KEYS: no redis.call names a key literally.
    assert not re.search(r"redis\.call\('[A-Z]+', *'", body)
