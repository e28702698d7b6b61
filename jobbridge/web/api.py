"""JSON API handlers, plus the root machine endpoints (health, readiness, metrics, actuator)."""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from jobbridge.model import MAX_PER_PAGE, Action, ListName, Outcome, SnapshotQuery
from jobbridge.serialize import (
    action_json,
    audit_json,
    counters_json,
    detail_json,
    rfc3339,
    snapshot_json,
)
from jobbridge.web import keys
from jobbridge.web.actuator import actuator_jobs
from jobbridge.web.metrics import CONTENT_TYPE
from jobbridge.web.openapi import build_openapi
from jobbridge.web.responses import (
    HttpError,
    entry_param,
    int_query,
    job_param,
    json_response,
    route_param,
)

#: HTTP status of each action outcome
OUTCOME_STATUS: dict[Outcome, int] = {
    Outcome.DONE: 200,
    Outcome.NOT_FOUND: 404,
    Outcome.WRONG_STATE: 409,
    Outcome.CONFLICT: 409,
    Outcome.CORRUPT: 422,
    Outcome.UNAVAILABLE: 503,
    Outcome.FORBIDDEN: 403,
}
#: audit entries returned when ``limit`` is absent, and at most
AUDIT_DEFAULT_LIMIT = 100
AUDIT_MAX_LIMIT = 1000


def snapshot_query(request: web.Request, *, partial: bool = False) -> SnapshotQuery:
    """``<list>_page`` and ``per_page`` from the query string, clamped; with ``partial`` (the
    API), a ``per_page`` above ``MAX_PER_PAGE`` is a 400 ``bad_per_page``, and
    ``only=enqueued,failed`` reads those lists' pages and leaves the others empty (their
    totals still come back); unknown names are ignored."""
    pages = {name: int_query(request, f"{name.value}_page") for name in ListName}
    only = only_query(request) if partial else None
    per_page = int_query(request, "per_page")
    if partial and per_page is not None and per_page > MAX_PER_PAGE:
        # a script asking for more rows than it gets would page wrongly: say so, not clamp
        raise HttpError(
            400, "bad_per_page", f"per_page is at most {MAX_PER_PAGE} (asked for {per_page})."
        )
    return SnapshotQuery.build(pages, per_page, only=only)


def only_query(request: web.Request) -> frozenset[ListName] | None:
    raw = request.query.get("only", "")[:200]
    names = frozenset(ListName(n) for n in raw.split(",") if n in ListName.__members__.values())
    return names or None


def audit_limit(request: web.Request) -> int:
    limit = int_query(request, "limit")
    if limit is None:
        return AUDIT_DEFAULT_LIMIT
    return max(1, min(AUDIT_MAX_LIMIT, limit))


def audit_source(request: web.Request) -> str | None:
    """The ``source`` filter; unknown names are a 404 (empty means all sources)."""
    source = request.query.get("source", "").strip()
    if not source:
        return None
    if len(source) > 200 or source not in request.app[keys.SERVICE].adapters:
        raise HttpError(404, "not_found", f"Unknown source {source[:200]!r}.")
    return source


async def openapi(request: web.Request) -> web.Response:
    return json_response(build_openapi(request.app[keys.SETTINGS].server.prefix))


async def sources(request: web.Request) -> web.Response:
    service = request.app[keys.SERVICE]
    return json_response(
        {
            "sources": [
                {"name": s.name, "system": s.system, "capabilities": list(s.capabilities)}
                for s in service.sources()
            ]
        }
    )


async def snapshot(request: web.Request) -> web.Response:
    source = route_param(request, "source")
    query = snapshot_query(request, partial=True)
    result = await request.app[keys.SERVICE].snapshot(source, query)
    return json_response(snapshot_json(result))


async def job(request: web.Request) -> web.Response:
    source = route_param(request, "source")
    job_id = job_param(request)
    entry = entry_param(request)
    detail = await request.app[keys.SERVICE].job(source, job_id, entry=entry)
    if detail is None:
        raise HttpError(404, "not_found", f"Job {job_id!r} not found in source {source!r}.")
    return json_response(detail_json(detail))


async def act(request: web.Request) -> web.Response:
    source = route_param(request, "source")
    job_id = job_param(request)
    entry = entry_param(request)
    action = Action(request.match_info["action"])
    principal = request[keys.PRINCIPAL]
    service = request.app[keys.SERVICE]
    service.adapter(source)  # unknown source: 404 before the role check reveals anything
    if not principal.can_operate:
        raise HttpError(403, "forbidden", f"The {principal.role} role cannot {action.value} jobs.")
    result = await service.act(source, job_id, action, principal.actor, entry=entry)
    return json_response(action_json(result), status=OUTCOME_STATUS[result.outcome])


async def counters(request: web.Request) -> web.Response:
    reads = await request.app[keys.SERVICE].every_counters()
    return json_response(
        {
            "taken_at": rfc3339(datetime.now(tz=UTC)),
            "sources": [
                {
                    "name": r.name,
                    "system": r.system,
                    "up": r.error is None,
                    "slow": r.slow,
                    "error": r.error,
                    "counters": counters_json(r.value) if r.value is not None else None,
                }
                for r in reads
            ],
        }
    )


async def audit(request: web.Request) -> web.Response:
    source = audit_source(request)
    entries = await request.app[keys.SERVICE].audit(source, audit_limit(request))
    return json_response({"entries": [audit_json(e) for e in entries]})


# -------------------------------------------------------------------- root endpoints


async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    reads = await request.app[keys.SERVICE].readiness()
    ready = all(r.detail is None for r in reads)
    body = {
        "ready": ready,
        "sources": {r.name: {"ready": r.detail is None, "error": r.public_error} for r in reads},
    }
    return json_response(body, status=200 if ready else 503)


async def metrics(request: web.Request) -> web.Response:
    app = request.app
    body = await app[keys.METRICS].render(app[keys.SERVICE], app[keys.SECURITY].shared)
    response = web.Response(body=body)
    response.headers["Content-Type"] = CONTENT_TYPE
    return response


async def actuator(request: web.Request) -> web.Response:
    return json_response(await actuator_jobs(request.app[keys.SERVICE]))
