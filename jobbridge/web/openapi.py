"""The OpenAPI 3.1 document of the JSON API, served at ``{prefix}/api/openapi.json``.

The records' schemas are derived from the model's dataclasses through the fields serialize.py
encodes (``json_fields``): types from the type hints, names and descriptions from ``model.api``.
"""

from __future__ import annotations

import dataclasses
import enum
import typing
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import jobbridge
from jobbridge.adapters import action_notes, names
from jobbridge.bulk.model import BulkRun, BulkSkip
from jobbridge.compare import WORST_FIRST, CompareRow, Direction, Rates, SortKey
from jobbridge.filters import JobFilter
from jobbridge.model import (
    DONE_WORDS,
    Action,
    AuditEntry,
    Counters,
    JobDetail,
    JobRecord,
    LifecycleEntry,
    ListName,
    Page,
    QueueCounters,
    Schedule,
    Snapshot,
    Worker,
)
from jobbridge.serialize import JsonField, json_fields, optional
from jobbridge.web import actuator
from jobbridge.web.bulk_api import bulk_paths, bulk_run_schema
from jobbridge.web.census_views import census_paths
from jobbridge.web.series_schema import series_paths


def system_names() -> list[str]:
    """The document's ``system`` enum: every system registered now (jobbridge.adapters)."""
    return list(names())


_TIME_TEXT = "RFC 3339, UTC, whole seconds, Z suffix"
_TIME = {"type": "string", "format": "date-time", "description": _TIME_TEXT}
_STR_OR_NULL = {"type": ["string", "null"]}

#: the model's records the document names, under their schema names
RECORDS: dict[str, type] = {
    "Job": JobRecord,
    "JobDetail": JobDetail,
    "LifecycleEntry": LifecycleEntry,
    "Counters": Counters,
    "QueueCounters": QueueCounters,
    "Page": Page,
    "Snapshot": Snapshot,
    "Schedule": Schedule,
    "Worker": Worker,
    "AuditEntry": AuditEntry,
    "CompareRow": CompareRow,
    "Rates": Rates,
    "BulkRun": BulkRun,
    "BulkSkip": BulkSkip,
    "JobFilter": JobFilter,
}
_SCHEMA_NAMES = {cls: name for name, cls in RECORDS.items()}
_SCALARS: dict[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _system() -> dict[str, Any]:
    return {"type": "string", "enum": system_names()}


def _type_schema(hint: Any, metadata: Mapping[str, Any]) -> dict[str, Any]:
    """The schema of a value of type ``hint`` as serialize.py encodes it (never null)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if metadata.get("systems"):
        return _system()
    if hint is datetime:
        return {"type": "string", "format": "date-time"}
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        values = metadata.get("values") or [m.value for m in hint]
        return {"type": "string", "enum": list(values)}
    if hint in _SCALARS:
        return {"type": _SCALARS[hint]}
    if origin is typing.Literal:
        return {"type": "string", "enum": list(args)}
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _ref(_SCHEMA_NAMES[hint])
    if origin is tuple:
        return {"type": "array", "items": _type_schema(args[0], {})}
    if origin in (Mapping, dict):
        key, value = args
        if isinstance(key, type) and issubclass(key, enum.Enum):
            # one entry per member it has, none other
            members = {m.value: _type_schema(value, {}) for m in key}
            return {"type": "object", "properties": members, "additionalProperties": False}
        return {"type": "object", "additionalProperties": _type_schema(value, {})}
    raise TypeError(f"no schema for {hint!r}")


def _field_schema(field: JsonField) -> dict[str, Any]:
    hint, nullable = optional(field.hint)
    schema = _type_schema(hint, field.metadata)
    if nullable:
        if "$ref" in schema:
            schema = {"oneOf": [schema, {"type": "null"}]}
        else:
            schema["type"] = [schema["type"], "null"]
            if "enum" in schema:
                schema["enum"] = [*schema["enum"], None]
    description = field.metadata.get("description")
    if hint is datetime:
        description = f"{description}; {_TIME_TEXT}" if description else _TIME_TEXT
    if description:
        schema["description"] = description
    return schema


def record_schema(cls: type) -> dict[str, Any]:
    """A record's object schema: every key it encodes to, each always present."""
    properties: dict[str, Any] = {}
    for field in json_fields(cls):
        if field.inline:  # its keys are the parent's, in its order
            properties.update(record_schema(field.hint)["properties"])
        else:
            properties[field.key] = _field_schema(field)
    schema: dict[str, Any] = {"type": "object", "required": list(properties)}
    # dataclass() writes a signature where a class has no docstring of its own
    doc = cls.__doc__ or ""
    if doc and not doc.startswith(f"{cls.__name__}("):
        schema["description"] = doc.strip().splitlines()[0]
    schema["properties"] = properties
    return schema


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": _ref("Error")}},
    }


def _ok(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _object(properties: dict[str, Any], *, sometimes: tuple[str, ...] = ()) -> dict[str, Any]:
    """An object whose listed keys are always present (but the ``sometimes`` ones)."""
    required = [key for key in properties if key not in sometimes]
    return {"type": "object", "required": required, "properties": properties}


def _root_schemas() -> dict[str, Any]:
    """The replies of the root endpoints (web/api.py, web/actuator.py), written out."""
    names = ("queued", "in_flight", "success", "failure", "dead_letter")
    counts = {name: {"type": "integer"} for name in names}
    tally = {**counts, "last_error": _STR_OR_NULL}
    source_up = _object(
        {
            "system": _system(),
            "up": {"const": True},
            "approximate": {"type": "boolean"},
            "sample_size": {"type": "integer", "description": "rows read"},
            "truncated_lists": {
                "type": "array",
                "items": {"type": "string", "enum": [n.value for n in ListName]},
            },
            "totals": {"type": "object", "additionalProperties": {"type": "integer"}},
        }
    )
    source_down = _object(
        {
            "system": _system(),
            "up": {"const": False},
            "error": {
                "type": "string",
                "description": '"unavailable", "internal", or how '
                'long a slow Redis was given ("timed out after 2 s")',
            },
        }
    )
    job = _object(
        {
            **tally,
            "sources": {"type": "object", "additionalProperties": _object(tally)},
            "approximate": {"const": True},
            "sample_size": {"type": "integer"},
        },
        sometimes=("approximate", "sample_size"),
    )
    ready = _object(
        {
            "ready": {"type": "boolean"},
            "sources": {
                "type": "object",
                "additionalProperties": _object(
                    {"ready": {"type": "boolean"}, "error": _STR_OR_NULL}
                ),
            },
        }
    )
    return {
        "Actuator": _object(
            {
                "taken_at": _TIME,
                "jobs": {"type": "object", "additionalProperties": job},
                "sources": {
                    "type": "object",
                    "additionalProperties": {"oneOf": [source_up, source_down]},
                },
                "approximate": {"type": "boolean"},
                "sample_size": {"type": "integer"},
            },
            sometimes=("sample_size",),
        ),
        "Health": _object({"status": {"const": "ok"}}),
        "Readiness": ready,
    }


_AUTH_ERRORS = {
    "401": _error("Not authenticated (no or invalid credentials)."),
    "403": _error("Authenticated but not allowed."),
    "429": _error("Too many failed sign-ins from this address within a minute; see Retry-After."),
}
_SOURCE = {
    "name": "source",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "maxLength": 200},
}
_JOB_ID = {
    "name": "id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "maxLength": 200},
    "description": "the job id, percent-encoded, byte for byte (never trimmed); an id with "
    "other characters than letters, digits and `._~:@!$'()*+,;=-` (or `.`, `..`, `job`, "
    "`counters`) goes as the segment `job` plus the query `?id=`",
}
_ENTRY = {
    "name": "entry",
    "in": "query",
    "required": False,
    "schema": {"type": "string", "maxLength": 100},
    "description": "the row's `entry`, when it has one: which of the entries sharing this id "
    "(two Celery messages of one task id) to show or act on; without it, the first found",
}


def schemas() -> dict[str, Any]:
    """The components: the model's records, plus the action replies' two shapes."""
    return {
        "Error": {
            "type": "object",
            "required": ["error", "message"],
            "properties": {
                "error": {
                    "type": "string",
                    "description": "not_found, wrong_state, conflict, corrupt, unavailable, "
                    "forbidden, unauthorized, too_many_attempts, csrf, cross_origin, internal, "
                    "bad_query; bulk runs: bad_action, bad_list, bad_filter, bad_ids, "
                    "bad_count, bad_request, count_mismatch, busy, too_large",
                },
                "message": {"type": "string"},
                "id": {"type": "string", "description": "refused actions: the job id"},
            },
        },
        "ActionDone": {
            "type": "object",
            "required": ["outcome", "id", "message"],
            "properties": {
                "outcome": {"enum": [DONE_WORDS[a] for a in Action]},
                "id": {"type": "string"},
                "new_id": {"type": "string", "description": "the job a retry created"},
                "message": {"type": "string"},
            },
        },
        **{name: record_schema(cls) for name, cls in RECORDS.items()},
        "BulkRun": bulk_run_schema(record_schema(BulkRun)),
        **_root_schemas(),
    }


def _page_params() -> list[dict[str, Any]]:
    params = [
        {
            "name": f"{name.value}_page",
            "in": "query",
            "schema": {"type": "integer", "minimum": 1, "default": 1},
            "description": f"page of the {name.value} list; invalid values mean 1",
        }
        for name in ListName
    ]
    params.append(
        {
            "name": "per_page",
            "in": "query",
            "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 25},
            "description": "rows per page, 1..100; above 100 is a 400 (bad_per_page)",
        }
    )
    params.append(
        {
            "name": "only",
            "in": "query",
            "schema": {"type": "string", "example": "enqueued,failed"},
            "description": "comma-separated lists whose page to read; the others come back "
            "empty with their totals (unknown names are ignored; absent: every list)",
        }
    )
    return params


def _action_summaries() -> list[tuple[str, str]]:
    """Each action's summary: what it does, then what each system that offers it says."""
    notes = {action: action_notes(action, "api") for action in Action}
    stop = "; ".join(notes[Action.STOP])
    return [
        ("retry", "Re-enqueue a failed job under a new id."),
        (
            "discard",
            " ".join(["Remove a failed job from the failed list.", *notes[Action.DISCARD]]),
        ),
        ("cancel", "Remove a job no worker has taken yet."),
        (
            "stop",
            f"Ask the worker running a job to stop it{f' ({stop})' if stop else ''}. "
            "Sources whose system has no such command answer wrong_state.",
        ),
        ("revoke", " ".join([*notes[Action.REVOKE], "Other systems answer wrong_state."])),
    ]


def _paths(prefix: str) -> dict[str, Any]:
    from jobbridge.web.search_openapi import search_path  # it builds on this module's pieces

    api = f"{prefix}/api"
    action_responses = {
        "200": _ok(_ref("ActionDone"), "The action happened."),
        "401": _AUTH_ERRORS["401"],
        "403": _error("Viewer role, read-only mode, or a failed CSRF / origin check."),
        "404": _error("No such source or job."),
        "409": _error("Wrong state (e.g. already running) or conflict (unique job pending)."),
        "422": _error(
            "The stored record is corrupt, or a key the action needs holds another type (the "
            "message names it); nothing was changed."
        ),
        "503": _error("The source's Redis is unavailable."),
    }
    return {
        f"{api}/openapi.json": {
            "get": {"summary": "This document.", "responses": {"200": {"description": "OK"}}}
        },
        f"{api}/sources": {
            "get": {
                "summary": "Configured sources.",
                "responses": {
                    "200": _ok(
                        _object(
                            {
                                "sources": {
                                    "type": "array",
                                    "items": _object(
                                        {
                                            "name": {"type": "string"},
                                            "system": _system(),
                                            "capabilities": {
                                                "type": "array",
                                                "items": {"type": "string"},
                                            },
                                        }
                                    ),
                                }
                            }
                        )
                    ),
                    **_AUTH_ERRORS,
                },
            }
        },
        f"{api}/sources/{{source}}/snapshot": {
            "get": {
                "summary": "Counters and one page of each of the five lists, newest first.",
                "parameters": [_SOURCE, *_page_params()],
                "responses": {
                    "200": _ok(_ref("Snapshot")),
                    "400": _error("per_page above 100 (bad_per_page)."),
                    **_AUTH_ERRORS,
                    "404": _error("No such source."),
                    "503": _error("The source's Redis is unavailable."),
                },
            }
        },
        f"{api}/sources/{{source}}/jobs/{{id}}": {
            "get": {
                "summary": "One job with its safely decoded payload and lifecycle entries.",
                "parameters": [_SOURCE, _JOB_ID, _ENTRY],
                "responses": {
                    "200": _ok(_ref("JobDetail")),
                    **_AUTH_ERRORS,
                    "404": _error("No such source or job."),
                    "503": _error("The source's Redis is unavailable."),
                },
            }
        },
        **{
            f"{api}/sources/{{source}}/jobs/{{id}}/{action}": {
                "post": {
                    "summary": summary,
                    "description": "Operator role required. Browser sessions must send the "
                    "X-CSRF-Token header; every request must pass the Origin / "
                    "Sec-Fetch-Site check.",
                    "parameters": [_SOURCE, _JOB_ID, _ENTRY],
                    "responses": action_responses,
                }
            }
            for action, summary in _action_summaries()
        },
        **series_paths(api, _SOURCE, _AUTH_ERRORS),
        **census_paths(api, _SOURCE, _AUTH_ERRORS),
        **bulk_paths(api, _SOURCE, _AUTH_ERRORS),
        f"{api}/counters": {
            "get": {
                "summary": "Every source's counters (or why they could not be read).",
                "responses": {
                    "200": _ok(
                        _object(
                            {
                                "taken_at": _TIME,
                                "sources": {
                                    "type": "array",
                                    "items": _object(
                                        {
                                            "name": {"type": "string"},
                                            "system": _system(),
                                            "up": {"type": "boolean"},
                                            "slow": {"type": "boolean"},
                                            "error": _STR_OR_NULL,
                                            "counters": {
                                                "oneOf": [_ref("Counters"), {"type": "null"}]
                                            },
                                        }
                                    ),
                                },
                            }
                        )
                    ),
                    **_AUTH_ERRORS,
                },
            }
        },
        f"{api}/compare": {
            "get": {
                "summary": "Every source and each of its queues compared: depth, oldest "
                "waiting age, throughput and failure rate over 5 and 60 minutes, workers, "
                "overdue running jobs.",
                "description": f"{WORST_FIRST} Each source row is followed by its queue rows, "
                "sorted the same way; a value that is not known sorts last either way.",
                "parameters": [
                    {
                        "name": "sort",
                        "in": "query",
                        "schema": {"type": "string", "enum": [k.value for k in SortKey]},
                    },
                    {
                        "name": "dir",
                        "in": "query",
                        "schema": {"type": "string", "enum": [d.value for d in Direction]},
                    },
                ],
                "responses": {
                    "200": _ok(
                        _object(
                            {
                                "taken_at": _TIME,
                                "sort": {"type": "string", "enum": [k.value for k in SortKey]},
                                "dir": {"type": "string", "enum": [d.value for d in Direction]},
                                "rows": {"type": "array", "items": _ref("CompareRow")},
                            }
                        )
                    ),
                    **_AUTH_ERRORS,
                    "400": _error("sort or dir names nothing."),
                },
            }
        },
        f"{api}/search": search_path(),
        f"{api}/audit": {
            "get": {
                "summary": "Operator actions, newest first.",
                "parameters": [
                    {"name": "source", "in": "query", "schema": {"type": "string"}},
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
                    },
                ],
                "responses": {
                    "200": _ok(
                        _object({"entries": {"type": "array", "items": _ref("AuditEntry")}})
                    ),
                    **_AUTH_ERRORS,
                    "404": _error("No such source."),
                    "503": _error("The source's Redis is unavailable."),
                },
            }
        },
        "/actuator/jobs": {
            "get": {
                "summary": "Per-job-name counters across sources, as Autumn's actuator.",
                "description": actuator.DESCRIPTION.strip(),
                "responses": {"200": _ok(_ref("Actuator")), **_AUTH_ERRORS},
            }
        },
        "/healthz": {
            "get": {
                "summary": "Liveness: the process answers. No authentication.",
                "responses": {"200": _ok(_ref("Health"))},
            }
        },
        "/readyz": {
            "get": {
                "summary": "Readiness: every source's Redis answers a PING. No authentication.",
                "responses": {
                    "200": _ok(_ref("Readiness"), "All sources ready."),
                    "503": _ok(
                        _ref("Readiness"),
                        "At least one source is unavailable: its ``error`` "
                        'is "unavailable", or "timed out after N s" when its Redis did not '
                        "answer within the read timeout.",
                    ),
                },
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus text: per-source and per-queue gauges, HTTP metrics.",
                "description": "Gauges are read from every source at scrape time. When "
                "authentication is configured, scrape with a bearer token (any role).",
                "responses": {
                    "200": {"description": "OK", "content": {"text/plain": {}}},
                    **_AUTH_ERRORS,
                },
            }
        },
    }


def build_openapi(prefix: str) -> dict[str, Any]:
    """The document, with every path under the configured prefix."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "jobbridge",
            "version": jobbridge.__version__,
            "description": "Autumn, RQ and Celery job queues in Redis, in one model. "
            "Timestamps are RFC 3339 in UTC with a Z suffix. Errors are "
            '{"error": <code>, "message": <text>}.',
        },
        "paths": _paths(prefix),
        "components": {
            "schemas": schemas(),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "session": {"type": "apiKey", "in": "cookie", "name": "jobbridge_session"},
            },
        },
        "security": [{"bearer": []}, {"session": []}],
    }
