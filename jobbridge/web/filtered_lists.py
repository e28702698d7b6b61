"""A source page's filtered lists: the filter of each list from the query, and the bounded read
that pages through the filtered result.

Each filterable list's filter lives in the page's query under names namespaced by the list:
``failed_name=send_email&failed_since=1h`` filters the failed list, ``enqueued_queue=reports``
the enqueued list (``<list>_<field>``, the fields of ``jobbridge.filters.JobFilter``). Pager
links, tab links and the live refresh keep them.

A filtered list is read newest first in pages through the service's snapshot (``only`` that
list; the failed list ``HISTORY_READ`` rows a read, the others ``MAX_PER_PAGE``),
matched in memory, and the walk stops after ``LOOK_BACK`` rows: a list longer than that says
how far back the filter looked.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from jobbridge.filters import (
    FIELD_NAMES,
    FILTERABLE,
    FilterError,
    JobFilter,
    filter_query,
    parse_filter,
)
from jobbridge.model import (
    HISTORY_LISTS,
    MAX_PER_PAGE,
    JobRecord,
    ListName,
    Page,
    SnapshotQuery,
    clamp_page,
    clamp_per_page,
)
from jobbridge.service import JobService

#: rows a filtered list looks at in one request, newest first
LOOK_BACK = 2000
#: rows of a history (the failed list) read at once: a read of a whole Autumn history (1,000
#: entries and their records) held the event loop ~100 ms; this many keep each read to a few
#: ms (as the search's reads, jobbridge/search.py)
HISTORY_READ = 250


def param(name: ListName | str, field: str) -> str:
    """The query name of one filter field of one list (``failed_error_contains``)."""
    return f"{ListName(name).value}_{field}"


#: every filter query name of every filterable list
FILTER_PARAMS = frozenset(param(n, f) for n in FILTERABLE for f in FIELD_NAMES)


@dataclass(frozen=True, slots=True)
class ListFilter:
    """One list's filter as the page got it: the raw values (to fill the form), the parsed
    filter (None when there is none or it is invalid) and the error in words."""

    name: ListName
    values: Mapping[str, str]
    filter: JobFilter | None
    error: str | None

    @property
    def active(self) -> bool:
        return self.filter is not None and not self.filter.empty

    def fields(self) -> dict[str, str]:
        """The parsed filter as un-namespaced form fields (times in ISO 8601): what a bulk
        form posts."""
        return filter_query(self.filter) if self.filter is not None else {}

    def query(self) -> dict[str, str]:
        """The namespaced query parameters that carry this filter."""
        return {param(self.name, k): v for k, v in self.values.items()}


def list_filter(query: Mapping[str, str], name: ListName) -> ListFilter:
    """Read one list's filter from a page's query; an invalid value is an error, not a raise."""
    values = {f: query[param(name, f)][:400] for f in FIELD_NAMES if query.get(param(name, f))}
    values = {k: v for k, v in values.items() if v.strip()}
    if name not in FILTERABLE:
        return ListFilter(name, {}, None, None)
    try:
        parsed = parse_filter(values)
    except FilterError as error:
        return ListFilter(name, values, None, str(error))
    return ListFilter(name, values, parsed, None)


def filter_params(query: Mapping[str, str]) -> dict[str, str]:
    """The filter parameters of every list in a query, to keep in links."""
    return {k: v[:400] for k, v in query.items() if k in FILTER_PARAMS and v.strip()}


@dataclass(frozen=True, slots=True)
class FilteredPage:
    """One page of a filtered list and how far the filter looked."""

    page: Page
    looked_at: int
    list_total: int
    #: the list is longer than what the filter looked at
    bounded: bool


async def filtered_page(
    service: JobService,
    source: str,
    name: ListName,
    job_filter: JobFilter,
    page_no: int | None,
    per_page: int | None,
    *,
    look_back: int | None = None,
) -> FilteredPage:
    """Page ``page_no`` of the rows of list ``name`` that match, among its newest
    ``look_back`` rows. Raises what the snapshot raises (SourceUnavailable...)."""
    look_back = LOOK_BACK if look_back is None else look_back
    size = HISTORY_READ if name in HISTORY_LISTS else MAX_PER_PAGE
    size = min(size, look_back)
    matches: list[JobRecord] = []
    looked_at = 0
    list_total = 0
    read = 1
    skipped = 0
    while looked_at < look_back:
        query = SnapshotQuery.build(
            {name: read},
            size,
            history_per_page=size if name in HISTORY_LISTS else None,
            only=frozenset({name}),
        )
        snapshot = await service.snapshot(source, query)
        page = snapshot.lists.get(name)
        if page is None:
            break
        list_total = page.total
        rows = page.items[: look_back - looked_at]
        looked_at += len(rows)
        skipped += page.skipped
        matches.extend(row for row in rows if job_filter.matches(row, name))
        if len(page.items) < size or read * size >= page.total:
            break
        read += 1
    per = clamp_per_page(per_page)
    current = clamp_page(page_no)
    start = (current - 1) * per
    shown = Page(
        items=tuple(matches[start : start + per]),
        total=len(matches),
        page=current,
        per_page=per,
        skipped=skipped if current == 1 else 0,
    )
    return FilteredPage(shown, looked_at, list_total, list_total > looked_at)


async def narrow(
    service: JobService,
    source: str,
    query: Mapping[str, str],
    name: ListName,
    page: Page,
    page_no: int | None,
    per_page: int | None,
) -> tuple[Page, ListFilter | None, FilteredPage | None]:
    """A list's page as the page shows it: ``page`` itself when the list has no (valid)
    filter, else the filtered page (and how far the filter looked). The filter is None for a
    list that takes none."""
    if name not in FILTERABLE:
        return page, None, None
    wanted = list_filter(query, name)
    if not wanted.active or wanted.filter is None:
        return page, wanted, None
    found = await filtered_page(service, source, name, wanted.filter, page_no, per_page)
    return found.page, wanted, found
