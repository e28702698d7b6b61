"""The OpenAPI 3.1 document of the JSON API, served at ``{prefix}/api/openapi.json``."""

from __future__ import annotations

from typing import Any

import jobbridge
from jobbridge.adapters import action_notes, names
from jobbridge.model import DONE_WORDS, Action, ListName
from jobbridge.web import actuator

_TIME = {
    "type": ["string", "null"],
    "format": "date-time",
    "description": "RFC 3339, UTC, whole seconds, Z suffix",
}
_INT_OR_NULL = {"type": ["integer", "null"]}
_STR_OR_NULL = {"type": ["string", "null"]}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": _ref("Error")}},
    }


def _ok(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


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

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error", "message"],
        "properties": {
            "error": {
                "type": "string",
                "description": "not_found, wrong_state, conflict, corrupt, unavailable, "
                "forbidden, unauthorized, too_many_attempts, csrf, cross_origin, internal",
            },
            "message": {"type": "string"},
            "id": {"type": "string", "description": "refused actions: the job id"},
        },
    },
    "Job": {
        "type": "object",
        "properties": {
            "source": {"type": "string"},
            "system": {"type": "string", "enum": []},  # the registered systems: build_openapi
            "id": {"type": "string"},
            "name": {"type": "string"},
            "queue": {"type": "string"},
            "status": {"type": "string"},
            "raw_status": {"type": "string"},
            "enqueued_at": _TIME,
            "scheduled_for": _TIME,
            "started_at": _TIME,
            "finished_at": _TIME,
            "attempt": _INT_OR_NULL,
            "max_attempts": _INT_OR_NULL,
            "last_error": _STR_OR_NULL,
            "principal_id": _STR_OR_NULL,
            "correlation_id": _STR_OR_NULL,
            "worker": _STR_OR_NULL,
            "payload_preview": {"type": "string"},
            "actions": {
                "type": "array",
                "items": {"enum": [a.value for a in Action]},
                "description": "the actions that apply to this job in its present state",
            },
            "problem": {
                **_STR_OR_NULL,
                "description": "why the stored record could not be fully read",
            },
            "new_id": {**_STR_OR_NULL, "description": "lifecycle rows: the job a retry made"},
            "extra": {
                "type": "object",
                "additionalProperties": {"type": "string"},
                "description": "system-specific fields (unique key, concurrency group, ...)",
            },
            "overdue_since": {
                **_TIME,
                "description": "running jobs: when the claim's deadline passed; its worker is "
                "likely gone and the job waits for the system's recovery",
            },
            "entry": {
                **_STR_OR_NULL,
                "description": "which of the entries sharing this id the row is (pass it as "
                "`?entry=` to reach that one); null when the id alone names it",
            },
        },
    },
    "JobDetail": {
        "allOf": [
            _ref("Job"),
            {
                "type": "object",
                "properties": {
                    "payload": {"type": "string", "description": "safely decoded, size-capped"},
                    "payload_kind": {"type": "string"},
                    "lifecycle": {"type": "array", "items": _ref("LifecycleEntry")},
                },
            },
        ]
    },
    "LifecycleEntry": {
        "type": "object",
        "properties": {
            "job_id": {"type": "string"},
            "status": {"enum": ["canceled", "retried", "discarded"]},
            "at": _TIME,
            "actor": {"type": "string"},
            "new_id": _STR_OR_NULL,
        },
    },
    "Counters": {
        "type": "object",
        "properties": {
            "enqueued": {"type": "integer"},
            "scheduled": {"type": "integer"},
            "running": {"type": "integer"},
            "completed_24h": {
                **_INT_OR_NULL,
                "description": "null where the system cannot count the window exactly in "
                "bounded work (RQ scores its registries by expiry): see completed_kept",
            },
            "failed_7d": {**_INT_OR_NULL, "description": "null as completed_24h: see failed_kept"},
            "completed_kept": {
                **_INT_OR_NULL,
                "description": "completed entries the system still keeps, whatever their age",
            },
            "failed_kept": {
                **_INT_OR_NULL,
                "description": "failed entries the system still keeps, whatever their age",
            },
            "canceled": {
                **_INT_OR_NULL,
                "description": "jobs the system keeps as canceled (RQ's canceled registries); "
                "null where it keeps none",
            },
            "oldest_enqueued_age_s": {"type": ["number", "null"]},
            "blocked": {"type": "integer"},
            "running_overdue": {
                "type": "integer",
                "description": "running jobs past their claim's deadline",
            },
            "queues": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string"},
                        "enqueued": {"type": "integer"},
                        "oldest_enqueued_age_s": {"type": ["number", "null"]},
                    },
                },
            },
        },
    },
    "Page": {
        "type": "object",
        "properties": {
            "items": {"type": "array", "items": _ref("Job")},
            "total": {"type": "integer"},
            "page": {"type": "integer"},
            "per_page": {"type": "integer"},
            "flagged": {
                "type": "integer",
                "description": "rows on this page whose record could not be fully read",
            },
        },
    },
    "Snapshot": {
        "type": "object",
        "properties": {
            "source": {"type": "string"},
            "system": {"type": "string"},
            "taken_at": _TIME,
            "counters": _ref("Counters"),
            "lists": {
                "type": "object",
                "properties": {name.value: _ref("Page") for name in ListName},
            },
            "schedules": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string"},
                        "schedule": {"type": "string"},
                        "next_run_at": _TIME,
                        "last_status": _STR_OR_NULL,
                    },
                },
            },
            "history_limit": _INT_OR_NULL,
            "workers": {
                "type": ["array", "null"],
                "description": "the system's registered workers; null where it keeps none",
                "items": _ref("Worker"),
            },
        },
    },
    "Worker": {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "state": {
                "type": "string",
                "description": "the system's word (idle, busy, ...), or dead",
            },
            "queues": {"type": "array", "items": {"type": "string"}},
            "current_job": _STR_OR_NULL,
            "birth": _TIME,
            "last_heartbeat": _TIME,
            "successful": _INT_OR_NULL,
            "failed": _INT_OR_NULL,
            "hostname": _STR_OR_NULL,
            "pid": _INT_OR_NULL,
            "problem": _STR_OR_NULL,
            "pool": {**_STR_OR_NULL, "description": "Celery: the pool (prefork, solo, ...)"},
            "concurrency": _INT_OR_NULL,
            "active": {**_INT_OR_NULL, "description": "tasks executing now"},
            "reserved": {**_INT_OR_NULL, "description": "tasks held reserved (prefetched, eta)"},
        },
    },
    "ActionDone": {
        "type": "object",
        "required": ["outcome", "id"],
        "properties": {
            "outcome": {"enum": [DONE_WORDS[a] for a in Action]},
            "id": {"type": "string"},
            "new_id": {"type": "string", "description": "the job a retry created"},
            "message": {"type": "string"},
        },
    },
    "AuditEntry": {
        "type": "object",
        "properties": {
            "at": _TIME,
            "actor": {"type": "string"},
            "source": {"type": "string"},
            "job_id": {"type": "string"},
            "action": {"type": "string"},
            "outcome": {"type": "string"},
            "new_id": _STR_OR_NULL,
            "message": {"type": "string"},
            "entry": {
                "type": "string",
                "description": 'what was acted on besides the id: "" the job itself, '
                '"waiting" a waiting message (Celery), "dead" a dead entry (Autumn)',
            },
        },
    },
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
            "description": "rows per page, clamped to 1..100",
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
                        {
                            "type": "object",
                            "properties": {
                                "sources": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "properties": {
                                            "name": {"type": "string"},
                                            "system": {"type": "string"},
                                            "capabilities": {
                                                "type": "array",
                                                "items": {"type": "string"},
                                            },
                                        },
                                    },
                                }
                            },
                        }
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
        f"{api}/counters": {
            "get": {
                "summary": "Every source's counters (or why they could not be read).",
                "responses": {
                    "200": _ok(
                        {
                            "type": "object",
                            "properties": {
                                "taken_at": _TIME,
                                "sources": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "properties": {
                                            "name": {"type": "string"},
                                            "system": {"type": "string"},
                                            "up": {"type": "boolean"},
                                            "slow": {"type": "boolean"},
                                            "error": _STR_OR_NULL,
                                            "counters": {
                                                "oneOf": [_ref("Counters"), {"type": "null"}]
                                            },
                                        },
                                    },
                                },
                            },
                        }
                    ),
                    **_AUTH_ERRORS,
                },
            }
        },
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
                        {
                            "type": "object",
                            "properties": {
                                "entries": {"type": "array", "items": _ref("AuditEntry")}
                            },
                        }
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
                "description": (actuator.__doc__ or "").strip(),
                "responses": {"200": {"description": "OK"}, **_AUTH_ERRORS},
            }
        },
        "/healthz": {
            "get": {
                "summary": "Liveness: the process answers. No authentication.",
                "responses": {"200": {"description": "OK"}},
            }
        },
        "/readyz": {
            "get": {
                "summary": "Readiness: every source's Redis answers a PING. No authentication.",
                "responses": {
                    "200": {"description": "All sources ready."},
                    "503": {
                        "description": "At least one source is unavailable: its ``error`` "
                        'is "unavailable", or "timed out after N s" when its Redis did not '
                        "answer within the read timeout."
                    },
                },
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus text: per-source and per-queue gauges, HTTP metrics.",
                "description": "Gauges are read from every source at scrape time. When "
                "authentication is configured, scrape with a bearer token (any role).",
                "responses": {"200": {"description": "OK"}, **_AUTH_ERRORS},
            }
        },
    }


def _job_schema() -> dict[str, Any]:
    """The Job schema, whose ``system`` enum names the systems registered now."""
    job = SCHEMAS["Job"]
    system = {"type": "string", "enum": list(names())}
    return {**job, "properties": {**job["properties"], "system": system}}


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
            "schemas": {**SCHEMAS, "Job": _job_schema()},
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "session": {"type": "apiKey", "in": "cookie", "name": "jobbridge_session"},
            },
        },
        "security": [{"bearer": []}, {"session": []}],
    }
