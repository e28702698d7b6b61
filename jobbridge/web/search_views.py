"""The search across every source: the page the header's box opens, and ``/api/search``.

Both are reads (a viewer may search) over :func:`jobbridge.search.search`; each item links to
its job page. Names and ids are escaped by the template (autoescape), raw in the JSON.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from jobbridge.search import (
    MAX_QUERY_CHARS,
    BadQuery,
    SearchResult,
    covered_json,
    match_json,
    search,
)
from jobbridge.web import keys
from jobbridge.web.context import Ui
from jobbridge.web.rendering import paced_template
from jobbridge.web.responses import HttpError, json_response

#: the query field of the header's search form and of the API
QUERY_FIELD = "q"


def search_json(result: SearchResult, ui: Ui) -> dict[str, Any]:
    """The API's reply: the matches, each with its job page's URL, and what was covered."""
    return {
        "query": result.query,
        "items": [
            match_json(m, ui.job_url(m.job.source, m.job.id, m.job.entry)) for m in result.matches
        ],
        "covered": covered_json(result.covered),
    }


async def api_search(request: web.Request) -> web.Response:
    """``GET {prefix}/api/search?q=...``: an empty or too long query is a 400."""
    try:
        result = await search(request.app[keys.SERVICE], request.query.get(QUERY_FIELD))
    except BadQuery as exc:
        raise HttpError(400, "bad_query", str(exc)) from None
    return json_response(search_json(result, Ui(request)))


@paced_template("search.html")
async def search_page(request: web.Request) -> dict[str, Any]:
    """The results page; without a query (or with a bad one) the box and a hint."""
    raw = request.query.get(QUERY_FIELD, "")
    result: SearchResult | None = None
    problem: str | None = None
    try:
        result = await search(request.app[keys.SERVICE], raw)
    except BadQuery as exc:
        problem = str(exc) if raw.strip() else None
    return {
        "ui": Ui(request),
        "search_query": raw[:MAX_QUERY_CHARS],
        "result": result,
        "problem": problem,
    }
