"""Queue census over HTTP: the JSON API (``api/sources/{source}/queues/{queue}/census``: POST
starts one, GET reads its progress or result) and the source page's census card
(``templates/_census.html``), polled while a census runs.

A request never reads a queue: it starts a census (a background task of this process, see
jobbridge.census.runner) or reads what one stored. Anyone signed in may start one, viewers
and read-only mode included: it shows counts of what a viewer may already list, and writes
only jobbridge's own keys (docs/api.md, "Queue census").
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from redis.exceptions import RedisError

from jobbridge.census.model import (
    CensusBusy,
    CensusResult,
    CensusState,
    CensusUnsupported,
    Counted,
    census_json,
)
from jobbridge.census.runner import CensusManager
from jobbridge.errors import SourceUnavailable
from jobbridge.web import keys
from jobbridge.web.context import Ui
from jobbridge.web.middlewares import is_htmx
from jobbridge.web.rendering import render
from jobbridge.web.responses import HttpError, json_response, redirect, route_param

#: the censuses this app runs
CENSUS = web.AppKey("jobbridge_census", CensusManager)
#: longest queue name a census request takes
MAX_QUEUE_CHARS = 200
#: names (and principals) the page shows of a census; the API gives every one stored
PAGE_TOP = 20


def install(app: web.Application) -> None:
    """Give the app its census manager, closed (its censuses stopped) at clean-up."""
    app[CENSUS] = CensusManager()

    async def close(app: web.Application) -> None:
        await app[CENSUS].close()

    # On shutdown, before the clean-up closes the sources' clients: a census stopped here can
    # still store that it was stopped.
    app.on_shutdown.append(close)


def _checked_queue(queue: str | None) -> str:
    if not queue:
        raise HttpError(400, "bad_request", "queue is required")
    if len(queue) > MAX_QUEUE_CHARS:
        raise HttpError(400, "bad_request", f"queue is longer than {MAX_QUEUE_CHARS} characters")
    return queue


async def _known_queue(request: web.Request, source: str, queue: str) -> Any:
    """The source's adapter, once the queue is one the source shows (a census writes keys
    named after it: an arbitrary name must not make one)."""
    service = request.app[keys.SERVICE]
    adapter = service.adapter(source)  # unknown source: 404
    counters = await service.counters(source)
    if queue not in {q.name for q in counters.queues}:
        raise HttpError(404, "not_found", f"Source {source!r} has no queue {queue!r}.")
    return adapter


def _unavailable(source: str, exc: RedisError) -> HttpError:
    """A census's own Redis commands failed (the service's reads map theirs the same way)."""
    return HttpError(
        503,
        "unavailable",
        f"The Redis of source {source!r} is unavailable or refused the census "
        f"({type(exc).__name__}: {str(exc)[:200]}).",
        source=source,
    )


async def _start(request: web.Request, source: str, queue: str) -> CensusResult:
    adapter = await _known_queue(request, source, queue)
    try:
        return await request.app[CENSUS].start(adapter, queue)
    except CensusUnsupported as exc:
        raise HttpError(400, "census_unsupported", f"{exc}.") from None
    except CensusBusy as exc:
        raise HttpError(429, "census_busy", f"{exc}.") from None
    except RedisError as exc:
        raise _unavailable(source, exc) from None


# ------------------------------------------------------------------------------ the API


async def api_start(request: web.Request) -> web.Response:
    """``POST /api/sources/{source}/queues/{queue}/census``: start a census (202), or the
    one running already."""
    source = route_param(request, "source")
    queue = _checked_queue(request.match_info.get("queue"))
    return json_response(census_json(await _start(request, source, queue)), status=202)


async def api_result(request: web.Request) -> web.Response:
    """``GET /api/sources/{source}/queues/{queue}/census``: progress or result."""
    source = route_param(request, "source")
    queue = _checked_queue(request.match_info.get("queue"))
    adapter = await _known_queue(request, source, queue)
    try:
        result = await request.app[CENSUS].result(adapter, queue)
    except CensusUnsupported as exc:
        raise HttpError(400, "census_unsupported", f"{exc}.") from None
    except RedisError as exc:
        raise _unavailable(source, exc) from None
    if result is None:
        raise HttpError(
            404, "not_found", f"No census of queue {queue!r} is stored: POST here to start one."
        )
    return json_response(census_json(result))


# ------------------------------------------------------------------------------ the page


@dataclass(frozen=True, slots=True)
class QueueCensus:
    """One row of the census card: a queue, its depth now, and its census if any."""

    queue: str
    depth: int
    result: CensusResult | None

    @property
    def running(self) -> bool:
        return self.result is not None and self.result.state is CensusState.RUNNING

    @property
    def names(self) -> tuple[Counted, ...]:
        return self.result.names[:PAGE_TOP] if self.result is not None else ()

    @property
    def principals(self) -> tuple[Counted, ...] | None:
        if self.result is None or self.result.principals is None:
            return None
        return self.result.principals[:PAGE_TOP]


async def _card(request: web.Request, source: str) -> dict[str, Any]:
    service = request.app[keys.SERVICE]
    adapter = service.adapter(source)
    context: dict[str, Any] = {
        "ui": Ui(request),
        "source": source,
        "rows": [],
        "error": None,
        "unsupported": None,
        "page_top": PAGE_TOP,
    }
    manager = request.app[CENSUS]
    try:
        counters = await service.counters(source)
        queues = counters.queues
        results = await asyncio.gather(*(manager.result(adapter, q.name) for q in queues))
    except CensusUnsupported as exc:
        context["unsupported"] = f"{exc}."
        return context
    except SourceUnavailable as exc:
        context["error"] = f"Redis unavailable ({exc.detail})"
        return context
    except RedisError as exc:
        context["error"] = _unavailable(source, exc).message
        return context
    context["rows"] = [
        QueueCensus(q.name, q.enqueued, r) for q, r in zip(queues, results, strict=True)
    ]
    return context


async def card(request: web.Request) -> web.Response:
    """``GET /census/{source}``: the census card of a source page (polled while one
    runs)."""
    source = route_param(request, "source")
    return await render("_census.html", request, await _card(request, source))


async def start(request: web.Request) -> web.Response:
    """``POST /census/{source}`` (form field ``queue``): start a census, then the card
    (htmx) or the source page again."""
    source = route_param(request, "source")
    form = await request.post()
    raw = form.get("queue")
    queue = _checked_queue(raw if isinstance(raw, str) else None)
    await _start(request, source, queue)
    if is_htmx(request):
        return await render("_census.html", request, await _card(request, source))
    return redirect(Ui(request).source_url(source) + "#census")


# ------------------------------------------------------------------------------ OpenAPI


def census_schema() -> dict[str, Any]:
    """The reply of both census operations (``census_json``)."""
    count = {"type": "integer", "minimum": 0}
    counted = {
        "type": "array",
        "items": {
            "type": "object",
            "required": ["name", "count"],
            "properties": {"name": {"type": "string"}, "count": count},
        },
    }
    time = {"type": ["string", "null"], "format": "date-time"}
    properties: dict[str, Any] = {
        "source": {"type": "string"},
        "queue": {"type": "string"},
        "state": {
            "enum": [s.value for s in CensusState],
            "description": "running; done; failed (see error); interrupted: stored as "
            "running but no jobbridge holds it any more (start it again)",
        },
        "total_at_start": {**count, "description": "waiting jobs when it started"},
        "read": {**count, "description": "jobs read so far"},
        "percent": {**count, "maximum": 100},
        "names": {**counted, "description": "the most frequent job names, most first (200)"},
        "other_names": {**count, "description": "jobs whose names are not listed"},
        "distinct_names": count,
        "principals": {
            **counted,
            "type": ["array", "null"],
            "description": "the same by principal; null: the system records none",
        },
        "other_principals": count,
        "missing": {**count, "description": "ids read whose record was gone (taken meanwhile)"},
        "started_at": time,
        "finished_at": time,
        "updated_at": time,
        "note": {
            "type": ["string", "null"],
            "description": "what the counts cover when not exactly the queue at the start",
        },
        "error": {"type": ["string", "null"], "description": "why a failed census stopped"},
    }
    return {"type": "object", "required": list(properties), "properties": properties}


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def census_paths(api: str, source: dict[str, Any], auth_errors: dict[str, Any]) -> dict[str, Any]:
    """The census endpoints' part of the OpenAPI document (jobbridge.web.openapi)."""
    queue = {
        "name": "queue",
        "in": "path",
        "required": True,
        "description": "one of the source's queues (as its counters list them)",
        "schema": {"type": "string", "maxLength": MAX_QUEUE_CHARS},
    }
    reply = {"application/json": {"schema": census_schema()}}
    errors = {
        "400": _error("The source's system has no census (census_unsupported)."),
        **auth_errors,
        "404": _error("No such source or queue (GET: or no census stored yet)."),
        "503": _error("The source's Redis is unavailable."),
    }
    return {
        f"{api}/sources/{{source}}/queues/{{queue}}/census": {
            "post": {
                "summary": "Start a census of the queue: its waiting jobs counted by name (and "
                "by principal where the system has one) by a background read in pages.",
                "description": "Any role may start one, in read-only mode too: it writes only "
                "jobbridge's own keys. One runs per queue at a time (across replicas); "
                "starting one that runs returns it.",
                "parameters": [source, queue],
                "responses": {
                    "202": {"description": "Started, or running already.", "content": reply},
                    **errors,
                    "429": _error(
                        "This jobbridge runs its most censuses at once (census_busy), or too "
                        "many failed sign-ins from this address."
                    ),
                },
            },
            "get": {
                "summary": "The queue's census: progress while it runs, then its counts (kept "
                "for a day).",
                "parameters": [source, queue],
                "responses": {"200": {"description": "OK", "content": reply}, **errors},
            },
        }
    }
