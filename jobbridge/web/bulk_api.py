"""The bulk actions' JSON API (issue 19): start a dry run, read it, confirm it, cancel it.

Roles, CSRF and read-only mode apply as for single actions: the CSRF middleware checks every
session POST; a viewer may start a dry run (it changes nothing) but not confirm or cancel one;
read-only mode refuses the confirm.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from jobbridge.bulk.model import (
    BULK_ACTIONS,
    MAX_TICKED,
    BulkBusy,
    BulkCountMismatch,
    BulkError,
    BulkForbidden,
    BulkNotFound,
    BulkRun,
    BulkWrongState,
)
from jobbridge.filters import FIELD_NAMES, FILTERABLE, FilterError, parse_filter
from jobbridge.model import Action, ListName
from jobbridge.serialize import to_json
from jobbridge.web import keys
from jobbridge.web.responses import HttpError, json_response, route_param

#: largest request body read, bytes
MAX_BODY = 256 * 1024


def bulk_json(run: BulkRun) -> dict[str, Any]:
    """A run as JSON: its fields, plus ``progress`` (0..1)."""
    return {**to_json(run), "progress": round(run.progress, 4)}


def _refusal(exc: BulkError) -> HttpError:
    if isinstance(exc, BulkNotFound):
        return HttpError(404, "not_found", str(exc))
    if isinstance(exc, BulkForbidden):
        return HttpError(403, "forbidden", str(exc))
    if isinstance(exc, BulkCountMismatch):
        return HttpError(409, "count_mismatch", str(exc))
    if isinstance(exc, BulkWrongState):
        return HttpError(409, "wrong_state", str(exc))
    if isinstance(exc, BulkBusy):
        return HttpError(429, "busy", str(exc))
    return HttpError(400, "bad_request", str(exc))


async def _body(request: web.Request) -> dict[str, Any]:
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise HttpError(413, "too_large", f"A bulk request is at most {MAX_BODY:,} bytes.")
    raw = await request.read()
    if not raw.strip():
        return {}
    if len(raw) > MAX_BODY:
        raise HttpError(413, "too_large", f"A bulk request is at most {MAX_BODY:,} bytes.")
    try:
        data = json.loads(raw)
    except ValueError:
        raise HttpError(400, "bad_request", "The body is not JSON.") from None
    if not isinstance(data, dict):
        raise HttpError(400, "bad_request", "The body is a JSON object.")
    return data


def _operator(request: web.Request, what: str) -> str:
    principal = request[keys.PRINCIPAL]
    if not principal.can_operate:
        raise HttpError(403, "forbidden", f"The {principal.role} role cannot {what} bulk runs.")
    return str(principal.actor)


async def start(request: web.Request) -> web.Response:
    """``POST /api/sources/{source}/bulk``: start a dry run (202); viewers may."""
    source = route_param(request, "source")
    service = request.app[keys.SERVICE]
    service.adapter(source)
    body = await _body(request)
    try:
        action = Action(str(body.get("action", "")))
    except ValueError:
        action = None
    if action not in BULK_ACTIONS:
        raise HttpError(
            400, "bad_action", f"action is one of {', '.join(a.value for a in BULK_ACTIONS)}."
        )
    assert action is not None
    default = ListName.ENQUEUED if action is Action.CANCEL else ListName.FAILED
    try:
        which = ListName(str(body.get("list") or default.value))
    except ValueError:
        which = None
    if which not in FILTERABLE:
        raise HttpError(400, "bad_list", f"list is one of {', '.join(FILTERABLE)}.")
    assert which is not None
    raw_filter = body.get("filter") or {}
    if not isinstance(raw_filter, dict):
        raise HttpError(400, "bad_filter", "filter is an object.")
    unknown = sorted(str(k)[:40] for k in raw_filter if k not in FIELD_NAMES)
    if unknown:
        raise HttpError(400, "bad_filter", f"unknown filter fields: {', '.join(unknown)}.")
    try:
        job_filter = parse_filter({k: str(v) for k, v in raw_filter.items() if v is not None})
    except FilterError as exc:
        raise HttpError(400, "bad_filter", str(exc)) from None
    ids = body.get("ids") or []
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise HttpError(400, "bad_ids", "ids is a list of job ids.")
    if len(ids) > MAX_TICKED:
        raise HttpError(400, "bad_ids", f"at most {MAX_TICKED:,} ids.")
    actor = request[keys.PRINCIPAL].actor
    try:
        run = await service.bulk_start(source, action, which, job_filter, actor, ids=ids)
    except BulkError as exc:
        raise _refusal(exc) from None
    return json_response(bulk_json(run), status=202)


def _run_id(request: web.Request) -> str:
    return route_param(request, "run")


async def read(request: web.Request) -> web.Response:
    """``GET /api/sources/{source}/bulk/{run}``: the run's progress and outcomes."""
    source = route_param(request, "source")
    run_id = _run_id(request)
    run = await request.app[keys.SERVICE].bulk_read(source, run_id)
    if run is None:
        raise HttpError(404, "not_found", f"No bulk run {run_id[:40]!r} (or it expired).")
    return json_response(bulk_json(run))


async def confirm(request: web.Request) -> web.Response:
    """``POST /api/sources/{source}/bulk/{run}/confirm`` ``{count}``: act (202)."""
    source = route_param(request, "source")
    run_id = _run_id(request)
    service = request.app[keys.SERVICE]
    service.adapter(source)
    actor = _operator(request, "confirm")
    body = await _body(request)
    count = body.get("count")
    if not isinstance(count, int) or isinstance(count, bool):
        raise HttpError(400, "bad_count", "count is the number of jobs the dry run matched.")
    try:
        run = await service.bulk_confirm(source, run_id, count, actor)
    except BulkError as exc:
        raise _refusal(exc) from None
    return json_response(bulk_json(run), status=202)


async def cancel(request: web.Request) -> web.Response:
    """``POST /api/sources/{source}/bulk/{run}/cancel``: stop the run between two batches."""
    source = route_param(request, "source")
    run_id = _run_id(request)
    service = request.app[keys.SERVICE]
    service.adapter(source)
    actor = _operator(request, "cancel")
    try:
        run = await service.bulk_cancel(source, run_id, actor)
    except BulkError as exc:
        raise _refusal(exc) from None
    return json_response(bulk_json(run))


# -------------------------------------------------------------------- the OpenAPI part


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def bulk_run_schema(record: dict[str, Any]) -> dict[str, Any]:
    """The BulkRun component: the record's own schema (``record``), plus ``progress``."""
    progress = {
        "type": "number",
        "minimum": 0,
        "maximum": 1,
        "description": "jobs acted on of those matched (0 while matching; 1 when done)",
    }
    return {
        **record,
        "required": [*record["required"], "progress"],
        "properties": {**record["properties"], "progress": progress},
    }


def bulk_paths(api: str, source: dict[str, Any], auth_errors: dict[str, Any]) -> dict[str, Any]:
    """The bulk endpoints' part of the OpenAPI document (jobbridge.web.openapi)."""
    run = {
        "name": "run",
        "in": "path",
        "required": True,
        "description": "the bulk run's id (as its creation returned it)",
        "schema": {"type": "string", "maxLength": 200},
    }
    reply = {"application/json": {"schema": {"$ref": "#/components/schemas/BulkRun"}}}
    csrf = (
        " Browser sessions must send the X-CSRF-Token header; every request must pass the "
        "Origin / Sec-Fetch-Site check."
    )
    unavailable = {"503": _error("The source's Redis is unavailable.")}
    filter_schema = {
        "type": "object",
        "description": "JobFilter fields as text (every field set must hold; times: 15m, 1h, "
        "7d ago or ISO 8601)",
        "properties": {name: {"type": ["string", "null"]} for name in FIELD_NAMES},
        "additionalProperties": False,
    }
    body = {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["action"],
                    "properties": {
                        "action": {"enum": [a.value for a in BULK_ACTIONS]},
                        "list": {
                            "enum": [n.value for n in FILTERABLE],
                            "description": "default: enqueued for cancel, else failed",
                        },
                        "filter": filter_schema,
                        "ids": {
                            "type": "array",
                            "items": {"type": "string"},
                            "maxItems": MAX_TICKED,
                            "description": "the rows an operator ticked: then the filter is "
                            "not used",
                        },
                    },
                }
            }
        },
    }
    count = {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["count"],
                    "properties": {
                        "count": {
                            "type": "integer",
                            "description": "the dry run's matched count, as the operator saw it",
                        }
                    },
                }
            }
        },
    }
    base = f"{api}/sources/{{source}}/bulk"
    return {
        base: {
            "post": {
                "summary": "Start a bulk retry, discard or cancel as a dry run: the list is "
                "walked in the background, matching ids kept; read it until it is matched.",
                "description": "Any role may start one (a dry run changes nothing), in "
                "read-only mode too." + csrf,
                "parameters": [source],
                "requestBody": body,
                "responses": {
                    "202": {"description": "Started (state matching).", "content": reply},
                    "400": _error(
                        "A wrong action, list, filter or ids (bad_action, bad_list, "
                        "bad_filter, bad_ids, bad_request)."
                    ),
                    **auth_errors,
                    "404": _error("No such source."),
                    "413": _error("The body is too large (too_large)."),
                    "429": _error(
                        "This jobbridge runs its most bulk runs at once (busy), or too many "
                        "failed sign-ins from this address."
                    ),
                    **unavailable,
                },
            }
        },
        f"{base}/{{run}}": {
            "get": {
                "summary": "A bulk run: its dry run's count and sample, then its progress, "
                "counts per outcome and the jobs not acted on (kept for a day).",
                "parameters": [source, run],
                "responses": {
                    "200": {"description": "OK", "content": reply},
                    **auth_errors,
                    "404": _error("No such source or run (or it expired)."),
                    **unavailable,
                },
            }
        },
        f"{base}/{{run}}/confirm": {
            "post": {
                "summary": "Act on exactly the jobs the dry run matched, in small batches "
                "through each job's own action script.",
                "description": "Operator role required; refused in read-only mode (403)." + csrf,
                "parameters": [source, run],
                "requestBody": count,
                "responses": {
                    "202": {"description": "Running.", "content": reply},
                    "400": _error("No count (bad_count)."),
                    **auth_errors,
                    "404": _error("No such source or run (or it expired)."),
                    "409": _error(
                        "The count is not the dry run's (count_mismatch), or the run is not "
                        "a finished dry run (wrong_state)."
                    ),
                    "413": _error("The body is too large (too_large)."),
                    **unavailable,
                },
            }
        },
        f"{base}/{{run}}/cancel": {
            "post": {
                "summary": "Stop a bulk run between two batches (the rest untouched), or end a "
                "dry run so it cannot be confirmed.",
                "description": "Operator role required." + csrf,
                "parameters": [source, run],
                "responses": {
                    "200": {"description": "Stopped, or stopping.", "content": reply},
                    **auth_errors,
                    "404": _error("No such source or run (or it expired)."),
                    **unavailable,
                },
            }
        },
    }
