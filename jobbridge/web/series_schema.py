"""The chart series endpoint's part of the OpenAPI document (jobbridge.web.openapi)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jobbridge.series.model import POINTS, STEP_S, Window

_TIME = {"type": "string", "format": "date-time"}
_COUNT = {"type": "integer", "minimum": 0}


def series_schema() -> dict[str, Any]:
    point = {
        "type": "object",
        "required": ["at", "completed", "failed", "enqueued"],
        "properties": {
            "at": {**_TIME, "description": "start of the step (UTC)"},
            "completed": {**_COUNT, "description": "jobs that completed in the step, by finish"},
            "failed": {**_COUNT, "description": "jobs that failed terminally in the step"},
            "enqueued": {
                "type": ["integer", "null"],
                "minimum": 0,
                "description": "waiting jobs at the step's last depth sample (null: none)",
            },
        },
    }
    return {
        "type": "object",
        "required": ["source", "window", "step_s", "queue", "since", "points"],
        "properties": {
            "source": {"type": "string"},
            "window": {"enum": [w.value for w in Window]},
            "step_s": {"enum": sorted(set(STEP_S.values()))},
            "queue": {"type": ["string", "null"], "description": "the queue counted, or null"},
            "since": {
                "type": ["string", "null"],
                "format": "date-time",
                "description": "when jobbridge began following (null: not yet)",
            },
            "points": {
                "type": "array",
                "minItems": min(POINTS.values()),
                "maxItems": max(POINTS.values()),
                "items": point,
                "description": "oldest first, one per step_s, the last holding now",
            },
        },
    }


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def series_paths(
    api: str, source: Mapping[str, Any], auth_errors: Mapping[str, Any]
) -> dict[str, Any]:
    return {
        f"{api}/sources/{{source}}/series": {
            "get": {
                "summary": "Completed and failed jobs per step (by finish time) and queue "
                "depth over time: per minute over the last hour, per 15 minutes over 24 h.",
                "parameters": [
                    dict(source),
                    {
                        "name": "window",
                        "in": "query",
                        "required": False,
                        "schema": {"enum": [w.value for w in Window], "default": "1h"},
                    },
                    {
                        "name": "queue",
                        "in": "query",
                        "required": False,
                        "description": "one queue's series (the first 50 queues of a source)",
                        "schema": {"type": "string", "maxLength": 200},
                    },
                ],
                "responses": {
                    "200": {
                        "description": "OK",
                        "content": {"application/json": {"schema": series_schema()}},
                    },
                    "400": _error("window is not 1h or 24h, or queue is too long."),
                    **auth_errors,
                    "404": _error("No such source."),
                    "503": _error("The source's Redis is unavailable."),
                },
            }
        }
    }
