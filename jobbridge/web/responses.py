"""Small response helpers shared by views, the API and the middlewares."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode

from aiohttp import web

#: longest source name or job id accepted from a URL
MAX_PARAM_CHARS = 200
#: longest integer query value parsed (anything longer means "use the default")
MAX_INT_CHARS = 20


class HttpError(Exception):
    """Stop a handler with an error page (HTML) or ``{"error", "message"}`` (API)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        source: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        #: for 503s: the source whose Redis is down (its page polls until it is back)
        self.source = source
        self.headers = dict(headers or {})


def json_response(data: Any, status: int = 200) -> web.Response:
    try:
        body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate from job data: \u-escaped JSON carries it; UTF-8 cannot.
        body = json.dumps(data, separators=(",", ":")).encode("ascii")
    return web.Response(body=body, status=status, content_type="application/json", charset="utf-8")


def error_json(status: int, code: str, message: str) -> web.Response:
    return json_response({"error": code, "message": message}, status=status)


def redirect(location: str, status: int = 303) -> web.Response:
    """A redirect built as a plain response (returning HTTPException objects is deprecated)."""
    return web.Response(status=status, headers={"Location": location})


def route_param(request: web.Request, name: str) -> str:
    """A path parameter (source or job id), refused as unknown when absurdly long."""
    value = request.match_info.get(name, "")
    if not value or len(value) > MAX_PARAM_CHARS:
        what = "source" if name == "source" else "job"
        raise HttpError(404, "not_found", f"No such {what}.")
    return value


#: the path segment that takes the job id from ``?id=`` instead
JOB_BY_QUERY = "job"
#: job ids that cannot stand as a path segment: another route's name, or what browsers and
#: HTTP clients fold away ("." and ".."); their URLs carry the id as ``job?id=...``
PATH_UNSAFE_IDS = frozenset({JOB_BY_QUERY, "counters", ".", ".."})


def job_param(request: web.Request) -> str:
    """The job id of a job URL: the path segment, or ``?id=`` after the segment ``job``.

    The query form is read from the raw query string with ``surrogateescape``, so an id that
    is not UTF-8 (jobbridge.adapters.base.key_text) arrives as the bytes it was listed with.
    """
    job_id = route_param(request, "id")
    if job_id == JOB_BY_QUERY and "id" in request.query:
        pairs = parse_qsl(
            request.rel_url.raw_query_string, encoding="utf-8", errors="surrogateescape"
        )
        # Pasted from a log line, often with spaces; the ids this form must carry have none.
        job_id = next((v for k, v in pairs if k == "id"), "").strip()
        if not job_id or len(job_id) > MAX_PARAM_CHARS:
            raise HttpError(404, "not_found", "No such job.")
    return job_id


def path_unsafe(job_id: str) -> bool:
    """Whether a job id must travel as ``job?id=...`` rather than as a path segment: another
    route's name, what clients fold away, or bytes that are not UTF-8."""
    if job_id in PATH_UNSAFE_IDS:
        return True
    try:
        job_id.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def id_query(job_id: str) -> str:
    """``id=<the id's exact bytes, percent-encoded>``."""
    return urlencode({"id": job_id.encode("utf-8", errors="surrogateescape")})


def int_query(request: web.Request, name: str) -> int | None:
    """An integer query parameter, or None when missing or not an integer (then clamped)."""
    raw = request.query.get(name)
    if raw is None or len(raw) > MAX_INT_CHARS:
        return None
    try:
        return int(raw.strip())
    except ValueError:
        return None
