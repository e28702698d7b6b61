"""The comparison on the web: ``GET {prefix}/api/compare`` and the overview's sortable table
(jobbridge.compare builds the rows; the table is in ``_overview_counters.html``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from jobbridge import compare
from jobbridge.compare import DEFAULT_DIRECTION, WORST_FIRST, Direction, SortKey
from jobbridge.model import Counters
from jobbridge.service import SourceRead
from jobbridge.web import keys
from jobbridge.web.context import Ui
from jobbridge.web.responses import HttpError, json_response

#: the table's columns: (sort key, header, a number column)
COLUMNS = (
    (SortKey.NAME, "Source / queue", False),
    (SortKey.SYSTEM, "System", False),
    (SortKey.DEPTH, "Depth", True),
    (SortKey.OLDEST, "Oldest waiting", True),
    (SortKey.THROUGHPUT_5M, "Throughput 5m", True),
    (SortKey.FAILURE_5M, "Failed 5m", True),
    (SortKey.THROUGHPUT_60M, "Throughput 60m", True),
    (SortKey.FAILURE_60M, "Failed 60m", True),
    (SortKey.BUSY, "Workers busy / idle", True),
    (SortKey.OVERDUE, "Overdue", True),
)


@dataclass(frozen=True, slots=True)
class Header:
    """One column header: a link that sorts by it (again: the other way)."""

    key: str
    label: str
    numeric: bool
    url: str
    #: "ascending" / "descending" on the column sorted by, else None (aria-sort)
    sorted: str | None


def sort_query(request: web.Request) -> tuple[SortKey, Direction | None]:
    """``?sort=&dir=`` of a request; 400 for a value that names nothing."""
    try:
        return compare.parse_sort(request.query.get("sort"), request.query.get("dir"))
    except ValueError as exc:
        raise HttpError(400, "bad_request", str(exc)) from None


async def api_compare(request: web.Request) -> web.Response:
    sort, direction = sort_query(request)
    result = await compare.compare(request.app[keys.SERVICE], sort, direction)
    return json_response(compare.comparison_json(result))


async def table_context(
    request: web.Request, reads: Sequence[SourceRead[Counters]] | None = None
) -> dict[str, Any]:
    """What the overview's table needs: the sorted rows, the header links, the words. A sort
    that names nothing shows the default order (a page never fails over a bad link)."""
    try:
        sort, direction = compare.parse_sort(request.query.get("sort"), request.query.get("dir"))
    except ValueError:
        sort, direction = SortKey.WORST, None
    result = await compare.compare(request.app[keys.SERVICE], sort, direction, reads)
    ui = Ui(request)
    headers = []
    for key, label, numeric in COLUMNS:
        current = key is result.sort
        if current:
            next_dir = Direction.ASC if result.dir is Direction.DESC else Direction.DESC
        else:
            next_dir = DEFAULT_DIRECTION[key]
        query = {"sort": key.value, "dir": next_dir.value}
        headers.append(
            Header(
                key=key.value,
                label=label,
                numeric=numeric,
                url=ui.url("overview", query),
                sorted=(
                    ("ascending" if result.dir is Direction.ASC else "descending")
                    if current
                    else None
                ),
            )
        )
    default = result.sort is SortKey.WORST and result.dir is DEFAULT_DIRECTION[SortKey.WORST]
    keep = None if default else {"sort": result.sort.value, "dir": result.dir.value}
    return {
        "comparison": result,
        "compare_headers": headers,
        "compare_text": compare,
        "worst_first": WORST_FIRST,
        "worst_url": ui.url("overview"),
        # the polled fragment keeps the order the page shows
        "counters_url": ui.url("overview_counters", keep),
    }
