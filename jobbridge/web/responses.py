"""Small response helpers shared by views, the API and the middlewares."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode

from aiohttp import web

from jobbridge.model import MAX_ENTRY_CHARS, MAX_JOB_ID_CHARS

#: longest source name accepted from a URL (job ids: jobbridge.model.MAX_JOB_ID_CHARS)
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
    limit = MAX_PARAM_CHARS if name == "source" else MAX_JOB_ID_CHARS
    if not value or len(value) > limit:
        what = "source" if name == "source" else "job"
        raise HttpError(404, "not_found", f"No such {what}.")
    return value


#: the path segment that takes the job id from ``?id=`` instead
JOB_BY_QUERY = "job"
#: job ids that cannot stand as a path segment: another route's name, or what browsers and
#: HTTP clients fold away ("." and ".."); their URLs carry the id as ``job?id=...``
PATH_UNSAFE_IDS = frozenset({JOB_BY_QUERY, "counters", ".", ".."})
#: ids made only of these travel as a path segment. Anything else goes in the query: a route
#: pattern cannot match "{", "}" or "/", and clients fold or trim other characters.
_PATH_SAFE_ID = re.compile(r"[A-Za-z0-9_.~:@!$'()*+,;=-]+")
#: the query field of the "find a job" form: pasted text, trimmed (``id`` never is)
FIND_FIELD = "find"


def _raw_query(request: web.Request) -> list[tuple[str, str]]:
    """The query's pairs, read with ``surrogateescape``: a value that is not UTF-8
    (jobbridge.adapters.fields.key_text) arrives as the bytes it was listed with."""
    return parse_qsl(
        request.rel_url.raw_query_string,
        keep_blank_values=True,
        encoding="utf-8",
        errors="surrogateescape",
    )


def job_param(request: web.Request) -> str:
    """The job id of a job URL, exactly as the row that linked to it had it: the path
    segment, or ``?id=`` after the segment ``job``. Only the find form's ``?find=`` (pasted
    from a log line) is trimmed."""
    job_id = route_param(request, "id")
    if job_id != JOB_BY_QUERY:
        return job_id
    pairs = _raw_query(request)
    found = next((v for k, v in pairs if k == "id"), None)
    if found is None:
        found = next((v.strip() for k, v in pairs if k == FIND_FIELD), None)
    if found is None:
        return job_id
    if not found or len(found) > MAX_JOB_ID_CHARS:
        raise HttpError(404, "not_found", "No such job.")
    return found


def pasted_id(request: web.Request) -> bool:
    """Whether the job URL came from the "find a job" form (``?find=``), not from a link."""
    return route_param(request, "id") == JOB_BY_QUERY and any(
        k == FIND_FIELD for k, _ in _raw_query(request)
    )


def entry_param(request: web.Request) -> str | None:
    """``?entry=``: which of the entries sharing an id a job URL names (``JobRecord.entry``);
    None when absent."""
    entry = next((v for k, v in _raw_query(request) if k == "entry"), None)
    if entry is not None and (not entry or len(entry) > MAX_ENTRY_CHARS):
        raise HttpError(404, "not_found", "No such job entry.")
    return entry


def path_unsafe(job_id: str) -> bool:
    """Whether a job id must travel as ``job?id=...`` rather than as a path segment."""
    return job_id in PATH_UNSAFE_IDS or _PATH_SAFE_ID.fullmatch(job_id) is None


def id_query(job_id: str, entry: str | None = None) -> str:
    """``id=<the id's exact bytes, percent-encoded>`` (and ``&entry=...``)."""
    pairs = [("id", job_id.encode("utf-8", errors="surrogateescape"))]
    if entry is not None:
        pairs.append(("entry", entry.encode("utf-8", errors="surrogateescape")))
    return urlencode(pairs)


def entry_query(entry: str | None) -> str:
    """``?entry=...`` for a path-form URL; "" without an entry."""
    if entry is None:
        return ""
    return "?" + urlencode({"entry": entry.encode("utf-8", errors="surrogateescape")})


def int_query(request: web.Request, name: str) -> int | None:
    """An integer query parameter, or None when missing or not an integer (then clamped)."""
    raw = request.query.get(name)
    if raw is None or len(raw) > MAX_INT_CHARS:
        return None
    try:
        return int(raw.strip())
    except ValueError:
        return None
