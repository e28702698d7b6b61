"""HTML views: overview, per-source dashboard, counters fragments, job detail, audit, login."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from jobbridge.errors import SourceTimedOut, SourceUnavailable
from jobbridge.model import (
    DEFAULT_PER_PAGE,
    DONE_WORDS,
    MAX_PER_PAGE,
    Action,
    ListName,
    Outcome,
    Page,
    Snapshot,
    SnapshotQuery,
    list_title,
)
from jobbridge.search import find_id
from jobbridge.service import SourceStatus
from jobbridge.web import compare_views, filtered_lists, keys
from jobbridge.web.api import audit_limit, audit_source, snapshot_query
from jobbridge.web.auth import too_many_attempts
from jobbridge.web.context import Ui
from jobbridge.web.rendering import paced_template, render
from jobbridge.web.request_checks import safe_next
from jobbridge.web.responses import (
    HttpError,
    entry_param,
    int_query,
    job_param,
    pasted_id,
    redirect,
    route_param,
)
from jobbridge.web.sessions import MAX_CREDENTIAL_CHARS

#: audit entries shown on a job's detail page
JOB_AUDIT_ROWS = 50
#: pause after a failed login, to slow down guessing
LOGIN_FAILURE_DELAY_S = 0.25


@dataclass(frozen=True, slots=True)
class PagerLink:
    label: str
    url: str | None
    rel: str = ""


@dataclass(frozen=True, slots=True)
class ListView:
    """One card of the per-source page."""

    name: ListName
    title: str
    page: Page
    pager: tuple[PagerLink, ...]
    #: the list's filter as the page got it (None: the list takes none)
    filter: filtered_lists.ListFilter | None = None
    #: how far a filter looked (None: no filter)
    looked: filtered_lists.FilteredPage | None = None


def _pager(ui: Ui, source: str, name: ListName, page: Page) -> tuple[PagerLink, ...]:
    """Autumn's pager: only when there is more than one page; links keep ``per_page``."""
    pages = page.pages
    if pages <= 1:
        return ()
    per_page = page.per_page if page.per_page != DEFAULT_PER_PAGE else None

    def link(number: int) -> str:
        paging = {f"{name.value}_page": number, "per_page": per_page}
        return ui.source_url(source, **ui.filter_query(), **paging)

    current = min(page.page, pages)
    return (
        PagerLink("« First", link(1) if current > 1 else None, "first"),
        PagerLink("\u2039 Prev", link(current - 1) if current > 1 else None, "prev"),
        PagerLink(f"Page {page.page} of {pages}", None, "current"),
        PagerLink("Next \u203a", link(page.page + 1) if page.page < pages else None, "next"),
        PagerLink("Last »", link(pages) if page.page < pages else None, "last"),
    )


async def index(request: web.Request) -> web.StreamResponse:
    return redirect(str(request.app.router["overview"].url_for()), status=302)


@paced_template("overview.html")
async def overview(request: web.Request) -> dict[str, Any]:
    result = await request.app[keys.SERVICE].overview()
    table = await compare_views.table_context(request, result.counter_reads)
    return {"ui": Ui(request), "overview": result, "rows": result.sources, "initial": True, **table}


@paced_template("_overview_counters.html")
async def overview_counters(request: web.Request) -> dict[str, Any]:
    reads = await request.app[keys.SERVICE].every_counters()
    rows = [SourceStatus.of(r, r.value) for r in reads]
    table = await compare_views.table_context(request, reads)
    return {"ui": Ui(request), "rows": rows, "initial": False, **table}


@paced_template("source.html")
async def source_page(request: web.Request) -> dict[str, Any]:
    source = route_param(request, "source")
    service = request.app[keys.SERVICE]
    snapshot = await service.snapshot(source, snapshot_query(request))
    ui = Ui(request)
    lists = [
        await _list_view(request, ui, source, snapshot, name, snapshot.lists[name])
        for name in ListName
        if name in snapshot.lists
    ]
    return {
        "ui": ui,
        "source": source,
        "snapshot": snapshot,
        "counters": snapshot.counters,
        "error": None,
        "lists": lists,
        "initial": True,
        # pages clamp a per_page above the cap (the API refuses it), and say so
        "per_page_capped": (int_query(request, "per_page") or 0) > MAX_PER_PAGE,
        "max_per_page": MAX_PER_PAGE,
    }


async def source_counters_fragment(request: web.Request) -> web.StreamResponse:
    """The polled counters. Redis down is a normal state here: "unavailable", keep polling.

    The unavailable fragment polls with ``reload=1``; the first answer after Redis returns
    then carries ``HX-Refresh`` so htmx reloads the whole page, lists included.
    """
    source = route_param(request, "source")
    service = request.app[keys.SERVICE]
    service.adapter(source)
    try:
        counters, error, slow = await service.counters(source), None, False
    except SourceUnavailable as exc:
        counters, error, slow = None, exc.detail, isinstance(exc, SourceTimedOut)
    context = {
        "ui": Ui(request),
        "source": source,
        "counters": counters,
        "error": error,
        "slow": slow,
        "initial": False,
    }
    response = await render("_source_counters.html", request, context)
    if counters is not None and request.query.get("reload") == "1":
        response.headers["HX-Refresh"] = "true"
    return response


async def job_page(request: web.Request) -> web.StreamResponse:
    source = route_param(request, "source")
    job_id = job_param(request)
    entry = entry_param(request)
    service = request.app[keys.SERVICE]
    detail = await service.job(source, job_id, entry=entry)
    if detail is None:
        if entry is None and pasted_id(request):
            return await _found_elsewhere(request, job_id)
        raise HttpError(404, "not_found", f"Job {job_id!r} not found in source {source!r}.")
    related = await service.audit(source, JOB_AUDIT_ROWS, job_id=job_id)
    context = {
        "ui": Ui(request),
        "source": source,
        "detail": detail,
        "job": detail.job,
        "audit": related,
    }
    return await render("job.html", request, context)


async def _found_elsewhere(request: web.Request, job_id: str) -> web.StreamResponse:
    """A pasted id that this source does not have: its page in the one source that has it,
    else the search page, which says where it is or what was looked at."""
    ui = Ui(request)
    reads = await find_id(request.app[keys.SERVICE], job_id)
    having = [r.name for r in reads if r.value is not None]
    if len(having) == 1 and ui.job_url(having[0], job_id):
        return redirect(ui.job_url(having[0], job_id), status=302)
    try:
        return redirect(ui.url("search", {"q": job_id}), status=302)
    except UnicodeEncodeError:  # bytes that are not UTF-8 cannot be a search query
        raise HttpError(404, "not_found", f"Job {job_id!r} not found in any source.") from None


async def act(request: web.Request) -> web.StreamResponse:
    """POST an action, then redirect (303) back with a flash message naming the outcome."""
    source = route_param(request, "source")
    job_id = job_param(request)
    entry = entry_param(request)
    action = Action(request.match_info["action"])
    service = request.app[keys.SERVICE]
    service.adapter(source)
    principal = request[keys.PRINCIPAL]
    if not principal.can_operate:
        raise HttpError(
            403,
            "forbidden",
            f"Your role ({principal.role}) may look at jobs but not {action.value} them.",
        )
    form = await request.post()
    if action in (Action.STOP, Action.REVOKE) and form.get("confirm") != action.value:
        # Stopping kills running work, revoking discards held work: the page's form asks
        # first, and says so here.
        raise HttpError(
            400,
            "unconfirmed",
            f"{'Stopping a running job' if action is Action.STOP else 'Revoking a task'} needs "
            "the confirmation step on its row; nothing was sent.",
        )
    result = await service.act(source, job_id, action, principal.actor, entry=entry)
    if result.outcome is Outcome.FORBIDDEN:
        raise HttpError(403, "forbidden", result.message)
    if result.outcome is Outcome.UNAVAILABLE:
        raise HttpError(503, "unavailable", result.message, source=source)
    message = result.message or f"{DONE_WORDS[action].capitalize()} job {job_id}."
    security = request.app[keys.SECURITY]
    security.flash(request[keys.SESSION], "ok" if result.ok else "error", message)
    target = form.get("next")
    prefix = request.app[keys.SETTINGS].server.prefix
    back = safe_next(target if isinstance(target, str) else None, prefix)
    return redirect(back or Ui(request).source_url(source))


@paced_template("audit.html")
async def audit_page(request: web.Request) -> dict[str, Any]:
    source = audit_source(request)
    limit = audit_limit(request)
    service = request.app[keys.SERVICE]
    entries = await service.audit(source, limit)
    return {
        "ui": Ui(request),
        "entries": entries,
        "source": source,
        "limit": limit,
        "sources": service.sources(),
    }


def _login_context(request: web.Request, next_url: str | None, error: str | None) -> dict[str, Any]:
    auth = request.app[keys.SETTINGS].auth
    return {
        "ui": Ui(request),
        "next": next_url,
        "error": error,
        "tokens": bool(auth.tokens),
        "proxy": auth.proxy is not None,
    }


@aiohttp_jinja2.template("login.html")
async def login_form(request: web.Request) -> dict[str, Any]:
    prefix = request.app[keys.SETTINGS].server.prefix
    return _login_context(request, safe_next(request.query.get("next"), prefix), None)


async def login(request: web.Request) -> web.StreamResponse:
    """Exchange an API token for a signed session cookie (a fresh session id: no fixation)."""
    settings = request.app[keys.SETTINGS]
    form = await request.post()
    raw_next = form.get("next")
    next_url = safe_next(raw_next if isinstance(raw_next, str) else None, settings.server.prefix)
    target = next_url or str(request.app.router["overview"].url_for())
    if not settings.auth.tokens:
        return redirect(target)
    security = request.app[keys.SECURITY]
    client = security.client_address(request)
    wait_s = await security.sign_in_wait_s(client)
    if wait_s:
        refused = too_many_attempts(wait_s)
        context = _login_context(request, next_url, refused.message)
        response = aiohttp_jinja2.render_template("login.html", request, context, status=429)
        response.headers.update(refused.headers)
        return response
    raw_token = form.get("token")
    token = raw_token.strip() if isinstance(raw_token, str) else ""
    found = None
    if token and len(token) <= MAX_CREDENTIAL_CHARS:
        found = settings.auth.token_for(token)
    if found is None:
        await security.sign_in_failed(client)
        await asyncio.sleep(LOGIN_FAILURE_DELAY_S)
        context = _login_context(request, next_url, "That token is not valid.")
        return aiohttp_jinja2.render_template("login.html", request, context, status=401)
    state = request[keys.SESSION]
    if state.session is not None:
        # The session this one replaces (a CSRF-only one, or another sign-in) ends here too.
        await security.sign_out(state.session)
    state.set(security.new_session(found))
    return redirect(target)


async def logout(request: web.Request) -> web.StreamResponse:
    state = request[keys.SESSION]
    if state.session is not None:
        await request.app[keys.SECURITY].sign_out(state.session)
    state.delete()
    return redirect(str(request.app.router["login"].url_for()))


async def job_list_fragment(request: web.Request) -> web.StreamResponse:
    """One list's current page (``page``, ``per_page``), for a source page's live tab.

    Bounded like the page: it reads that one list's page and the totals (``only``), not the
    other lists nor the workers. The rows' forms return to the source page with this tab
    selected, not to this fragment. The answer also carries every tab's count as an htmx
    out-of-band swap. A source whose Redis is unavailable answers 204: nothing to swap.
    """
    source = route_param(request, "source")
    raw = request.match_info["list"]
    if raw not in ListName.__members__.values():
        raise HttpError(404, "not_found", f"No list {raw[:40]!r}.")
    name = ListName(raw)
    page_no, per_page = int_query(request, "page"), int_query(request, "per_page")
    query = SnapshotQuery.build({name: page_no}, per_page, only=frozenset({name}))
    try:
        snapshot = await request.app[keys.SERVICE].snapshot(source, query)
    except SourceUnavailable:
        # as for the counters, Redis down is a normal state: the list keeps its rows (htmx
        # swaps nothing on a 204) while the counters beside it say "unavailable"
        return web.Response(status=204)
    page = snapshot.lists.get(name)
    if page is None:
        raise HttpError(404, "not_found", f"Source {source!r} keeps no {name.value} list.")
    ui = Ui(request)
    back = {f"{name.value}_page": page_no, "per_page": per_page, "tab": name.value}
    back.update(filtered_lists.list_filter(request.query, name).query())
    ui = Ui(request, here=ui.source_url(source, **back))
    try:
        view = await _list_view(request, ui, source, snapshot, name, page, page_no, per_page)
    except SourceUnavailable:
        return web.Response(status=204)
    context = {"ui": ui, "source": source, "snapshot": snapshot, "list": view}
    return await render("_live_list.html", request, context)


async def _list_view(
    request: web.Request,
    ui: Ui,
    source: str,
    snapshot: Snapshot,
    name: ListName,
    page: Page,
    page_no: int | None = None,
    per_page: int | None = None,
) -> ListView:
    """One list of a source page, narrowed by its filter when it has one."""
    if page_no is None:
        page_no = int_query(request, f"{name.value}_page")
        per_page = int_query(request, "per_page")
    shown, wanted, looked = await filtered_lists.narrow(
        request.app[keys.SERVICE], source, request.query, name, page, page_no, per_page
    )
    title = list_title(name, snapshot.counters)
    return ListView(name, title, shown, _pager(ui, source, name, shown), wanted, looked)
