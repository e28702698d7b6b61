"""The OpenAPI path of ``/api/search`` (jobbridge.web.search_views), built from the document's
own pieces (jobbridge.web.openapi)."""

from __future__ import annotations

from typing import Any

from jobbridge.model import JobStatus, ListName
from jobbridge.search import MAX_QUERY_CHARS, MAX_RESULTS
from jobbridge.web.openapi import _AUTH_ERRORS, _STR_OR_NULL, _error, _object, _ok, _system

_ITEM = _object(
    {
        "source": {"type": "string"},
        "system": _system(),
        "id": {"type": "string", "description": "the job's id, raw"},
        "name": {"type": "string", "description": 'its name, raw ("" when unreadable)'},
        "status": {"enum": [s.value for s in JobStatus]},
        "queue": {"type": "string"},
        "matched": {
            "type": "string",
            "description": "the field that matched: id, correlation_id, principal_id, name, or "
            "an extra its system matches (Celery's root_id, ...)",
        },
        "url": {"type": "string", "description": 'its job page ("" when no route can name it)'},
        "entry": {"type": "string", "description": "the entry of the id the row is (`?entry=`)"},
    },
    sometimes=("entry",),
)
_LIST_READ = _object(
    {
        "list": {"enum": [n.value for n in ListName]},
        "read": {"type": "integer", "description": "entries of the list read and matched"},
        "total": {"type": "integer", "description": "entries the list holds"},
        "cut_short": {"type": "boolean", "description": "the list holds more than was read"},
    }
)
_SOURCE_COVERED = _object(
    {
        "source": {"type": "string"},
        "system": _system(),
        "covers": {"type": "string", "description": "what its system's search reads, in words"},
        "looked_up_id": {"type": "boolean", "description": "the query was looked up as an id"},
        "error": {**_STR_OR_NULL, "description": "why the source was not searched"},
        "cut_short": {"type": "boolean", "description": "some list held more than was read"},
        "lists": {"type": "array", "items": _LIST_READ},
    }
)
_COVERED = _object(
    {
        "capped": {"type": "boolean", "description": f"more than {MAX_RESULTS} jobs matched"},
        "max_results": {"type": "integer"},
        "sources": {"type": "array", "items": _SOURCE_COVERED},
    }
)


def search_path() -> dict[str, Any]:
    """The ``get`` of ``{prefix}/api/search``."""
    return {
        "get": {
            "summary": "Every job of every source matching a job id, correlation id, principal "
            "id or (part of) a job name.",
            "description": "Bounded: per source, a look-up of the query as an id plus the first "
            "page of each list the dashboard reads (the histories up to their bound), "
            "filtered; `covered` says what was read. A source that fails is reported in "
            "`covered`, not an error.",
            "parameters": [
                {
                    "name": "q",
                    "in": "query",
                    "required": True,
                    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_QUERY_CHARS},
                }
            ],
            "responses": {
                "200": _ok(
                    _object(
                        {
                            "query": {"type": "string"},
                            "items": {"type": "array", "items": _ITEM},
                            "covered": _COVERED,
                        }
                    )
                ),
                "400": _error("An empty query, or one over the length limit."),
                **_AUTH_ERRORS,
            },
        }
    }
