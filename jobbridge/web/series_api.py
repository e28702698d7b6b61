"""Chart series over HTTP: the JSON API (``/api/sources/{source}/series``) and the polled
chart fragments of the overview and the source page (``templates/_charts.html``)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from jobbridge.errors import SourceUnavailable
from jobbridge.serialize import rfc3339
from jobbridge.series.model import Series, Window
from jobbridge.web import keys
from jobbridge.web.charts import STEP_WORDS, WINDOW_WORDS, Chart, chart
from jobbridge.web.context import Ui
from jobbridge.web.rendering import render
from jobbridge.web.responses import HttpError, json_response, route_param

log = logging.getLogger(__name__)

#: longest queue name a series request takes
MAX_QUEUE_CHARS = 200


def window_param(request: web.Request) -> Window:
    raw = request.query.get("window", Window.HOUR.value)
    try:
        return Window(raw)
    except ValueError:
        raise HttpError(
            400, "bad_request", "window must be one of: " + ", ".join(w.value for w in Window)
        ) from None


def queue_param(request: web.Request) -> str | None:
    queue = request.query.get("queue")
    if queue is None or queue == "":
        return None
    if len(queue) > MAX_QUEUE_CHARS:
        raise HttpError(400, "bad_request", f"queue is longer than {MAX_QUEUE_CHARS} characters")
    return queue


def series_json(series: Series) -> dict[str, Any]:
    return {
        "source": series.source,
        "window": series.window.value,
        "step_s": series.step_s,
        "queue": series.queue,
        "since": rfc3339(series.since),
        "points": [
            {
                "at": rfc3339(p.at),
                "completed": p.completed,
                "failed": p.failed,
                "enqueued": p.enqueued,
            }
            for p in series.points
        ],
    }


async def series(request: web.Request) -> web.Response:
    """``GET /api/sources/{source}/series?window=1h|24h[&queue=]``."""
    source = route_param(request, "source")
    service = request.app[keys.SERVICE]
    service.adapter(source)  # unknown source: 404 before the parameters are judged
    result = await service.series(source, window_param(request), queue_param(request))
    return json_response(series_json(result))


@dataclass(frozen=True, slots=True)
class ChartItem:
    """One chart of a fragment, or why its series could not be read."""

    source: str
    chart: Chart | None
    caption: str = ""
    error: str | None = None


async def _item(request: web.Request, source: str, window: Window) -> ChartItem:
    try:
        result = await request.app[keys.SERVICE].series(source, window)
    except SourceUnavailable as exc:
        return ChartItem(source, None, error=f"Redis unavailable ({exc.detail})")
    except Exception:  # one source's bug must not blank the other sources' charts
        log.exception("chart series of source %s failed", source)
        return ChartItem(source, None, error="internal error reading this source")
    caption = f"{WINDOW_WORDS[window]}, {STEP_WORDS[window]}"
    return ChartItem(source, chart(result), caption)


async def overview_charts(request: web.Request) -> web.Response:
    """Every source's last hour, one small chart each."""
    service = request.app[keys.SERVICE]
    # Side by side: a slow source costs its own read time, not everyone's in a row.
    items = await asyncio.gather(*(_item(request, i.name, Window.HOUR) for i in service.sources()))
    return await render("_charts.html", request, {"ui": Ui(request), "charts": items})


async def source_charts(request: web.Request) -> web.Response:
    """One source's last hour and last 24 hours."""
    source = route_param(request, "source")
    request.app[keys.SERVICE].adapter(source)
    items = await asyncio.gather(*(_item(request, source, w) for w in (Window.HOUR, Window.DAY)))
    context = {"ui": Ui(request), "charts": items, "source": source}
    return await render("_charts.html", request, context)
